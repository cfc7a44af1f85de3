"""Status transitions of a model version, as whole ``ModelVersion`` records.

Kernel: no I/O. ``model-updates`` is compacted by ``model/version``: once a segment
is compacted, only the *latest* record of a version survives. A transition record
must therefore carry everything the version's first record said (artifact, digest,
signature, metrics, model card, rollout plan, thresholds) and change only the
status and the transition fields; otherwise a promotion would erase the card and
metrics from the registry. Every writer of transitions (scorer admin RPC, rollout
controller, ``riskstream approve``, retention) goes through :func:`transition`, and
sends the result to a :class:`ModelVersionPublisher` (Kafka's is
:class:`services.registry.publish.KafkaModelVersionPublisher`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeAlias

from riskstream.v1 import events_pb2
from services.common.events import validate_model_version

Status: TypeAlias = events_pb2.ModelStatus.ValueType


class ModelVersionPublisher(Protocol):
    """Where model-version events go."""

    def publish(self, event: events_pb2.ModelVersion) -> None:
        """Send ``event`` and return once it is durably stored."""


def transition(
    base: events_pb2.ModelVersion,
    status: Status,
    reason: str,
    *,
    at: datetime | None = None,
    canary_weight: float | None = None,
    approved_by: str | None = None,
    rejection_reasons: Sequence[str] | None = None,
) -> events_pb2.ModelVersion:
    """A copy of ``base`` moved to ``status``, validated.

    Args:
        base: the version's latest full record.
        status: the new status.
        reason: why (kept in ``transition_reason``; shown by ``riskstream models``).
        at: when (now by default).
        canary_weight: new ``rollout.canary_weight`` (kept from ``base`` when None).
        approved_by: who approved the version (kept from ``base`` when None).
        rejection_reasons: replaces ``rejection_reasons`` (kept when None).

    Raises:
        InvalidEvent: the result breaks ``validate_model_version``'s rules.

    Examples:
        >>> base = events_pb2.ModelVersion(model_name="m", version="v1",
        ...     status=events_pb2.MODEL_STATUS_CANDIDATE, metrics={"average_precision": 0.7},
        ...     model_card_json='{"owner": "risk-ml"}')
        >>> moved = transition(base, events_pb2.MODEL_STATUS_CANARY, "published",
        ...     canary_weight=0.1)
        >>> events_pb2.ModelStatus.Name(moved.status), moved.rollout.canary_weight
        ('MODEL_STATUS_CANARY', 0.1)
        >>> moved.model_card_json, dict(moved.metrics), moved.transition_reason
        ('{"owner": "risk-ml"}', {'average_precision': 0.7}, 'published')
        >>> base.status == events_pb2.MODEL_STATUS_CANDIDATE  # base untouched
        True
    """
    event = events_pb2.ModelVersion()
    event.CopyFrom(base)
    event.status = status
    event.transition_reason = reason
    event.transition_time.FromDatetime(at or datetime.now(UTC))
    if canary_weight is not None:
        event.rollout.canary_weight = canary_weight
    if approved_by is not None:
        event.approved_by = approved_by
    if rejection_reasons is not None:
        del event.rejection_reasons[:]
        event.rejection_reasons.extend(rejection_reasons)
    validate_model_version(event)
    return event
