"""model-updates events: content, key per version, wire round trip, and the real broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from riskstream.v1 import events_pb2
from services.common.errors import InvalidEvent
from services.common.events import decode_model_version
from services.common.kafka import EventProducer, KafkaClientSettings
from services.registry import ModelMetadata, load_artifact
from services.registry.publish import (
    KafkaModelVersionPublisher,
    model_version_event,
    record_key,
)

Artifact = tuple[Path, str]
WHEN = datetime(2026, 2, 5, 8, 30, tzinfo=UTC)


def _event(metadata: ModelMetadata, digest: str) -> events_pb2.ModelVersion:
    return model_version_event(
        metadata,
        artifact_uri=f"file:///models/{digest}",
        digest=digest,
        status=events_pb2.MODEL_STATUS_CHAMPION,
        transition_reason="train-baseline",
        signature=b"\x01" * 64,
        signing_key_id="0123456789abcdef",
        transition_time=WHEN,
    )


def test_the_event_carries_the_artifact(artifact: Artifact) -> None:
    directory, digest = artifact
    metadata = load_artifact(directory, expected_sha256=digest).metadata
    event = _event(metadata, digest)
    assert (event.model_name, event.version) == ("fraud-xgb", "test-1")
    assert event.status == events_pb2.MODEL_STATUS_CHAMPION
    assert event.sha256 == digest and event.signature == b"\x01" * 64
    assert tuple(event.feature_names) == metadata.feature_names
    assert event.feature_set_version == metadata.feature_set_version
    assert dict(event.metrics) == dict(metadata.metrics)
    assert (event.thresholds.review, event.thresholds.decline) == (0.2, 0.9)
    assert event.created_at.ToDatetime(UTC) == datetime(2026, 2, 4, 12, tzinfo=UTC)
    assert event.transition_time.ToDatetime(UTC) == WHEN
    assert event.transition_reason == "train-baseline"


def test_an_invalid_digest_is_refused(metadata: ModelMetadata) -> None:
    with pytest.raises(InvalidEvent, match="sha256"):
        _event(metadata, "ABC")


class _RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, str | bytes | None]] = []
        self.flushes = 0

    def send(self, topic: str, value: bytes, *, key: str | bytes | None = None) -> None:
        self.sent.append((topic, value, key))

    def flush(self, timeout_s: float = 60.0) -> None:
        self.flushes += 1


def test_publish_keys_by_model_and_version_and_waits_for_the_ack(
    metadata: ModelMetadata,
) -> None:
    producer = _RecordingProducer()
    event = _event(metadata, "ab" * 32)
    KafkaModelVersionPublisher(producer).publish(event)  # type: ignore[arg-type]
    [(topic, value, key)] = producer.sent
    assert topic == "model-updates"
    assert key == record_key("fraud-xgb", "test-1") == "fraud-xgb/test-1"
    assert producer.flushes == 1
    assert decode_model_version(value, now=WHEN) == event


@pytest.mark.integration
def test_publish_to_the_real_broker(
    kafka_settings: KafkaClientSettings, make_topic, metadata: ModelMetadata
) -> None:
    topic = make_topic("model-updates", partitions=1, dlq=False)
    event = _event(metadata, "cd" * 32)
    KafkaModelVersionPublisher(EventProducer(kafka_settings), topic=topic).publish(event)
    consumer = Consumer(
        {
            **kafka_settings.client_config(),
            "group.id": f"test-{uuid.uuid4().hex[:10]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    records = []
    for _ in range(60):
        records.extend(m for m in consumer.consume(10, timeout=0.5) if m.error() is None)
        if records:
            break
    consumer.close()
    [record] = records
    assert record.key() == b"fraud-xgb/test-1"
    assert decode_model_version(record.value(), now=WHEN) == event
