"""Entry point of the ``riskstream`` console script."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from services.cli import (
    controller_commands,
    demo_commands,
    drift_commands,
    evaluate_commands,
    feature_commands,
    model_commands,
    registry_commands,
    scoring_commands,
    stack_commands,
    stream_commands,
)


def build_parser() -> argparse.ArgumentParser:
    """The full command tree."""
    parser = argparse.ArgumentParser(
        prog="riskstream", description="Real-time fraud scoring on Kafka, Flink and Redis."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    stack_commands.add_parsers(sub)
    stream_commands.add_parsers(sub)
    feature_commands.add_parsers(sub)
    model_commands.add_parsers(sub)
    evaluate_commands.add_parsers(sub)
    registry_commands.add_parsers(sub)
    scoring_commands.add_parsers(sub)
    controller_commands.add_parsers(sub)
    drift_commands.add_parsers(sub)
    demo_commands.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, configure logging (only here), run the command."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else os.environ.get("RISKSTREAM_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
