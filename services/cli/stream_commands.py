"""``riskstream produce | replay | consume``: events into and out of Kafka."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from confluent_kafka import Message

from services.common.errors import ConfigError, RiskstreamError
from services.common.events import DECODERS, encode
from services.common.kafka import (
    BatchConsumer,
    DeadLetterPublisher,
    EventProducer,
)
from services.common.settings import LOOPBACK, bind_host
from services.producer.__main__ import (
    live_simulator_config,
    publisher_for,
    stderr_progress,
    stream_to_kafka,
)
from services.producer.config import SimulatorConfig
from services.producer.pacing import Pacer
from services.producer.replay import replay_csv
from services.producer.simulator import TransactionSimulator
from services.producer.telemetry import prometheus_or_null
from services.stack import load_stack_config, local_kafka_settings


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date: {text!r}") from exc


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _listen_address(text: str) -> str:
    try:
        return bind_host("--metrics-host", text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register produce, replay and consume."""
    produce = sub.add_parser("produce", help="stream simulated transactions and labels")
    produce.add_argument("--rate", type=_positive, default=1000.0, help="events/s (default 1000)")
    produce.add_argument("--duration", type=_positive, default=10.0, help="seconds (default 10)")
    produce.add_argument("--drift-at", type=_positive, help="inject drift after S seconds")
    produce.add_argument("--seed", type=int, default=42)
    produce.add_argument("--customers", type=int, help="simulated cards (default 5000)")
    produce.add_argument("--terminals", type=int, help="simulated terminals (default 10000)")
    produce.add_argument("--metrics-host", type=_listen_address, default=LOOPBACK,
                         help=f"metrics endpoint bind address (default {LOOPBACK})")  # fmt: skip
    produce.set_defaults(func=cmd_produce)

    replay = sub.add_parser("replay", help="replay a CSV in the Fraud Detection Handbook format")
    replay.add_argument("file")
    replay.add_argument("--from", dest="start", type=_date, help="first date (inclusive)")
    replay.add_argument("--to", dest="end", type=_date, help="last date (exclusive)")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument("--speedup", type=_positive, help="event-time seconds per wall second")
    pace.add_argument("--rate", type=_positive, help="events/s cap")
    pace.add_argument("--max-rate", action="store_true", help="as fast as Kafka takes them")
    replay.add_argument("--label-delay-days", type=_positive, default=7.0)
    replay.add_argument("--limit", type=int, help="stop after N rows")
    replay.set_defaults(func=cmd_replay)

    consume = sub.add_parser("consume", help="validate and read a topic (bad records → DLQ)")
    consume.add_argument("topic", choices=sorted(DECODERS))
    consume.add_argument("--group", default="riskstream-cli")
    consume.add_argument("--max", type=int, help="stop after N records")
    consume.add_argument("--idle-timeout", type=_positive, default=5.0, help="stop when idle")
    consume.add_argument("--print", action="store_true", help="print each valid record")
    consume.set_defaults(func=cmd_consume)


def cmd_produce(args: argparse.Namespace) -> int:
    """Stream the simulator to Kafka at ``--rate`` for ``--duration`` seconds."""
    overrides = {"seed": args.seed}
    if args.customers:
        overrides["n_customers"] = args.customers
    if args.terminals:
        overrides["n_terminals"] = args.terminals
    try:
        base = SimulatorConfig(**overrides)
        config = live_simulator_config(
            base, rate=args.rate, duration_s=args.duration, drift_at_s=args.drift_at
        )
        stack = load_stack_config()
        telemetry = prometheus_or_null(stack.metrics_ports["producer"], host=args.metrics_host)
        print(
            f"simulating from {config.start:%Y-%m-%d} (seed {config.seed}"
            + (f", drift at {config.drift_start:%Y-%m-%d %H:%M}" if config.drift_start else "")
            + f") at {args.rate:,.0f} events/s for {args.duration:g} s",
            file=sys.stderr,
        )
        stream_to_kafka(
            TransactionSimulator(config).stream(),
            publisher_for(local_kafka_settings("riskstream-producer")),
            Pacer(max_rate=args.rate),
            duration_s=args.duration,
            telemetry=telemetry,
            progress=stderr_progress,
        )
    except RiskstreamError as exc:
        print(f"\nriskstream produce failed: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay a recorded CSV, labels at event time + the label delay."""
    pacer = (
        Pacer(speedup=args.speedup)
        if args.speedup
        else Pacer(max_rate=args.rate)
        if args.rate
        else Pacer()
    )
    try:
        stream = replay_csv(
            args.file,
            start=args.start,
            end=args.end,
            label_delay=timedelta(days=args.label_delay_days),
            max_rows=args.limit,
        )
        stream_to_kafka(
            stream,
            publisher_for(local_kafka_settings("riskstream-replay")),
            pacer,
            progress=stderr_progress,
        )
    except RiskstreamError as exc:
        print(f"\nriskstream replay failed: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    """Read a topic through the validating consumer; invalid records go to its DLQ."""
    decode = DECODERS[args.topic]
    settings = local_kafka_settings("riskstream-consume")

    def handle(record: Message) -> None:
        message = decode(record.value() or b"")
        if args.print:
            sys.stdout.write(encode(message).decode() + "\n")

    consumer = BatchConsumer(
        settings,
        args.group,
        [args.topic],
        handler=handle,
        dead_letters=DeadLetterPublisher(EventProducer(settings)),
    )
    try:
        stats = consumer.run(max_records=args.max, idle_timeout_s=args.idle_timeout)
    except RiskstreamError as exc:
        print(f"riskstream consume stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        consumer.close()
    print(
        f"{args.topic}: {stats.processed:,} valid, {stats.dead_lettered:,} sent to "
        f"{args.topic}.dlq",
        file=sys.stderr,
    )
    return 0
