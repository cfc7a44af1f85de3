"""KafkaEventPublisher: sends simulator / replay items to their topics.

The adapter between the producer kernels and Kafka: a :class:`SimulatedEvent` goes to
``transactions`` (key card id) or ``labels`` (key transaction id) as protobuf JSON,
validated first with the same function every consumer uses, so the producer never
publishes what a consumer would reject; a :class:`RejectedRow` or an event that fails
validation goes to the DLQ with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.errors import InvalidEvent
from services.common.events import encode, validate_label, validate_transaction
from services.common.kafka import DeadLetterPublisher, EventProducer
from services.producer.events import TRANSACTIONS_TOPIC, RejectedRow, SimulatedEvent


@dataclass
class PublishCounts:
    """How many items went where."""

    transactions: int = 0
    labels: int = 0
    dead_letters: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class KafkaEventPublisher:
    """Publish producer items; delivery of every record is checked at :meth:`flush`.

    Args:
        producer: the reliable producer (idempotent, acks=all).
        topic_prefix: prepended to topic names (tests use private topics).
    """

    def __init__(self, producer: EventProducer, *, topic_prefix: str = "") -> None:
        self._producer = producer
        self._dead_letters = DeadLetterPublisher(producer)
        self._prefix = topic_prefix
        self.counts = PublishCounts()

    def publish(self, item: SimulatedEvent | RejectedRow) -> None:
        """Validate and send one item (or its dead letter)."""
        if isinstance(item, RejectedRow):
            self._dead_letter(
                TRANSACTIONS_TOPIC,
                item.raw.encode(),
                reason=item.reason,
                source={"line": str(item.line_number)},
            )
            return
        try:
            if item.kind == "transaction":
                validate_transaction(item.message)  # type: ignore[arg-type]
            else:
                validate_label(item.message)  # type: ignore[arg-type]
        except InvalidEvent as exc:
            self._dead_letter(
                item.topic, encode(item.message), reason=str(exc), field=exc.field, key=item.key
            )
            return
        self._producer.send(self._prefix + item.topic, encode(item.message), key=item.key)
        if item.kind == "transaction":
            self.counts.transactions += 1
        else:
            self.counts.labels += 1

    def _dead_letter(
        self,
        topic: str,
        value: bytes,
        *,
        reason: str,
        field: str | None = None,
        key: str | None = None,
        source: dict[str, str] | None = None,
    ) -> None:
        self._dead_letters.publish_raw(
            self._prefix + topic, value, key=key, reason=reason, field=field, source=source
        )
        self.counts.dead_letters += 1
        bucket = reason.split(":", 1)[0]
        self.counts.by_reason[bucket] = self.counts.by_reason.get(bucket, 0) + 1

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every record is acknowledged (raises KafkaDeliveryError if not)."""
        self._producer.flush(timeout_s)
