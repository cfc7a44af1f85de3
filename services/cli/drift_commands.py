"""``riskstream drift``: the drift monitor in the foreground.

``riskstream up`` runs the same process in the background; its settings are the
``RISKSTREAM_DRIFT_*`` variables, a few of which the flags override.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from services.common.errors import ConfigError


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register drift."""
    drift = sub.add_parser(
        "drift",
        help="run the drift monitor (feature drift, decay, staleness -> retrain requests) "
        "in the foreground",
    )
    drift.add_argument("--model-name", help="the model whose champion is monitored")
    drift.add_argument("--window-rows", type=int, help="rows that close a window")
    drift.add_argument("--window-s", type=float, help="seconds that close a window")
    drift.add_argument(
        "--false-alarm-rate",
        type=float,
        help="confirmed drifts per window accepted on a stationary stream",
    )
    drift.add_argument("--report-dir", help="where window reports go")
    drift.set_defaults(func=cmd_drift)


def cmd_drift(args: argparse.Namespace) -> int:
    """Run the monitor until SIGINT / SIGTERM; exit 2 on a bad setting."""
    from services.drift.__main__ import worker
    from services.drift.config import DriftConfig

    overrides = {
        k: v
        for k, v in {
            "model_name": args.model_name,
            "window_rows": args.window_rows,
            "window_s": args.window_s,
            "false_alarm_rate": args.false_alarm_rate,
            "report_dir": args.report_dir,
        }.items()
        if v is not None
    }
    try:
        config = dataclasses.replace(DriftConfig.from_env(), **overrides)
    except ConfigError as exc:
        print(f"riskstream drift: {exc}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ("faust", "mode", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    worker(config).execute_from_commandline()
    return 0
