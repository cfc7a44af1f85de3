"""Re-apply the feature log's recent rows to Redis before a restored job starts.

Why. The job writes Redis from Python through a buffer (``OnlineStoreBuffer``,
flushed every ``redis_flush_interval_ms``), and PyFlink gives a Python function no
hook at a checkpoint barrier. So a vector can be in a completed checkpoint's state
(its event will not be replayed) and still in the buffer when the process dies: that
write is lost, and Redis keeps the entity's older vector until its next event. The
``features`` topic does not lose it: its Kafka sink flushes at every checkpoint (at
least once). On a restore, :func:`reapply_feature_log` reads the rows the topic got
from ``window_s`` before the restored checkpoint to its end and writes them again
with the newer-wins script (``RedisFeatureWriter(skip_older=True)``), so no stored
vector goes back in time and re-applying is harmless. The same call rebuilds a
lost or flushed Redis from the feature log, as far back as the topic's retention.

Rows of another feature-set version (written before a definition changed) are
skipped: their values are not this version's features. Rows are read with the job's
wire kernel (``flink_jobs/wire.py``): the job's environment cannot load the
project's generated protobuf code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from confluent_kafka import KafkaException, TopicPartition

from flink_jobs.wire import WireError, parse_feature_row
from services.common.errors import InvalidEvent
from services.common.kafka import KafkaClientSettings, assign_from, whole_log_consumer
from services.feature_store.definitions import FEATURE_SET_VERSION
from services.feature_store.redis_layout import RedisFeatureWriter

log = logging.getLogger("flink_jobs.online_repair")


@dataclass(frozen=True)
class RepairReport:
    """What a repair read and wrote.

    Attributes:
        rows: feature rows read from the topic.
        written: vectors Redis took (not older than what it held).
        skipped: rows not applied: another feature-set version or an invalid row.
        seconds: wall time of the repair.
    """

    rows: int
    written: int
    skipped: int
    seconds: float


def reapply_feature_log(
    *,
    bootstrap_servers: str,
    topic: str,
    since_ms: int,
    redis_host: str,
    redis_port: int,
    redis_db: int = 0,
    batch_size: int = 1_000,
    timeout_s: float = 60.0,
) -> RepairReport:
    """Write every ``topic`` row produced at or after ``since_ms`` (epoch ms) to Redis.

    Reads each partition from the first record at or after ``since_ms`` to the end
    it has when the call starts, without a consumer group (nothing is committed).

    Raises:
        KafkaException: the broker or the topic cannot be reached, or no record
            came for ``timeout_s`` before the end was reached (a rebuild from days
            of rows may take minutes: only a stall fails it).
        OnlineStoreError: Redis refused a write.
    """
    started = time.monotonic()
    consumer = whole_log_consumer(
        KafkaClientSettings(bootstrap_servers=bootstrap_servers), "online-repair"
    )
    client = redis.Redis(host=redis_host, port=redis_port, db=redis_db, socket_timeout=10)
    writer = RedisFeatureWriter(client, batch_size=batch_size)
    rows = written = skipped = 0
    try:
        ends = assign_from(consumer, topic, at_ms=since_ms, timeout_s=timeout_s)
        progress_at = time.monotonic()
        while ends:
            if time.monotonic() - progress_at > timeout_s:
                raise KafkaException(f"repair: no record from {topic} for {timeout_s:.0f} s")
            records = consumer.consume(num_messages=1_000, timeout=0.5)
            if records:
                progress_at = time.monotonic()
            for record in records:
                if record.error() is not None:
                    raise KafkaException(record.error())
                if record.offset() >= ends.get(record.partition(), 0):
                    continue  # produced after the repair started: the job's own
                rows += 1
                applied = _apply(writer, record.value() or b"")
                if applied is None:
                    skipped += 1
                else:
                    written += applied
            # Done with a partition once the position passed its end (offsets need
            # not be contiguous, so the position says it, not the last record seen).
            for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                if tp.offset >= ends[tp.partition]:
                    del ends[tp.partition]
        written += writer.flush().written
    finally:
        consumer.close()
        client.close()
    return RepairReport(rows, written, skipped, time.monotonic() - started)


def _apply(writer: RedisFeatureWriter, payload: bytes) -> int | None:
    """One row into the writer: the vectors written by a flush it caused (0 when
    buffered), or None for a row not applied (another feature-set version, or a
    broken row, which is logged)."""
    try:
        entity_type, entity_id, event_time_ms, values, version = parse_feature_row(payload)
        if version != FEATURE_SET_VERSION:
            return None
        report = writer.write(entity_type, entity_id, values, event_time_ms)
    except (WireError, InvalidEvent) as exc:
        log.warning("repair: skipping a feature row: %s", exc)
        return None
    return 0 if report is None else report.written
