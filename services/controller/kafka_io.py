"""The controller's Kafka adapters: the scorers' decisions and labels in.

The registry log is followed by :class:`services.registry.log.KafkaRegistryLog`
(re-exported here), shared with the drift monitor.

Neither joins a consumer group or commits an offset. The registry log is read
whole, from its beginning, like every reader of it (:mod:`services.registry.log`).
``scores`` and ``labels`` are read from the time the current canary started
(``offsets_for_times``), or from one window ago when the canary is older than
that: a restarted controller rebuilds its windows by reading again, so there is
nothing to commit, and a second controller would read the same records.

Failure policy (one, here): a record that does not decode is skipped and counted
(``on_invalid``) — the controller only reads these topics, their producers own
their dead letters; any other error propagates and stops the process, which
``riskstream up`` reports as down rather than leaving a half-alive loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import OFFSET_END, KafkaException, TopicPartition

from riskstream.v1 import events_pb2
from services.common.errors import InvalidEvent
from services.common.events import decode_label, decode_score_event
from services.common.kafka import KafkaClientSettings, whole_log_consumer
from services.controller.comparison import Scored
from services.controller.precision import Labelled
from services.scoring.routing import bucket_of

log = logging.getLogger(__name__)

_ROUTES = {
    v.number: v.name.removeprefix("ROUTE_").lower() for v in events_pb2.Route.DESCRIPTOR.values
}
_DECISIONS = {
    v.number: v.name.removeprefix("DECISION_").lower()
    for v in events_pb2.Decision.DESCRIPTOR.values
}


def card_bucket(card_id_hash: str) -> int:
    """The routing bucket of a score event's card hash (-1 when it is not the scorer's hex).

    Examples:
        >>> card_bucket("00000000000003e8" + "00" * 8), card_bucket("not-hex")
        (1000, -1)
    """
    try:
        digest = bytes.fromhex(card_id_hash)
    except ValueError:
        return -1
    return bucket_of(digest) if len(digest) >= 8 else -1


def scored(event: events_pb2.ScoreEvent) -> Scored:
    """The controller's view of a ``scores`` record."""
    return Scored(
        transaction_id=event.transaction_id,
        card_bucket=card_bucket(event.card_id_hash),
        at_ms=event.scored_at.ToMilliseconds(),
        route=_ROUTES.get(event.route, "unspecified"),
        version=event.model_version,
        score=event.score,
        decision=_DECISIONS.get(event.decision, "unspecified"),
        latency_ms=event.latency_ms,
        fallback_reason=event.fallback_reason,
    )


class KafkaDecisionStream:
    """Score events and labels, from a point in time.

    Args:
        settings: Kafka connection.
        scores_topic: the scorers' decisions.
        labels_topic: the verdicts.
        on_invalid: called with the topic for each record that does not decode.
    """

    def __init__(
        self,
        settings: KafkaClientSettings,
        scores_topic: str,
        labels_topic: str,
        *,
        on_invalid: Callable[[str], None] = lambda topic: None,
    ) -> None:
        self._consumer = whole_log_consumer(settings, "controller-decisions")
        self._scores = scores_topic
        self._labels = labels_topic
        self._on_invalid = on_invalid
        self._assigned = False

    def start_at(self, at_ms: int, *, timeout_s: float = 10.0) -> None:
        """Read both topics from the first record at or after ``at_ms`` (epoch ms).

        Raises:
            KafkaException: the broker or a topic cannot be reached.
        """
        wanted = []
        for topic in (self._scores, self._labels):
            described = self._consumer.list_topics(topic, timeout=timeout_s).topics[topic]
            if described.error is not None:
                raise KafkaException(described.error)
            wanted += [TopicPartition(topic, p, at_ms) for p in sorted(described.partitions)]
        found = self._consumer.offsets_for_times(wanted, timeout=timeout_s)
        # No record at or after the time: start at the end (offset -1 from the broker).
        start = [
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
            for tp in found
        ]
        self._consumer.assign(start)
        self._assigned = True

    def stop(self) -> None:
        """Stop reading (no canary to compare)."""
        if self._assigned:
            self._consumer.unassign()
            self._assigned = False

    def poll(self, timeout_s: float, *, max_records: int = 2_000) -> list[Scored | Labelled]:
        """What arrived since the last poll, decoded (nothing before :meth:`start_at`)."""
        if not self._assigned:
            return []
        items: list[Scored | Labelled] = []
        for message in self._consumer.consume(max_records, timeout=timeout_s):
            if message.error() is not None:
                log.warning("controller stream: %s", message.error())
                continue
            topic, value = message.topic() or "", message.value()
            if value is None:
                continue
            try:
                if topic == self._scores:
                    items.append(scored(decode_score_event(value)))
                else:
                    label = decode_label(value)
                    items.append(Labelled(label.transaction_id, label.is_fraud))
            except InvalidEvent as exc:
                log.debug("%s offset %s skipped: %s", topic, message.offset(), exc)
                self._on_invalid(topic)
        return items

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
