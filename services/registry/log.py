"""Reading ``model-updates``, the registry's event log, from its beginning.

Adapter (confluent-kafka). Readers of the log never join a consumer group: the log
is compacted (one record per ``model/version`` key), small, and every reader needs
all of it, so each assigns every partition from offset 0 and reads to the end
offsets it saw when it started. The scorer's follower
(:class:`services.scoring.model_updates.KafkaModelUpdates`) and the registry's
one-shot :func:`read_model_updates` and :func:`read_catalog` (``riskstream models``,
``approve``, retention) share ``services.common.kafka``'s :func:`whole_log_consumer`
and :func:`assign_from`.

The topic has one partition (``infra/local/stack.toml``), so "log order" is total;
with more partitions, records of one version still keep their order (one key, one
partition) but order across versions is the order they arrive in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaException

from riskstream.v1 import events_pb2
from services.common.errors import InvalidEvent
from services.common.events import decode_model_version
from services.common.kafka import KafkaClientSettings, assign_from, whole_log_consumer
from services.registry.catalog import Catalog
from services.registry.errors import RegistryUnavailable
from services.registry.publish import MODEL_UPDATES_TOPIC

log = logging.getLogger(__name__)


def read_model_updates(
    settings: KafkaClientSettings,
    *,
    topic: str = MODEL_UPDATES_TOPIC,
    timeout_s: float = 30.0,
) -> list[events_pb2.ModelVersion]:
    """Every record of the log up to its current end, in log order.

    Records that do not parse are logged and skipped (the log is written by
    riskstream's own tools); tombstones are skipped.

    Raises:
        RegistryUnavailable: the broker or topic cannot be reached, or the end was
            not reached within ``timeout_s``.
    """
    consumer = whole_log_consumer(settings, "registry")
    try:
        try:
            ends = assign_from(consumer, topic, timeout_s=min(timeout_s, 10.0))
        except KafkaException as exc:
            raise RegistryUnavailable(topic=topic, detail=str(exc)) from exc
        events: list[events_pb2.ModelVersion] = []
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise RegistryUnavailable(
                    topic=topic, detail=f"end of the log not reached in {timeout_s:g} s"
                )
            for message in consumer.consume(500, timeout=0.25):
                if message.error() is not None:
                    log.warning("%s: %s", topic, message.error())
                    continue
                partition, offset = message.partition(), message.offset()
                value = message.value()
                if value is not None:
                    try:
                        events.append(decode_model_version(value))
                    except InvalidEvent as exc:
                        log.warning("%s offset %d skipped: %s", topic, offset, exc)
                if partition in ends and offset is not None and offset + 1 >= ends[partition]:
                    del ends[partition]
        return events
    finally:
        consumer.close()


def read_catalog(
    settings: KafkaClientSettings,
    *,
    topic: str = MODEL_UPDATES_TOPIC,
    timeout_s: float = 30.0,
) -> Catalog:
    """The registry's catalog as of the log's current end.

    Raises:
        RegistryUnavailable: see :func:`read_model_updates`.
    """
    catalog = Catalog()
    catalog.apply(read_model_updates(settings, topic=topic, timeout_s=timeout_s))
    return catalog


class KafkaRegistryLog:
    """Follows ``model-updates`` from its beginning, for long-running readers.

    The controller and the drift monitor fold what it returns into their own state;
    a broker that is away is retried, not fatal.

    Args:
        settings: Kafka connection.
        topic: the registry's log.
        purpose: suffix of the reader's (never committed) group id, e.g.
            ``"controller-model-updates"``.
        on_invalid: called with the topic for each record that does not decode.
    """

    #: Pause between attempts to reach the log, seconds.
    RETRY_S = 2.0

    def __init__(
        self,
        settings: KafkaClientSettings,
        topic: str,
        *,
        purpose: str = "model-updates-follower",
        on_invalid: Callable[[str], None] = lambda topic: None,
    ) -> None:
        self._consumer = whole_log_consumer(settings, purpose)
        self._topic = topic
        self._on_invalid = on_invalid
        self._ends: dict[int, int] | None = None
        self._failures = 0

    @property
    def caught_up(self) -> bool:
        """Whether the log has been read up to the end it had when reading began."""
        return self._ends is not None and not self._ends

    def poll(self, timeout_s: float) -> list[events_pb2.ModelVersion]:
        """The records that arrived, in log order (none while the broker is unreachable)."""
        if self._ends is None:
            try:
                self._ends = assign_from(self._consumer, self._topic)
            except KafkaException as exc:
                self._failures += 1
                if self._failures == 1 or self._failures % 30 == 0:
                    log.warning("%s unavailable (%s); retrying", self._topic, exc)
                time.sleep(self.RETRY_S)  # not a busy loop while the broker is away
                return []
        events: list[events_pb2.ModelVersion] = []
        for message in self._consumer.consume(500, timeout=timeout_s):
            if message.error() is not None:
                log.warning("%s: %s", self._topic, message.error())
                continue
            partition, offset, value = message.partition(), message.offset(), message.value()
            if value is not None:
                try:
                    events.append(decode_model_version(value))
                except InvalidEvent as exc:
                    log.warning("%s offset %s skipped: %s", self._topic, offset, exc)
                    self._on_invalid(self._topic)
            if (
                partition in self._ends
                and offset is not None
                and offset + 1 >= self._ends[partition]
            ):
                del self._ends[partition]
        return events

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
