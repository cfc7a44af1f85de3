"""Publishes score events to Kafka off the hot path, bounded, never blocking a request.

The request path only appends a :class:`ScoreRecord` to a bounded queue. A worker
thread encodes and produces them (idempotent, acks=all, batched by linger). When
Kafka is slow or down, records wait in the queue and in the producer's buffer;
past ``capacity`` new records are dropped and counted — scoring goes on.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from confluent_kafka import KafkaError, Message, Producer

from services.common.kafka import KafkaClientSettings, producer_config
from services.scoring.score_events import ScoreRecord, encode_score_event

log = logging.getLogger(__name__)


class KafkaScorePublisher:
    """Bounded, asynchronous publisher of score events.

    Args:
        settings: Kafka connection.
        topic: the ``scores`` topic.
        capacity: records held (queue + producer buffer) before dropping.
        on_dropped: called with the number of records dropped (metrics).
        on_failed: called with the number of records whose delivery failed.
    """

    def __init__(
        self,
        settings: KafkaClientSettings,
        topic: str,
        *,
        capacity: int = 50_000,
        on_dropped: Callable[[int], None] | None = None,
        on_failed: Callable[[int], None] | None = None,
    ) -> None:
        config = producer_config(settings, linger_ms=20)
        config["queue.buffering.max.messages"] = capacity
        config["delivery.timeout.ms"] = 300_000
        self._producer = Producer(config)
        self._topic = topic
        self._capacity = capacity
        self._queue: deque[ScoreRecord] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._on_dropped = on_dropped
        self._on_failed = on_failed
        self.dropped = 0
        self.failed = 0
        self.delivered = 0
        self._thread = threading.Thread(target=self._drain, name="score-publisher", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Records waiting for the worker."""
        return len(self._queue)

    def publish(self, record: ScoreRecord) -> None:
        """Queue one record; drops (and counts) it when the queue is full. Never blocks."""
        if len(self._queue) >= self._capacity:
            self.dropped += 1
            if self._on_dropped is not None:
                self._on_dropped(1)
            return
        self._queue.append(record)
        if len(self._queue) == 1:
            self._wake.set()

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
            return
        self.failed += 1
        if self._on_failed is not None:
            self._on_failed(1)
        if self.failed == 1 or self.failed % 10_000 == 0:
            log.warning("score events not delivered (%d so far): %s", self.failed, err)

    def _drain(self) -> None:
        while not self._stop.is_set() or self._queue:
            self._wake.wait(0.1)
            self._wake.clear()
            while self._queue:
                record = self._queue.popleft()
                try:
                    self._producer.produce(
                        self._topic,
                        value=encode_score_event(record),
                        key=record.transaction_id,
                        on_delivery=self._delivered,
                    )
                except BufferError:
                    # The producer's buffer is full (Kafka down): this record is lost.
                    self.dropped += 1
                    if self._on_dropped is not None:
                        self._on_dropped(1)
                    self._producer.poll(0.05)
                self._producer.poll(0)
            self._producer.poll(0.01)

    def close(self, timeout_s: float = 10.0) -> int:
        """Stop the worker and flush; returns the records still undelivered."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        return int(self._producer.flush(timeout_s))
