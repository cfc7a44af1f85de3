"""Simulator → Kafka producer throughput, validating-consumer throughput, cold `up` time.

Bounded in count and time, loopback only. Each figure is the median of ``--repeats``
runs (machines here are noisy). Run with the stack up::

    .venv/bin/python -m loadtests.kafka_throughput --events 200000 --repeats 3

Prints a Markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka.admin import AdminClient, NewTopic

from services.common.events import decode_transaction
from services.common.kafka import (
    BatchConsumer,
    DeadLetterPublisher,
    EventProducer,
    KafkaClientSettings,
)
from services.producer.__main__ import publisher_for, stream_to_kafka
from services.producer.config import SimulatorConfig
from services.producer.events import SimulatedEvent
from services.producer.pacing import Pacer
from services.producer.simulator import TransactionSimulator
from services.stack import load_stack_config


def _topics(admin: AdminClient, prefix: str) -> None:
    names = [f"{prefix}transactions", f"{prefix}transactions.dlq", f"{prefix}labels"]
    for future in admin.create_topics([NewTopic(n, 6, 1) for n in names]).values():
        future.result(30)


def simulate(n: int) -> tuple[list[SimulatedEvent], float]:
    """Generate n events (no Kafka): the simulator's own speed."""
    started = time.perf_counter()
    sim = TransactionSimulator(SimulatorConfig(seed=5))
    items = [e for e in sim.stream().take(n) if isinstance(e, SimulatedEvent)]
    return items, n / (time.perf_counter() - started)


def produce(settings: KafkaClientSettings, prefix: str, items: list[SimulatedEvent]) -> float:
    """Validate + encode + send + wait for every acknowledgement; events/s."""
    publisher = publisher_for(settings, topic_prefix=prefix)
    report = stream_to_kafka(items, publisher, Pacer())
    return len(items) / report.elapsed_s


def consume(settings: KafkaClientSettings, prefix: str, n: int) -> float:
    """Decode + validate every record, commit per batch; events/s."""
    consumer = BatchConsumer(
        settings,
        f"bench-{uuid.uuid4().hex[:8]}",
        [f"{prefix}transactions"],
        handler=lambda r: decode_transaction(r.value()),
        dead_letters=DeadLetterPublisher(EventProducer(settings)),
        batch_size=1000,
    )
    # Wait for the assignment before timing.
    consumer.run(max_records=1, idle_timeout_s=30)
    before = consumer.stats.processed
    started = time.perf_counter()
    consumer.run(max_records=n, idle_timeout_s=10)
    elapsed = time.perf_counter() - started
    consumer.close()
    return (consumer.stats.processed - before) / elapsed


def cold_up() -> float:
    """`riskstream up` on an empty state directory (jars already cached), seconds."""
    ports = []
    for _ in range(4):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "RISKSTREAM_HOME": home,
            "RISKSTREAM_KAFKA_PORT": str(ports[0]),
            "RISKSTREAM_KAFKA_CONTROLLER_PORT": str(ports[1]),
            "RISKSTREAM_REDIS_PORT": str(ports[2]),
            "RISKSTREAM_PROMETHEUS_PORT": str(ports[3]),
        }
        cli = [sys.executable, "-m", "services.cli"]
        started = time.perf_counter()
        subprocess.run([*cli, "up"], env=env, check=True, capture_output=True, timeout=300)
        elapsed = time.perf_counter() - started
        subprocess.run([*cli, "down"], env=env, check=True, capture_output=True, timeout=120)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    stack = load_stack_config()
    settings = KafkaClientSettings(bootstrap_servers=stack.kafka.bootstrap_servers)
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
    sim_rates, prod_rates, cons_rates, ups = [], [], [], []
    for run in range(args.repeats):
        prefix = f"bench-{uuid.uuid4().hex[:8]}-"
        _topics(admin, prefix)
        items, sim_rate = simulate(args.events)
        sim_rates.append(sim_rate)
        n_tx = sum(1 for e in items if e.kind == "transaction")
        prod_rates.append(produce(settings, prefix, items))
        cons_rates.append(consume(settings, prefix, n_tx - 1))
        ups.append(cold_up())
        admin.delete_topics([f"{prefix}transactions", f"{prefix}transactions.dlq",
                             f"{prefix}labels"])  # fmt: skip
        print(
            f"run {run + 1}: simulate {sim_rate:,.0f}/s, produce {prod_rates[-1]:,.0f}/s, "
            f"consume {cons_rates[-1]:,.0f}/s, cold up {ups[-1]:.1f} s",
            file=sys.stderr,
        )
    med = statistics.median
    print(f"\nMachine: {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"Events per run: {args.events:,}; median of {args.repeats} runs\n")
    print("| stage | median | runs |")
    print("|---|---|---|")
    fmt = lambda xs: ", ".join(f"{x:,.0f}" for x in xs)  # noqa: E731
    print(f"| simulator only (events/s) | {med(sim_rates):,.0f} | {fmt(sim_rates)} |")
    print(f"| simulator → validate → Kafka, all acked (events/s) | {med(prod_rates):,.0f} "
          f"| {fmt(prod_rates)} |")  # fmt: skip
    print(f"| Kafka → validating BatchConsumer, commit per batch (events/s) | "
          f"{med(cons_rates):,.0f} | {fmt(cons_rates)} |")  # fmt: skip
    print(f"| cold `riskstream up`, jars cached (s) | {med(ups):.1f} | "
          f"{', '.join(f'{u:.1f}' for u in ups)} |")  # fmt: skip


if __name__ == "__main__":
    main()
