"""``riskstream up | down | status``: the local stack from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time

from services.common.errors import RiskstreamError
from services.stack import Stack, load_stack_config


def _components(arg: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in arg.split(",") if c.strip()) if arg else ()


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register up, down and status."""
    only_help = (
        "comma-separated components (kafka,redis,prometheus,flink,offline-writer,scoring,"
        "controller,drift,trainer); default all"
    )
    up = sub.add_parser("up", help="start Kafka, Redis and Prometheus; create topics")
    up.add_argument("--only", help=only_help)
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop what `riskstream up` started")
    down.add_argument("--only", help=only_help)
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="health of each component")
    status.add_argument("--only", help=only_help)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)


def _stack(args: argparse.Namespace, *, quiet: bool = False) -> Stack:
    def progress(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    return Stack(load_stack_config(), only=_components(args.only), progress=progress)


def cmd_up(args: argparse.Namespace) -> int:
    """Start what is not running; exit 1 with a clear message when something fails."""
    started = time.monotonic()
    try:
        _stack(args).up()
    except RiskstreamError as exc:
        print(f"riskstream up failed: {exc}", file=sys.stderr)
        return 1
    print(f"stack up in {time.monotonic() - started:.1f} s")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Stop only the processes this stack started."""
    _stack(args).down()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print each component's health; exit 1 when any is unhealthy."""
    rows = _stack(args, quiet=True).status()
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        for r in rows:
            state = "healthy" if r.healthy else "DOWN"
            owner = f"pid {r.pid}" if r.running else "not started by us"
            ports = ",".join(map(str, r.ports))
            print(f"{r.name:<15} {state:<8} {owner:<18} ports {ports:<10} {r.detail}")
    return 0 if all(r.healthy for r in rows) else 1
