"""Model versions on the ``model-updates`` topic (compacted: the registry's event log).

:func:`model_version_event` (pure) builds the ``riskstream.v1.ModelVersion`` of an
artifact; :class:`KafkaModelVersionPublisher` sends it. The record key is
``"<model_name>/<version>"``: compaction then keeps the latest state of *every*
version, not just the latest version of each model (the architecture's table said
key = model name; a per-version key is what lets a scorer rebuild champion, canary
and shadow from the compacted log).
"""

from __future__ import annotations

from datetime import UTC, datetime

from riskstream.v1 import events_pb2
from services.common.events import encode, validate_model_version
from services.common.kafka import EventProducer
from services.registry.metadata import ModelMetadata

# The publisher interface lives with transitions (a kernel, importable without Kafka);
# importable from here too, beside its Kafka implementation.
from services.registry.transitions import ModelVersionPublisher as ModelVersionPublisher

MODEL_UPDATES_TOPIC = "model-updates"


def record_key(model_name: str, version: str) -> str:
    """The ``model-updates`` key of one model version."""
    return f"{model_name}/{version}"


def model_version_event(
    metadata: ModelMetadata,
    *,
    artifact_uri: str,
    digest: str,
    status: events_pb2.ModelStatus.ValueType,
    transition_reason: str,
    signature: bytes | None = None,
    signing_key_id: str = "",
    transition_time: datetime | None = None,
) -> events_pb2.ModelVersion:
    """The ``ModelVersion`` event of an artifact, validated.

    Args:
        metadata: the artifact's metadata.
        artifact_uri: where the store keeps it.
        digest: the artifact digest (sha256 of ``metadata.json``).
        status: the version's new status (``MODEL_STATUS_CHAMPION``...).
        transition_reason: why the status changed, e.g. ``"train-baseline"``.
        signature: ed25519 signature of the digest, when signed.
        signing_key_id: id of the signing key, when signed.
        transition_time: when the status changed (now by default).

    Raises:
        InvalidEvent: the event breaks ``validate_model_version``'s rules.
    """
    event = events_pb2.ModelVersion(
        model_name=metadata.model_name,
        version=metadata.version,
        status=status,
        artifact_uri=artifact_uri,
        sha256=digest,
        signature=signature or b"",
        signing_key_id=signing_key_id,
        feature_set_version=metadata.feature_set_version,
        feature_names=list(metadata.feature_names),
        metrics=dict(metadata.metrics),
        thresholds=events_pb2.DecisionThresholds(
            review=metadata.thresholds.review, decline=metadata.thresholds.decline
        ),
        transition_reason=transition_reason,
    )
    event.created_at.FromDatetime(datetime.fromisoformat(metadata.created_at))
    event.transition_time.FromDatetime(transition_time or datetime.now(UTC))
    validate_model_version(event)
    return event


class KafkaModelVersionPublisher:
    """Publishes to ``model-updates``, keyed ``<model_name>/<version>``, acknowledged.

    The Kafka implementation of
    :class:`services.registry.transitions.ModelVersionPublisher`.

    Args:
        producer: the project's acknowledged producer.
        topic: the topic (``model-updates`` unless a test uses its own).
    """

    def __init__(self, producer: EventProducer, *, topic: str = MODEL_UPDATES_TOPIC) -> None:
        self._producer = producer
        self._topic = topic

    def publish(self, event: events_pb2.ModelVersion, *, timeout_s: float = 30.0) -> None:
        """Send one event and wait for the broker's acknowledgement.

        Raises:
            KafkaDeliveryError: the broker did not acknowledge it in ``timeout_s``.
        """
        self._producer.send(
            self._topic, encode(event), key=record_key(event.model_name, event.version)
        )
        self._producer.flush(timeout_s)
