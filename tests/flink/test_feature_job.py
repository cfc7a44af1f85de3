"""The PyFlink feature job against the real stack: Kafka in, features on Kafka and Redis out.

Each test starts the job the way the stack does (``FlinkJobComponent``: ``.venv-flink``'s
Python, a local mini-cluster, a pid file) on private topics, a private consumer group,
a private state directory and entity ids of its own, so tests never see each other's
records or Redis keys. The expected values come from running the aggregation kernel
directly over the same events in event-time order (the replay's order: a label due at
the same time as a transaction comes first), and from the reference implementation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis
from confluent_kafka import Consumer, Message

from riskstream.v1 import events_pb2
from services.common.events import decode_feature_row
from services.common.kafka import EventProducer, KafkaClientSettings
from services.common.prometheus_text import scrape, total
from services.feature_store.aggregation import (
    CardAggregator,
    LabelEvent,
    TerminalAggregator,
    TxEvent,
)
from services.feature_store.definitions import (
    CARD_FEATURES,
    FEATURE_SET_VERSION,
    TERMINAL_FEATURES,
)
from services.feature_store.redis_layout import FeatureViewLayout
from services.feature_store.reference import reference_features
from services.producer.__main__ import publisher_for, stream_to_kafka
from services.producer.config import handbook_dataset_path
from services.producer.events import SimulatedEvent
from services.producer.pacing import Pacer
from services.producer.replay import replay_csv
from services.stack import StackConfig
from services.stack.flink import FlinkJobComponent
from services.stack.process import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
FDH = handbook_dataset_path()
START = datetime(2018, 4, 1, tzinfo=UTC)
TOLERANCE = 1e-9

Expected = dict[tuple[str, str], dict[str, float]]  # (entity type, transaction id) → values
Latest = dict[tuple[str, str], tuple[int, dict[str, float]]]  # (type, id) → (event ms, values)


# --- the job ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def flink_env() -> Path:
    """``.venv-flink``, created or refreshed by its idempotent setup script."""
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "setup_flink_env.sh")], check=True)
    return REPO_ROOT / ".venv-flink" / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class JobUnderTest:
    """One job instance on private topics, with what a test needs to drive and read it."""

    component: FlinkJobComponent
    prefix: str
    settings: KafkaClientSettings
    redis_port: int
    metrics_port: int

    def start(self) -> float:
        """Start (or restart) the job; returns seconds until it reported healthy."""
        started = time.monotonic()
        self.component.process.spawn(self.component.prepare())
        healthy = wait_until(
            lambda: self.component.process.alive() and self.component.health().ok,
            timeout_s=self.component.start_timeout_s,
            interval_s=1.0,
        )
        if not healthy:
            tail = self.component.process.log_tail(40)
            self.component.process.stop(timeout_s=10)
            pytest.fail(f"feature job not healthy: {self.component.health().detail}\n{tail}")
        return time.monotonic() - started

    def topic(self, name: str) -> str:
        return self.prefix + name


@pytest.fixture
def feature_job(
    running_stack: StackConfig,
    kafka_settings: KafkaClientSettings,
    make_topic: Callable[..., str],
    flink_env: Path,
    tmp_path: Path,
) -> Iterator[Callable[..., JobUnderTest]]:
    """Returns ``make(**job_settings)``: a job on fresh topics (not started yet)."""
    jobs: list[JobUnderTest] = []

    def make(**job: object) -> JobUnderTest:
        prefix = f"test-{uuid.uuid4().hex[:10]}-"
        make_topic("transactions", prefix=prefix)
        make_topic("labels", prefix=prefix, partitions=3)
        make_topic("features", prefix=prefix, dlq=False)
        metrics_port = _free_port()
        config = dataclasses.replace(running_stack, state_dir=tmp_path / prefix.strip("-"))
        component = FlinkJobComponent(
            config,
            python=flink_env,
            job={
                "transactions_topic": prefix + "transactions",
                "labels_topic": prefix + "labels",
                "features_topic": prefix + "features",
                "group_id": prefix + "feature-job",
                "metrics_port": metrics_port,
                "jvm_heap_mb": 640,
                **job,
            },
        )
        under_test = JobUnderTest(
            component, prefix, kafka_settings, running_stack.redis.port, metrics_port
        )
        jobs.append(under_test)
        return under_test

    yield make
    for job in jobs:
        job.component.process.stop(timeout_s=30)


# --- events and expectations -------------------------------------------------------------


def _replay(days: float, tag: str, *, card_share: float = 1.0) -> list[SimulatedEvent]:
    """``days`` of the dataset with card and terminal ids made unique to this test.

    ``card_share`` keeps that share of the cards (a stable hash of the id), every
    event of each kept card: day boundaries, window expiry and terminals fed from
    several partitions stay, with fewer events for the mini-cluster to chew through.
    """
    end = START + (days * (datetime(2018, 4, 2, tzinfo=UTC) - START))
    items = [
        item
        for item in replay_csv(FDH, start=START, end=end, sorted_input=True)
        if isinstance(item, SimulatedEvent)
        and zlib.crc32(item.message.card_id.encode()) % 1000 < card_share * 1000
    ]
    for item in items:
        message = item.message
        message.card_id = tag + message.card_id
        message.terminal_id = tag + message.terminal_id
    return items


def _ms(timestamp: object) -> int:
    return timestamp.seconds * 1000 + timestamp.nanos // 1_000_000  # type: ignore[attr-defined]


def _tx_events(items: list[SimulatedEvent]) -> dict[str, TxEvent]:
    """Transaction id → the kernel's event, for every transaction of ``items``."""
    events = {}
    for item in items:
        if item.kind == "transaction":
            tx: events_pb2.Transaction = item.message  # type: ignore[assignment]
            events[tx.transaction_id] = TxEvent(
                tx.transaction_id, tx.card_id, tx.terminal_id, tx.amount, _ms(tx.event_time)
            )
    return events


def _kernel(
    entity_type: str, orders: dict[str, list[TxEvent | LabelEvent]]
) -> tuple[Expected, Latest]:
    """The kernel over each entity's events in the given order: every row, and each
    entity's latest vector (by event time; a tie goes to the later one, as in Redis)."""
    rows: Expected = {}
    latest: Latest = {}
    for entity_id, events in orders.items():
        aggregator = CardAggregator() if entity_type == "card" else TerminalAggregator()
        for event in events:
            if isinstance(event, LabelEvent):
                assert isinstance(aggregator, TerminalAggregator)
                aggregator.add_label(event)
                continue
            values = aggregator.update(event)
            rows[(entity_type, event.transaction_id)] = values
            slot = (entity_type, entity_id)
            if slot not in latest or latest[slot][0] <= event.event_time_ms:
                latest[slot] = (event.event_time_ms, values)
    return rows, latest


def _in_event_order(
    items: list[SimulatedEvent], entity_type: str
) -> dict[str, list[TxEvent | LabelEvent]]:
    """Each card's transactions, or each terminal's transactions and labels, in the
    replay's order: event time (a label's label time), a label before a transaction
    due at the same time, then input order; the order the job applies them in."""
    orders: dict[str, list[TxEvent | LabelEvent]] = defaultdict(list)
    for item in items:
        if item.kind == "transaction":
            tx: events_pb2.Transaction = item.message  # type: ignore[assignment]
            event = TxEvent(
                tx.transaction_id, tx.card_id, tx.terminal_id, tx.amount, _ms(tx.event_time)
            )
            orders[tx.card_id if entity_type == "card" else tx.terminal_id].append(event)
        elif entity_type == "terminal":
            label: events_pb2.Label = item.message  # type: ignore[assignment]
            orders[label.terminal_id].append(
                LabelEvent(label.transaction_id, label.terminal_id, _ms(label.event_time),
                           label.is_fraud)
            )  # fmt: skip
    return orders


def _reference(events: dict[str, TxEvent], labels: list[events_pb2.Label]) -> Expected:
    """Every card and terminal row as the reference implementation computes it."""
    frame = pd.DataFrame(
        [dataclasses.astuple(e) for e in events.values()],
        columns=["transaction_id", "card_id", "terminal_id", "amount", "event_time"],
    )
    known = pd.DataFrame(
        {"transaction_id": [lb.transaction_id for lb in labels],
         "is_fraud": [lb.is_fraud for lb in labels]}
    )  # fmt: skip
    out = reference_features(frame, known).set_index("transaction_id")
    expected: Expected = {}
    for entity_type, names in (("card", CARD_FEATURES), ("terminal", TERMINAL_FEATURES)):
        for transaction_id, values in out[list(names)].iterrows():
            expected[(entity_type, str(transaction_id))] = values.to_dict()
    return expected


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def _consume(settings: KafkaClientSettings, topic: str, until: Callable[[list[Message]], bool],
             timeout_s: float) -> list[Message]:  # fmt: skip
    """Every record of ``topic`` from the start, until ``until(records)`` or the timeout."""
    consumer = Consumer(
        {**settings.client_config(), "group.id": f"verify-{uuid.uuid4().hex[:8]}",
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )  # fmt: skip
    consumer.subscribe([topic])
    records: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(records):
            records += [m for m in consumer.consume(5000, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return records


def _feature_rows(records: list[Message]) -> list[events_pb2.FeatureRow]:
    return [decode_feature_row(r.value()) for r in records]


def _assert_rows_match(rows: list[events_pb2.FeatureRow], expected: Expected) -> None:
    seen = set()
    for row in rows:
        slot = (row.entity_type, row.transaction_id)
        assert slot in expected, f"unexpected row {slot}"
        want = expected[slot]
        assert set(row.values) == set(want), slot
        bad = {k: (row.values[k], want[k]) for k in want if not _close(row.values[k], want[k])}
        assert not bad, f"{slot}: job != kernel: {bad}"
        assert row.feature_set_version == FEATURE_SET_VERSION
        seen.add(slot)
    missing = set(expected) - seen
    assert not missing, f"{len(missing)} rows missing, e.g. {sorted(missing)[:3]}"


def _assert_redis_latest(port: int, latest: Latest) -> None:
    client = redis.Redis(host="127.0.0.1", port=port)
    layouts = {e: FeatureViewLayout.for_entity(e) for e in ("card", "terminal")}
    try:
        slots = sorted(latest)
        with client.pipeline(transaction=False) as pipe:
            for entity_type, entity_id in slots:
                layout = layouts[entity_type]
                pipe.hmget(layout.key(entity_id), layout.hmget_fields)
            replies = pipe.execute()
    finally:
        client.close()
    wrong = []
    for (entity_type, entity_id), raw in zip(slots, replies, strict=True):
        vector = layouts[entity_type].decode_values(raw)
        event_time_ms, want = latest[(entity_type, entity_id)]
        if not vector.found or vector.event_time_ms != event_time_ms:
            wrong.append((entity_type, entity_id, vector.event_time_ms, event_time_ms))
        elif any(not _close(vector.values[k], v) for k, v in want.items()):
            wrong.append((entity_type, entity_id, "values differ"))
    assert not wrong, f"{len(wrong)} of {len(slots)} Redis vectors wrong, e.g. {wrong[:3]}"


def _delete_vectors(port: int, latest: Latest) -> None:
    client = redis.Redis(host="127.0.0.1", port=port)
    layouts = {e: FeatureViewLayout.for_entity(e) for e in ("card", "terminal")}
    try:
        keys = [layouts[entity_type].key(entity_id) for entity_type, entity_id in latest]
        assert client.delete(*keys) > 0
    finally:
        client.close()


def _assert_feast_reads_latest(port: int, latest: Latest, tmp: Path, sample: int = 150) -> None:
    """Feast's own ``get_online_features`` returns what the job wrote: the same vectors
    the kernel's last rows hold (a sample of each entity type, in one call each)."""
    # Feast takes seconds to import; the unit tests of this module do not need it.
    from services.feature_store.definitions import JOIN_KEYS
    from services.feature_store.feast_store import make_store

    store = make_store(f"redis://127.0.0.1:{port}/0", tmp / "offline", tmp / "registry.db")
    for entity_type, view, features in (
        ("card", "card_features", CARD_FEATURES),
        ("terminal", "terminal_features", TERMINAL_FEATURES),
    ):
        ids = sorted(i for t, i in latest if t == entity_type)[:sample]
        join_key = JOIN_KEYS[entity_type]
        got = store.get_online_features(
            features=[f"{view}:{f}" for f in features],
            entity_rows=[{join_key: i} for i in ids],
        ).to_dict()
        wrong = [
            (entity_id, f)
            for row, entity_id in enumerate(ids)
            for f, want in latest[(entity_type, entity_id)][1].items()
            if got[f][row] is None or not _close(got[f][row], want)
        ]
        assert ids and not wrong, f"Feast read {len(wrong)} wrong {entity_type} values: {wrong[:3]}"


def _publish(job: JobUnderTest, items: list[SimulatedEvent], pacer: Pacer | None = None) -> None:
    report = stream_to_kafka(
        items, publisher_for(job.settings, topic_prefix=job.prefix), pacer or Pacer()
    )
    assert report.counts.dead_letters == 0


# --- unit: the job's wire format is the project's ---------------------------------------


def test_feature_row_json_decodes_with_the_wire_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    from flink_jobs.wire import feature_row_json, parse_transaction  # stdlib only

    text = feature_row_json(
        entity_type="card", entity_id="card-1", transaction_id="t-1",
        event_time_ms=1_522_540_831_120, values={"card_tx_count_1d": 2.0, "x": -1.5},
        feature_set_version=FEATURE_SET_VERSION, computed_at_ms=1_522_540_832_000,
    )  # fmt: skip
    row = decode_feature_row(text.encode())
    assert (row.entity_type, row.entity_id, row.transaction_id) == ("card", "card-1", "t-1")
    assert _ms(row.event_time) == 1_522_540_831_120
    assert dict(row.values) == {"card_tx_count_1d": 2.0, "x": -1.5}
    tx = events_pb2.Transaction(
        transaction_id="t-2", card_id="c", terminal_id="m", amount=12.25, currency="EUR"
    )
    tx.event_time.FromMilliseconds(1_522_540_831_007)
    from services.common.events import encode

    assert parse_transaction(encode(tx).decode()) == ("t-2", "c", "m", 12.25, 1_522_540_831_007)


def test_restart_picks_the_newest_retained_checkpoint_and_prunes_older_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    from flink_jobs.feature_job import latest_checkpoint, prune_checkpoints

    assert latest_checkpoint(tmp_path) is None
    for job, n, age in (("old", 9, 30), ("new", 2, 10), ("new", 3, 5), ("new", 4, 0)):
        chk = tmp_path / job / f"chk-{n}"
        chk.mkdir(parents=True)
        if n != 4:  # chk-4 is still being written: no _metadata yet
            (chk / "_metadata").write_bytes(b"x")
            os.utime(chk / "_metadata", (time.time() - age, time.time() - age))
    newest = latest_checkpoint(tmp_path)
    assert newest == tmp_path / "new" / "chk-3"
    prune_checkpoints(tmp_path, newest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


# --- integration ---------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_days_replayed_match_the_kernel_on_kafka_and_redis(feature_job, tmp_path: Path) -> None:
    """Every card and terminal row equals the kernel over the events in event-time
    order and the reference implementation (1e-9), though a terminal's transactions
    come from several partitions of ``transactions`` (keyed by card): the job applies
    a terminal's events when the watermark passes them. The terminal rows of the
    replay's last seconds wait for the transaction partitions' idleness timeout (the
    labels, due 7 days later, then carry the watermark past them).

    At parallelism 2 (two subtasks of every operator, keys split between them, each
    subtask's watermark the minimum over its inputs): the kill -9 test below runs the
    default 1, so both settings are held to the kernel row by row."""
    job = feature_job(parallelism=2)
    items = _replay(2, tag=job.prefix, card_share=0.25)
    events = _tx_events(items)
    labels = [i.message for i in items if i.kind == "label"]
    card_rows, card_latest = _kernel("card", _in_event_order(items, "card"))
    terminal_rows, terminal_latest = _kernel("terminal", _in_event_order(items, "terminal"))
    reference = _reference(events, labels)
    startup_s = job.start()
    sent_at = time.monotonic()
    _publish(job, items)
    published_s = time.monotonic() - sent_at
    cards = {"seen": 0, "rows": 0, "done_s": math.nan}  # when every card row was out

    def all_rows(records: list[Message]) -> bool:
        new = records[int(cards["seen"]) :]
        cards["seen"] = len(records)
        cards["rows"] += sum(b'"entity_type":"card"' in (r.value() or b"") for r in new)
        if cards["rows"] >= len(events) and math.isnan(cards["done_s"]):
            cards["done_s"] = time.monotonic() - sent_at
        return len(records) >= 2 * len(events)

    # 150 s on a quiet box; CI's full stack (its own Flink job, scorer, drift...) has
    # made it run past 300 s.
    records = _consume(job.settings, job.topic("features"), all_rows, timeout_s=540)
    elapsed = time.monotonic() - sent_at
    rows = _feature_rows(records)
    assert len(rows) == 2 * len(events), f"{len(rows)} rows for {len(events)} transactions"
    assert all(r.key().decode() == row.entity_id for r, row in zip(records, rows, strict=True))
    _assert_rows_match(rows, {**card_rows, **terminal_rows})
    _assert_rows_match(rows, reference)
    # The last rows' Redis flush is at most one flush interval behind the topic.
    time.sleep(0.5)
    _assert_redis_latest(job.redis_port, {**card_latest, **terminal_latest})
    _assert_feast_reads_latest(job.redis_port, {**card_latest, **terminal_latest}, tmp_path)
    print(
        f"\nstartup {startup_s:.0f} s; {len(events)} transactions + {len(labels)} labels "
        f"published in {published_s:.1f} s; card rows out after {cards['done_s']:.1f} s, "
        f"all rows after {elapsed:.1f} s"
    )
    # Caught up: once a checkpoint has committed the offsets, nothing is left.
    assert wait_until(lambda: job.component.consumer_lag().total == 0, timeout_s=30)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_late_and_malformed_events_go_to_the_dlq_with_the_reason(feature_job) -> None:
    job = feature_job(idleness_ms=1000, allowed_lateness_ms=3_600_000)
    job.start()
    tag = job.prefix
    base_ms = int(datetime(2026, 1, 5, 12, tzinfo=UTC).timestamp() * 1000)

    def tx(tid: str, card: str, event_ms: int) -> bytes:
        return json.dumps({"transaction_id": tid, "card_id": tag + card,
                           "terminal_id": tag + "term-1", "amount": 10.0,
                           "event_time": datetime.fromtimestamp(event_ms / 1000, UTC)
                           .strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()  # fmt: skip

    producer = EventProducer(job.settings)
    for i in range(12):  # on time, spread over the partitions
        tx_i = tx(f"on-{i}", f"c{i}", base_ms + i)
        producer.send(job.topic("transactions"), tx_i, key=tag + f"c{i}")
    producer.flush()
    _consume(job.settings, job.topic("features"), lambda r: len(r) >= 24, timeout_s=30)
    time.sleep(3)  # the watermark: one periodic emission and the idle partitions' timeout
    late_ms = base_ms - 2 * 3_600_000
    c0 = tag + "c0"
    producer.send(job.topic("transactions"), tx("late-1", "c0", late_ms), key=c0)
    producer.send(job.topic("transactions"), b'{"transaction_id": "bad-1", ', key=c0)
    producer.send(job.topic("transactions"), tx("wrong-key", "c0", base_ms + 11), key=tag + "c1")
    producer.send(job.topic("transactions"), tx("on-12", "c0", base_ms + 12), key=c0)
    producer.flush()

    dead = _consume(job.settings, job.topic("transactions.dlq"), lambda r: len(r) >= 3, 60)
    by_reason = {dict(m.headers())["dlq.reason"].decode(): m for m in dead}
    assert len(by_reason) == 3, list(by_reason)
    late = next(m for reason, m in by_reason.items() if reason.startswith("late event:"))
    assert json.loads(late.value())["transaction_id"] == "late-1", "original bytes kept"
    assert late.key() == c0.encode(), "original key kept"
    headers = dict(late.headers())
    assert headers["dlq.source.topic"].decode() == job.topic("transactions")
    assert {"dlq.source.partition", "dlq.source.offset", "dlq.failed_at_ms"} <= set(headers)
    malformed = next(m for reason, m in by_reason.items() if "not JSON" in reason)
    assert malformed.value() == b'{"transaction_id": "bad-1", '

    rows = _feature_rows(
        _consume(job.settings, job.topic("features"), lambda r: len(r) >= 26, timeout_s=60)
    )
    ids = {r.transaction_id for r in rows}
    assert "on-12" in ids and not {"late-1", "wrong-key"} & ids and len(rows) == 26
    assert any("is not the record key" in reason for reason in by_reason)
    samples = scrape(f"http://127.0.0.1:{job.metrics_port}/metrics")
    assert total(samples, "flink_taskmanager_job_task_operator_late_events") == 1


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_9_then_restart_from_checkpoint_ends_in_the_same_state(feature_job) -> None:
    """SIGKILL the job (driver, JVM, workers) mid-stream, start it again: it resumes
    from the latest retained checkpoint (kernel state, the terminal records waiting for
    the watermark and their timers), every transaction gets its rows (at least once,
    duplicates equal to an event-ordered run), and Redis ends as a run without failure
    leaves it.

    Redis also loses every vector of the test between the kill and the restart (as a
    dead run's unflushed writes are lost, here all of them): the restart writes the
    feature log's rows again before the job starts (``online_repair_window_s``, here
    the whole run), so the vectors of cards and terminals that see no event after the
    restart come back too."""
    job = feature_job(checkpoint_interval_ms=1000, online_repair_window_s=3600)
    items = _replay(1, tag=job.prefix, card_share=0.5)
    events = _tx_events(items)
    card_rows, card_latest = _kernel("card", _in_event_order(items, "card"))
    terminal_rows, terminal_latest = _kernel("terminal", _in_event_order(items, "terminal"))
    job.start()
    half = len(items) // 2
    # Kill once a checkpoint of this run holds part of the stream and more is in flight:
    # 40 % of the first half's rows out, the rest still coming at 2,000 events/s.
    kill_after = int(0.4 * 2 * sum(i.kind == "transaction" for i in items[:half]))
    producer = threading.Thread(target=_publish, args=(job, items[:half], Pacer(max_rate=2000)))
    producer.start()
    assert wait_until(
        lambda: (
            len(_consume(job.settings, job.topic("features"), lambda r: len(r) > kill_after, 5))
            > kill_after
        ),
        timeout_s=120,
    )
    time.sleep(1.5)
    assert job.component.process.kill(), "the job was running"
    producer.join()
    assert not job.component.process.alive()
    _delete_vectors(job.redis_port, {**card_latest, **terminal_latest})

    job.start()  # repairs Redis, then restores from the latest retained checkpoint
    log_tail = job.component.process.log_tail(400)
    assert "restoring from /" in log_tail
    assert "online store repaired" in log_tail
    _publish(job, items[half:])
    wanted = {("card", t) for t in events} | {("terminal", t) for t in events}
    records = _consume(
        job.settings, job.topic("features"),
        lambda r: {(row.entity_type, row.transaction_id) for row in _feature_rows(r)} >= wanted,
        timeout_s=540,
    )  # fmt: skip
    rows = _feature_rows(records)
    assert len(rows) >= 2 * len(events)  # at least once: rows after the checkpoint come twice
    _assert_rows_match(rows, {**card_rows, **terminal_rows})
    time.sleep(0.5)
    _assert_redis_latest(job.redis_port, {**card_latest, **terminal_latest})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v", "-s"]))
