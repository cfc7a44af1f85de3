"""Follows ``model-updates`` (the registry's event log) and feeds the pool.

Every scorer reads the whole log from the beginning (it is compacted: one record
per version and transition key) with no consumer group, so each replica rebuilds
the same rollout on its own. At start-up it reads up to the log's end before the
first apply, so it loads the current champion once instead of every version that
was ever champion; after that it applies records as they arrive. A record that does
not parse is logged and skipped: the log is written by riskstream's own tools.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import KafkaException

from services.common.errors import InvalidEvent
from services.common.events import decode_model_version
from services.common.kafka import KafkaClientSettings, assign_from, whole_log_consumer
from services.registry.rollout import VersionRecord
from services.scoring.pool import ModelPool

log = logging.getLogger(__name__)


class ModelUpdatesFollower(Protocol):
    """What the scorer needs of a ``model-updates`` follower: start it, wait until it
    has replayed the log into the pool, close it."""

    caught_up: threading.Event

    def start(self) -> None: ...

    def close(self) -> None: ...


#: Builds a follower from (Kafka, topic, pool); :class:`KafkaModelUpdates` is one.
FollowerFactory = Callable[[KafkaClientSettings, str, ModelPool], ModelUpdatesFollower]


class KafkaModelUpdates:
    """A daemon thread that applies ``model-updates`` records to a pool.

    Args:
        settings: Kafka connection.
        topic: the log's topic.
        pool: receives the records.
    """

    def __init__(self, settings: KafkaClientSettings, topic: str, pool: ModelPool) -> None:
        self._consumer = whole_log_consumer(settings, "model-updates")
        self._topic = topic
        self._pool = pool
        self._stop = threading.Event()
        self.caught_up = threading.Event()
        self.applied = 0
        self._thread = threading.Thread(target=self._run, name="model-updates", daemon=True)

    def start(self) -> None:
        """Start following the log."""
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ends = assign_from(self._consumer, self._topic)
                break
            except KafkaException as exc:
                log.warning("model-updates unavailable (%s); serving what is loaded", exc)
                self._stop.wait(2.0)
        else:
            return
        pending: list[VersionRecord] = []
        if not ends:
            self._catch_up([])
        while not self._stop.is_set():
            messages = self._consumer.consume(500, timeout=0.25)
            for message in messages:
                if message.error() is not None:
                    log.warning("model-updates: %s", message.error())
                    continue
                value = message.value()
                if value is None:
                    continue  # a tombstone
                try:
                    pending.append(VersionRecord.from_event(decode_model_version(value)))
                except InvalidEvent as exc:
                    log.warning("model-updates offset %d skipped: %s", message.offset(), exc)
                partition, offset = message.partition(), message.offset()
                if partition in ends and offset is not None and offset + 1 >= ends[partition]:
                    del ends[partition]
            if not self.caught_up.is_set():
                if not ends:
                    self._catch_up(pending)
                    pending = []
                continue
            if pending:
                self._pool.apply(pending)
                self.applied += len(pending)
                pending = []

    def _catch_up(self, records: list[VersionRecord]) -> None:
        self._pool.apply(records)
        self.applied += len(records)
        self.caught_up.set()
        log.info("model-updates replayed (%d records)", len(records))

    def close(self) -> None:
        """Stop following and close the consumer."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._consumer.close()
