"""``riskstream demo``: the whole loop on this machine, with a summary and an HTML report.

Thin: parses the options, runs :class:`services.demo.__main__.Demo`, prints the
summary and writes the report. The demo runs its own private stack (own state
directory and ports), so a stack already running here is left alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from services.common.errors import RiskstreamError


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register demo."""
    demo = sub.add_parser(
        "demo",
        help="drift → retrain → canary → promotion on a private stack, with a report",
    )
    demo.add_argument("--keep", action="store_true", help="leave the demo's stack running")
    demo.add_argument(
        "--report",
        type=Path,
        default=Path("riskstream-demo-report.html"),
        help="where to write the HTML report (default ./riskstream-demo-report.html)",
    )
    demo.add_argument("--json", type=Path, help="also write the result as JSON to this file")
    demo.add_argument("--home", type=Path, help="state directory (default: a fresh temp dir)")
    demo.add_argument("--seed", type=int, help="simulator seed (default 42)")
    demo.set_defaults(func=cmd_demo)


def _print(line: str) -> None:
    print(line, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo. Exit status: 0 promoted, 2 the loop did not complete, 1 failed."""
    from services.demo.__main__ import Demo
    from services.demo.config import DemoConfig
    from services.demo.report import render_html, result_json, summary_lines

    started = time.monotonic()
    try:
        config = DemoConfig.from_env(home=args.home, seed=args.seed)
        result = Demo(config, progress=_print, keep=args.keep).run()
    except RiskstreamError as exc:
        print(f"riskstream demo failed after {time.monotonic() - started:.0f} s: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    print("\n== summary")
    for line in summary_lines(result):
        print(f"  {line}")
    args.report.write_text(render_html(result))
    print(f"\nreport: {args.report.resolve()}")
    if args.json:
        args.json.write_text(result_json(result))
    return 0 if result.promoted else 2
