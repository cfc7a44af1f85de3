"""Kafka plumbing shared by every service: one place for client configuration.

- :class:`KafkaClientSettings` — bootstrap servers and security (TLS / SASL paths and
  credentials come from the environment, never from the repository).
- :class:`EventProducer` — idempotent producer, ``acks=all``, every delivery report
  checked: :meth:`EventProducer.flush` raises when any record was not acknowledged.
- :class:`DeadLetterPublisher` — a bad record goes to ``<topic>.dlq`` with its
  original key and bytes, the reason and its source coordinates in headers.
- :class:`BatchConsumer` — polls a batch, hands each record to a handler, sends the
  records the failure policy rejects to the DLQ, and commits offsets only after the
  batch is processed and its dead letters are acknowledged.
- :func:`whole_log_consumer` and :func:`assign_from` — reading a topic by assignment
  (no consumer group) from its beginning or from a point in time, to the end offsets
  it had when reading began.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from services.common.errors import ConfigError, InvalidEvent, KafkaDeliveryError, RiskstreamError
from services.common.pii import redact_pans

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class KafkaClientSettings:
    """Connection settings shared by producers and consumers.

    Attributes:
        bootstrap_servers: comma-separated host:port list.
        client_id: shows up in broker logs and metrics.
        security_protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
        ssl_ca_location: CA bundle path (SSL).
        ssl_certificate_location: client certificate path (mutual TLS).
        ssl_key_location: client key path (mutual TLS).
        sasl_mechanism: e.g. SCRAM-SHA-512.
        sasl_username: SASL user.
        sasl_password: SASL password (from the environment only).
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "riskstream"
    security_protocol: str = "PLAINTEXT"
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, client_id: str = "riskstream"
    ) -> KafkaClientSettings:
        """Read ``RISKSTREAM_KAFKA_*``; the default broker is the local stack's.

        ``RISKSTREAM_KAFKA_BOOTSTRAP`` wins; else ``127.0.0.1:$RISKSTREAM_KAFKA_PORT``.
        """
        env = os.environ if env is None else env
        port = env.get("RISKSTREAM_KAFKA_PORT", "9092")
        protocol = env.get("RISKSTREAM_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
        if protocol not in {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}:
            raise ConfigError(f"RISKSTREAM_KAFKA_SECURITY_PROTOCOL={protocol!r} is not supported")
        return cls(
            bootstrap_servers=env.get("RISKSTREAM_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}"),
            client_id=client_id,
            security_protocol=protocol,
            ssl_ca_location=env.get("RISKSTREAM_KAFKA_SSL_CA"),
            ssl_certificate_location=env.get("RISKSTREAM_KAFKA_SSL_CERT"),
            ssl_key_location=env.get("RISKSTREAM_KAFKA_SSL_KEY"),
            sasl_mechanism=env.get("RISKSTREAM_KAFKA_SASL_MECHANISM"),
            sasl_username=env.get("RISKSTREAM_KAFKA_SASL_USERNAME"),
            sasl_password=env.get("RISKSTREAM_KAFKA_SASL_PASSWORD"),
        )

    def client_config(self) -> dict[str, object]:
        """librdkafka settings common to producers and consumers."""
        config: dict[str, object] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
        }
        optional = {
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
        }
        config.update({k: v for k, v in optional.items() if v})
        return config


def producer_config(settings: KafkaClientSettings, *, linger_ms: int = 5) -> dict[str, object]:
    """Idempotent, fully acknowledged producer: no loss, no duplicates on retry."""
    return {
        **settings.client_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
        "compression.type": "lz4",
        "delivery.timeout.ms": 120_000,
        "queue.buffering.max.messages": 200_000,
    }


def consumer_config(
    settings: KafkaClientSettings, group_id: str, *, offset_reset: str = "earliest"
) -> dict[str, object]:
    """Manual commits only: an offset is committed after its record is processed."""
    return {
        **settings.client_config(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": offset_reset,
        "isolation.level": "read_committed",
    }


@dataclass
class DeliveryStats:
    """Counts kept by :class:`EventProducer`."""

    sent: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None


class EventProducer:
    """Produce records and know, for each one, whether the broker acknowledged it.

    Args:
        settings: connection settings.
        linger_ms: how long to wait to fill a batch (latency vs throughput).
    """

    def __init__(self, settings: KafkaClientSettings, *, linger_ms: int = 5) -> None:
        self._producer = Producer(producer_config(settings, linger_ms=linger_ms))
        self.stats = DeliveryStats()
        self._failed_topics: set[str] = set()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            self.stats.last_error = str(err)
            self._failed_topics.add(msg.topic() or "?")

    def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Queue one record; blocks (serving delivery reports) while the queue is full."""
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,  # type: ignore[arg-type]  # stub is invariant
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self.stats.sent += 1
        self._producer.poll(0)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery reports."""
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 60.0) -> DeliveryStats:
        """Wait for every queued record's delivery report.

        Raises:
            KafkaDeliveryError: a record failed or is still unacknowledged at the timeout.
        """
        remaining = self._producer.flush(timeout_s)
        if self.stats.failed:
            topics = ",".join(sorted(self._failed_topics))
            raise KafkaDeliveryError(
                topic=topics, reason=f"{self.stats.failed} failed: {self.stats.last_error}"
            )
        if remaining:
            raise KafkaDeliveryError(topic="*", reason=f"{remaining} unacknowledged after flush")
        return self.stats


class DeadLetterPublisher:
    """Send a record that cannot be processed to ``<topic>.dlq``, losing nothing.

    The original bytes are kept, except that raw card numbers are masked
    (``dlq.redacted_pans`` counts them): PCI data never lands on a topic.

    Headers: ``dlq.reason``, ``dlq.field`` (when known), ``dlq.source.topic``,
    ``dlq.source.partition``, ``dlq.source.offset``, ``dlq.failed_at_ms``; the
    original headers are kept after ours.
    """

    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer
        self.count = 0

    def publish(self, record: Message, *, reason: str, field: str | None = None) -> None:
        """Queue a consumed ``record`` for its DLQ topic (delivery is checked at flush)."""
        self.publish_raw(
            record.topic() or "unknown",
            record.value() or b"",
            key=record.key(),
            reason=reason,
            field=field,
            source={"partition": str(record.partition()), "offset": str(record.offset())},
            headers=_original_headers(record),
        )

    def publish_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | str | None,
        reason: str,
        field: str | None = None,
        source: Mapping[str, str] | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Queue bytes that never became a valid record (e.g. a bad line of a file).

        Args:
            topic: the topic the bytes were meant for; they go to ``topic + ".dlq"``.
            value: the original bytes, unchanged.
            key: the original key.
            reason: why they were rejected.
            field: the offending field, when known.
            source: where they came from (``offset``, ``file``, ``line``...), each
                written as a ``dlq.source.<name>`` header.
            headers: original headers, kept after ours.
        """
        value, masked = redact_pans(value)  # a PAN is the one thing a DLQ must not keep
        out: Headers = [
            ("dlq.reason", reason.encode()),
            ("dlq.source.topic", topic.encode()),
            ("dlq.failed_at_ms", str(int(time.time() * 1000)).encode()),
        ]
        out.extend((f"dlq.source.{k}", v.encode()) for k, v in (source or {}).items())
        if field:
            out.append(("dlq.field", field.encode()))
        if masked:
            out.append(("dlq.redacted_pans", str(masked).encode()))
        out.extend(headers or [])
        self._producer.send(topic + DLQ_SUFFIX, value, key=key, headers=out)
        self.count += 1

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every dead letter is acknowledged."""
        self._producer.flush(timeout_s)


def _original_headers(record: Message) -> Headers:
    """A consumed record's headers as (name, bytes) pairs."""
    pairs: list[tuple[str, bytes | str | None]] = list(record.headers() or [])  # type: ignore[arg-type]
    return [(k, v.encode() if isinstance(v, str) else (v or b"")) for k, v in pairs]


FailureAction = Literal["dead_letter", "stop"]
FailurePolicy = Callable[[Exception, Message], FailureAction]


def dead_letter_invalid_events(exc: Exception, record: Message) -> FailureAction:
    """Default policy: invalid input is dead-lettered; anything else stops the consumer.

    A bug or an outage must not turn every following record into a dead letter,
    and a half-alive consumer is worse than a stopped one.
    """
    return "dead_letter" if isinstance(exc, InvalidEvent) else "stop"


class ConsumerStopped(RiskstreamError):
    """The failure policy stopped the consumer; offsets up to the failure are committed."""


@dataclass
class ConsumeStats:
    """Counts kept by :class:`BatchConsumer`."""

    processed: int = 0
    dead_lettered: int = 0
    batches: int = 0


class BatchConsumer:
    """Consume, process, dead-letter, then commit: at-least-once with nothing lost.

    Args:
        settings: connection settings.
        group_id: consumer group.
        topics: topics to subscribe to.
        handler: processes one record; raising hands it to ``policy``.
        dead_letters: where rejected records go.
        policy: decides dead-letter or stop for each failure.
        batch_size: records per poll.
        before_commit: called after a batch is handled and before its offsets are
            committed: a handler that buffers (e.g. into files) makes its output
            durable here, so a commit never covers records that exist only in memory.
        config_overrides: librdkafka settings on top of :func:`consumer_config` (e.g.
            a longer ``max.poll.interval.ms`` for a handler that runs for minutes).
    """

    def __init__(
        self,
        settings: KafkaClientSettings,
        group_id: str,
        topics: Sequence[str],
        *,
        handler: Callable[[Message], None],
        dead_letters: DeadLetterPublisher,
        policy: FailurePolicy = dead_letter_invalid_events,
        batch_size: int = 500,
        before_commit: Callable[[], None] | None = None,
        config_overrides: Mapping[str, object] | None = None,
    ) -> None:
        self._consumer = Consumer(
            {**consumer_config(settings, group_id), **(config_overrides or {})}
        )
        self._consumer.subscribe(list(topics))
        self._handler = handler
        self._dead_letters = dead_letters
        self._policy = policy
        self._batch_size = batch_size
        self._before_commit = before_commit
        self.stats = ConsumeStats()

    def run(
        self,
        *,
        max_records: int | None = None,
        idle_timeout_s: float | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        poll_timeout_s: float = 0.5,
    ) -> ConsumeStats:
        """Process until ``max_records`` more are handled, the topic is idle, or asked to stop.

        Returns the cumulative counts of this consumer (all calls to ``run``).

        Raises:
            ConsumerStopped: the failure policy chose to stop.
        """
        idle_since = time.monotonic()
        baseline = self.stats.processed + self.stats.dead_lettered
        while not should_stop():
            handled = self.stats.processed + self.stats.dead_lettered - baseline
            if max_records is not None and handled >= max_records:
                break
            want = self._batch_size
            if max_records is not None:
                want = min(want, max_records - handled)
            records = self._consumer.consume(num_messages=want, timeout=poll_timeout_s)
            if not records:
                if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                    break
                continue
            idle_since = time.monotonic()
            self._process_batch(records)
        return self.stats

    def _process_batch(self, records: list[Message]) -> None:
        done: dict[tuple[str, int], int] = {}
        try:
            for record in records:
                error = record.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    if error.retriable() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                        log.warning("consumer: %s (retrying)", error)
                        continue
                    raise ConsumerStopped(f"consumer error: {error}")
                try:
                    self._handler(record)
                    self.stats.processed += 1
                except Exception as exc:
                    if self._policy(exc, record) != "dead_letter":
                        raise ConsumerStopped(
                            f"{type(exc).__name__} at {record.topic()}[{record.partition()}]"
                            f"@{record.offset()}: {exc}"
                        ) from exc
                    self._dead_letters.publish(
                        record, reason=str(exc), field=getattr(exc, "field", None)
                    )
                    self.stats.dead_lettered += 1
                done[(record.topic() or "", record.partition() or 0)] = (record.offset() or 0) + 1
        finally:
            self._commit(done)
        self.stats.batches += 1

    def _commit(self, done: Mapping[tuple[str, int], int]) -> None:
        if not done:
            return
        if self._before_commit is not None:
            self._before_commit()
        self._dead_letters.flush()  # a record is "processed" once its dead letter is acked
        self._consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in done.items()], asynchronous=False
        )

    def close(self) -> None:
        """Leave the group cleanly (triggers a rebalance at once, not after a timeout)."""
        self._consumer.close()


def whole_log_consumer(settings: KafkaClientSettings, purpose: str) -> Consumer:
    """A consumer for reading a log by assignment (no group offsets, ever).

    Args:
        settings: Kafka connection.
        purpose: suffix of the (required but never used) group id, e.g.
            ``"model-updates"``.
    """
    return Consumer(
        {
            **settings.client_config(),
            "group.id": f"{settings.client_id}-{purpose}",  # required, never committed
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "log_level": 3,
        }
    )


def assign_from(
    consumer: Consumer, topic: str, *, at_ms: int | None = None, timeout_s: float = 10.0
) -> dict[int, int]:
    """Assign every partition of ``topic`` from its beginning, or from its first
    record at or after ``at_ms`` (epoch ms; a partition with none starts at its end).

    Returns:
        partition → end offset (the next offset to be written) for each partition
        that holds records to read from there now; a reader has caught up once its
        position has passed all of them.

    Raises:
        KafkaException: the broker or the topic cannot be reached.
    """
    described = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    if described.error is not None:
        raise KafkaException(described.error)
    starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(described.partitions)]
    if at_ms is not None:
        found = consumer.offsets_for_times(
            [TopicPartition(topic, tp.partition, at_ms) for tp in starts], timeout=timeout_s
        )
        starts = [
            TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
            for tp in found
        ]
    consumer.assign(starts)
    ends: dict[int, int] = {}
    for tp in starts:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, tp.partition), timeout=timeout_s
        )
        first = {OFFSET_BEGINNING: low, OFFSET_END: high}.get(tp.offset, tp.offset)
        if first < high:
            ends[tp.partition] = high
    return ends
