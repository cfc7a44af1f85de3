"""``riskstream controller``: the rollout controller in the foreground.

``riskstream up`` runs the same process in the background; its settings are the
``RISKSTREAM_CONTROLLER_*`` variables, a few of which the flags override.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys

from services.common.errors import ConfigError


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register controller."""
    controller = sub.add_parser(
        "controller",
        help="run the rollout controller (canary promote / rollback) in the foreground",
    )
    controller.add_argument("--model-name", help="the model whose canary it drives")
    controller.add_argument("--window-s", type=float, help="comparison window, seconds")
    controller.add_argument(
        "--evaluate-interval-s", type=float, help="how often the canary is judged, seconds"
    )
    controller.set_defaults(func=cmd_controller)


def cmd_controller(args: argparse.Namespace) -> int:
    """Run the controller until SIGINT / SIGTERM; exit 2 on a bad setting."""
    from services.controller.__main__ import serve
    from services.controller.config import ControllerConfig

    overrides = {
        k: v
        for k, v in {
            "model_name": args.model_name,
            "window_s": args.window_s,
            "evaluate_interval_s": args.evaluate_interval_s,
        }.items()
        if v is not None
    }
    try:
        config = dataclasses.replace(ControllerConfig.from_env(), **overrides)
    except ConfigError as exc:
        print(f"riskstream controller: {exc}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(logging.INFO)
    asyncio.run(serve(config))
    return 0
