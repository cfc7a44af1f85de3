"""Kafka adapters of the demo: follow a topic from its start, and ask for a retrain.

The demo only watches (``retrain-requests`` for the drift monitor's request,
``model-updates`` for the trainer's and the controller's transitions): it joins no
consumer group and commits nothing, so it never takes records from the services.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from google.protobuf.message import Message

from riskstream.v1 import events_pb2
from services.common.errors import InvalidEvent
from services.common.events import encode
from services.common.kafka import EventProducer, KafkaClientSettings

M = TypeVar("M", bound=Message)


class KafkaTopicTail(Generic[M]):
    """Every record of a topic from its beginning, decoded, in non-blocking batches.

    Args:
        settings: the broker.
        topic: the topic to follow (all its partitions).
        decode: bytes → message; records that do not decode are skipped, their
            reasons kept for :meth:`take_invalid` (the services would refuse them too).
    """

    def __init__(
        self, settings: KafkaClientSettings, topic: str, decode: Callable[[bytes], M]
    ) -> None:
        self._decode = decode
        self._invalid: list[str] = []
        self._consumer = Consumer(
            {
                **settings.client_config(),
                "group.id": f"riskstream-demo-watch-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
        )
        metadata = self._consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    def poll(self, timeout_s: float = 0.0, max_records: int = 500) -> list[M]:
        """The records that arrived since the last call (waits at most ``timeout_s``)."""
        found: list[M] = []
        for record in self._consumer.consume(max_records, timeout=timeout_s):
            if record.error() is not None or record.value() is None:
                continue
            try:
                found.append(self._decode(record.value() or b""))
            except InvalidEvent as exc:
                self._invalid.append(str(exc))
        return found

    def take_invalid(self) -> list[str]:
        """Why records seen since the last call did not decode (then forgotten)."""
        reasons, self._invalid = self._invalid, []
        return reasons

    def close(self) -> None:
        """Leave (nothing was committed)."""
        self._consumer.close()


class KafkaRetrainRequester:
    """Publishes a manual RetrainRequest (when no drift monitor runs in the stack).

    Args:
        settings: the broker.
        topic: ``retrain-requests``.
    """

    def __init__(self, settings: KafkaClientSettings, topic: str = "retrain-requests") -> None:
        self._producer = EventProducer(settings)
        self._topic = topic

    def request(
        self, *, model_name: str, champion_version: str, window_end: datetime | None, why: str
    ) -> events_pb2.RetrainRequest:
        """Send one request; returns it once the broker acknowledged it."""
        request = events_pb2.RetrainRequest(
            request_id=f"demo-{uuid.uuid4().hex[:8]}",
            model_name=model_name,
            reason=events_pb2.RETRAIN_REASON_MANUAL,
            requested_by=f"riskstream demo ({why})",
            champion_version=champion_version,
        )
        if window_end is not None:
            request.window_end.FromDatetime(window_end)
        request.requested_at.GetCurrentTime()
        self._producer.send(self._topic, encode(request), key=model_name)
        self._producer.flush(10)
        return request
