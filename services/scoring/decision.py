"""Decision from a calibrated score and the model's own thresholds."""

from __future__ import annotations

from riskstream.v1 import events_pb2
from services.registry.metadata import Thresholds

APPROVE: int = events_pb2.DECISION_APPROVE
REVIEW: int = events_pb2.DECISION_REVIEW
DECLINE: int = events_pb2.DECISION_DECLINE


def decide(score: float, thresholds: Thresholds) -> int:
    """The :class:`riskstream.v1.Decision` value for ``score``.

    ``score >= decline`` declines, ``score >= review`` reviews, anything lower approves.

    Examples:
        >>> t = Thresholds(review=0.3, decline=0.8)
        >>> [decide(s, t) for s in (0.1, 0.3, 0.79, 0.8)] == [APPROVE, REVIEW, REVIEW, DECLINE]
        True
    """
    if score >= thresholds.decline:
        return DECLINE
    if score >= thresholds.review:
        return REVIEW
    return APPROVE
