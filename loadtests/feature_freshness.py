"""The PyFlink feature job under load: start-up, throughput, produce → Redis freshness.

Each run starts its own job (``FlinkJobComponent``, as the stack does) on private
topics, a private consumer group and a temporary state directory, against the
running stack, and stops it afterwards. Loopback only, bounded in time.

* ``freshness``: transactions at ``--rate`` a second, ``--warmup`` seconds (the JVM
  and the job warm up: the first ~20 s after start are slow) then ``--duration``
  seconds measured, each
  on a card never seen before and stamped with the current time; a poller watches
  Redis for each card's key. Freshness = Redis has the vector - the producer was
  handed the record (so it includes the producer's linger, Kafka, the job and the
  Redis flush). Also: seconds from spawning the job until the first vector of an
  event sent at spawn time is in Redis (start-up to first output). ``--entity
  terminal`` gives each transaction a terminal never seen before and watches the
  terminals' keys instead: terminal vectors wait for the watermark (event-time
  order), so they lag by the watermark's delay. Each transaction's label follows it
  ``--label-delay`` seconds later on ``labels`` (``--label-ratio`` labels per
  transaction, default 1: the events/s printed count both). That keeps the
  watermark moving on both topics, so terminal records are drained and their rows
  written throughout, as in production. With ``--label-ratio 0`` the empty
  ``labels`` partitions hold the watermark back until their idleness timeout
  (``idleness_ms``, 60 s): until then the job only queues terminal records, and
  then applies them all at once, so such a run measures a job doing half its work.
* ``throughput``: ``--days`` of the Fraud Detection Handbook dataset (transactions
  and their labels) preloaded, then the job started; transactions/s from the first
  ``features`` row until every card row is out. Terminal rows wait for the watermark,
  and the last ones for the input's idleness timeout (``idleness_ms``, 60 s), so the
  time to the last row of all (printed too) measures that wait, not the job.

Run with the stack up::

    .venv/bin/python -m loadtests.feature_freshness freshness --rate 500   # + 500 labels/s
    .venv/bin/python -m loadtests.feature_freshness throughput --days 2 --mode process
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.events import decode_label, decode_transaction
from services.common.kafka import EventProducer, KafkaClientSettings
from services.feature_store.redis_layout import FeatureViewLayout
from services.producer.__main__ import publisher_for, stream_to_kafka
from services.producer.events import SimulatedEvent
from services.producer.pacing import Pacer
from services.producer.replay import replay_csv
from services.stack import StackConfig, load_stack_config
from services.stack.flink import FlinkJobComponent
from services.stack.process import wait_until

FDH = Path("/work/shared/data/fdh/transactions.csv.gz")


@contextmanager
def job_on_private_topics(
    stack: StackConfig, mode: str, **job: object
) -> Iterator[tuple[FlinkJobComponent, str]]:
    """A (not yet started) job on fresh topics; stopped and cleaned up on exit."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
    names = {"transactions": 6, "transactions.dlq": 6, "labels": 3, "labels.dlq": 3}
    names["features"] = 6
    topics = [NewTopic(prefix + n, p, 1) for n, p in names.items()]
    for future in admin.create_topics(topics).values():
        future.result(30)
    with tempfile.TemporaryDirectory(prefix="feature-bench-") as home:
        component = FlinkJobComponent(
            dataclasses.replace(stack, state_dir=Path(home)),
            job={
                "transactions_topic": prefix + "transactions",
                "labels_topic": prefix + "labels",
                "features_topic": prefix + "features",
                "group_id": prefix + "job",
                "execution_mode": mode,
                "metrics_port": 0,
                **job,
            },
        )
        try:
            yield component, prefix
        finally:
            component.process.stop(timeout_s=30)
            for future in admin.delete_topics([t.topic for t in topics]).values():
                future.exception(30)


def _label(prefix: str, i: int, terminal: str, event_time: str) -> bytes:
    """A Label of transaction ``i`` in the topic's JSON: known now, fraud one time in 100."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (
        f'{{"transaction_id":"{prefix}tx-{i}","card_id":"{prefix}card-{i}",'
        f'"terminal_id":"{terminal}","is_fraud":{"true" if i % 100 == 0 else "false"},'
        f'"event_time":"{event_time}","label_time":"{now}"}}'
    ).encode()


def _tx(prefix: str, i: int, terminals: int) -> tuple[str, str, bytes, str]:
    """(card id, terminal id, payload, event time): a Transaction in the topic's JSON,
    stamped now;
    ``terminals`` = 0: a terminal of its own.

    Written as text, not through protobuf's json_format: the probe shares the
    machine with the job, so it must stay cheap (the first payload of a run is
    checked with the wire kernel's decoder).
    """
    card = f"{prefix}card-{i}"
    terminal = f"{prefix}term-{random.randrange(terminals) if terminals else f'u{i}'}"
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    payload = (
        f'{{"transaction_id":"{prefix}tx-{i}","card_id":"{card}",'
        f'"terminal_id":"{terminal}",'
        f'"amount":{random.uniform(1, 200):.2f},"currency":"EUR","event_time":"{now}"}}'
    )
    return card, terminal, payload.encode(), now


def freshness(
    stack: StackConfig,
    mode: str,
    rate: float,
    duration_s: float,
    warmup_s: float,
    job_settings: dict[str, str],
    entity: str = "card",
    label_ratio: float = 1.0,
    label_delay_s: float = 5.0,
) -> None:
    settings = KafkaClientSettings(bootstrap_servers=stack.kafka.bootstrap_servers)
    layout = FeatureViewLayout.for_entity(entity)
    terminals = 1000 if entity == "card" else 0
    client = redis.Redis(host="127.0.0.1", port=stack.redis.port)
    with job_on_private_topics(stack, mode, **job_settings) as (job, prefix):
        topic = prefix + "transactions"
        producer = EventProducer(settings, linger_ms=5)
        sent: dict[bytes, float] = {}  # Redis key -> wall time the record was handed over
        seen: dict[bytes, float] = {}
        lock = threading.Lock()
        stop = threading.Event()

        order: list[bytes] = []  # keys in send order

        def poll() -> None:
            oldest = 0  # index in order of the oldest key not yet seen
            while not stop.is_set() or len(seen) < len(sent):
                # The oldest keys not yet seen: vectors arrive about in send order, and
                # a poller that checked every pending key would steal the job's CPU.
                with lock:
                    while oldest < len(order) and order[oldest] in seen:
                        oldest += 1
                    pending = [k for k in order[oldest : oldest + 64] if k not in seen]
                if pending:
                    with client.pipeline(transaction=False) as pipe:
                        for key in pending:
                            pipe.exists(key)
                        found = pipe.execute()
                    now = time.time()
                    for key, hit in zip(pending, found, strict=True):
                        if hit:
                            seen[key] = now
                if stop.is_set() and time.time() > deadline:
                    return
                time.sleep(0.003)

        deadline = float("inf")
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()

        decode_transaction(_tx(prefix, 0, terminals)[2])  # the formats are the topics'
        decode_label(_label(prefix, 0, "t", "2018-04-01T00:00:31Z"))

        labelled: collections.deque[tuple[float, int, str, str]] = collections.deque()
        labels_sent = 0

        def send(i: int) -> None:
            nonlocal labels_sent
            card, terminal, payload, event_time = _tx(prefix, i, terminals)
            key = layout.key(card if entity == "card" else terminal)
            now = time.time()
            with lock:
                sent[key] = now
                order.append(key)
            producer.send(topic, payload, key=card)
            # Chargebacks: transactions sent label_delay_s ago get their label now, so
            # the labels topic carries label_ratio labels per transaction and the
            # watermark moves on both topics, as in production.
            if label_ratio > 0:
                labelled.append((now, i, terminal, event_time))
                while (
                    labelled
                    and labelled[0][0] <= now - label_delay_s
                    and (labels_sent < label_ratio * i)
                ):
                    _, j, their_terminal, their_time = labelled.popleft()
                    label = _label(prefix, j, their_terminal, their_time)
                    producer.send(prefix + "labels", label, key=f"{prefix}tx-{j}")
                    labels_sent += 1

        spawned = time.time()
        job.process.spawn(job.prepare())
        send(0)
        producer.flush()
        assert wait_until(lambda: len(seen) == 1, timeout_s=300, interval_s=0.05), "no output"
        first_output_s = max(seen.values()) - spawned
        assert wait_until(lambda: job.health().ok, timeout_s=60), job.health().detail

        started = time.perf_counter()
        measured_from = time.time() + warmup_s
        n = 1
        while (elapsed := time.perf_counter() - started) < warmup_s + duration_s:
            due = int(elapsed * rate) + 1
            while n < due:
                send(n)
                n += 1
            producer.poll(0)
            time.sleep(0.001)
        producer.flush()
        seconds = time.perf_counter() - started
        achieved, events = (n - 1) / seconds, (n - 1 + labels_sent) / seconds
        deadline = time.time() + 30
        stop.set()
        poller.join(40)
        startup_key = layout.key(f"{prefix}card-0" if entity == "card" else f"{prefix}term-u0")
        latencies = sorted(
            (seen[k] - t) * 1000
            for k, t in sent.items()
            if k in seen and k != startup_key and t >= measured_from
        )
        missing = len(sent) - len(seen)
        lag = job.consumer_lag()
    client.close()
    if len(latencies) >= 2:
        q = statistics.quantiles(latencies, n=100)
        cells = f"{q[49]:.0f} | {q[94]:.0f} | {q[98]:.0f} | {max(latencies):.0f}"
    else:
        # So far behind that (almost) no measured vector reached Redis within 30 s of
        # the last send: the row says so instead of inventing percentiles.
        cells = f"behind: {len(latencies)} measured vectors in Redis | - | - | -"
    print(
        f"| {mode} | {entity} | {achieved:,.0f} tx/s | {events:,.0f} events/s | "
        f"{cells} | {missing} | {first_output_s:.0f} s | lag {lag.total} |"
    )


def throughput(stack: StackConfig, mode: str, days: float, job_settings: dict[str, str]) -> None:
    settings = KafkaClientSettings(bootstrap_servers=stack.kafka.bootstrap_servers)
    start = datetime(2018, 4, 1, tzinfo=UTC)
    items = [
        i
        for i in replay_csv(FDH, start=start, end=start + timedelta(days=days), sorted_input=True)
        if isinstance(i, SimulatedEvent)
    ]
    n_tx = sum(1 for i in items if i.kind == "transaction")
    with job_on_private_topics(stack, mode, **job_settings) as (job, prefix):
        stream_to_kafka(items, publisher_for(settings, topic_prefix=prefix), Pacer())
        probe = Consumer(
            {
                "bootstrap.servers": stack.kafka.bootstrap_servers,
                "group.id": prefix + "probe",
                "enable.auto.commit": False,
            }
        )
        probe.assign([TopicPartition(prefix + "features", p, 0) for p in range(6)])
        spawned = time.monotonic()
        job.process.spawn(job.prepare())
        first = cards_done = all_done = 0.0
        cards = rows = 0
        deadline = spawned + 1800
        while rows < 2 * n_tx and time.monotonic() < deadline:
            for message in probe.consume(1000, timeout=0.2):
                if message.error():
                    continue
                rows += 1
                cards += message.value().startswith(b'{"entity_type":"card"')
            now = time.monotonic()
            if rows and not first:
                first = now
            if cards >= n_tx and not cards_done:
                cards_done = now
        all_done = time.monotonic()
        probe.close()
    assert first and cards_done and rows >= 2 * n_tx, f"{cards} card rows, {rows} rows"
    card_s, all_s = cards_done - first, all_done - first
    print(f"| {mode} | {days:g} days: {n_tx:,} tx + {len(items) - n_tx:,} labels | "
          f"{first - spawned:.0f} s | {card_s:.1f} s | {n_tx / card_s:,.0f} tx/s | "
          f"{len(items) / card_s:,.0f} events/s | {all_s:.1f} s |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("measure", choices=["freshness", "throughput"])
    parser.add_argument("--mode", choices=["thread", "process"], default="thread")
    parser.add_argument("--rate", type=float, default=1000.0, help="transactions/s")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    parser.add_argument(
        "--label-ratio", type=float, default=1.0, help="labels sent per transaction (0: none)"
    )
    parser.add_argument(
        "--label-delay", type=float, default=5.0, help="seconds from a transaction to its label"
    )
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds at the rate first")
    parser.add_argument("--days", type=float, default=2.0, help="days of the dataset")
    parser.add_argument(
        "--entity", choices=["card", "terminal"], default="card", help="whose vectors to watch"
    )
    parser.add_argument(
        "--job", action="append", default=[], metavar="FIELD=VALUE",
        help="a job setting (a flink_jobs.config field), e.g. --job bundle_size=1000",
    )  # fmt: skip
    args = parser.parse_args()
    job_settings = dict(item.split("=", 1) for item in args.job)
    stack = load_stack_config()
    if args.measure == "freshness":
        print(
            "| mode | entity | rate | with labels | p50 ms | p95 ms | p99 ms | max ms | missing "
            "| first output | end |"
        )
        freshness(
            stack, args.mode, args.rate, args.duration, args.warmup, job_settings, args.entity,
            args.label_ratio, args.label_delay,
        )  # fmt: skip
    else:
        print("| mode | input | first output | card rows drained | tx/s | events/s | all rows |")
        throughput(stack, args.mode, args.days, job_settings)


if __name__ == "__main__":
    main()
