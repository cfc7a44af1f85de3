"""Segment (bias) audit: does the model treat groups of transactions alike?

Kernel: arrays in, numbers out. A payments model flags genuine customers as well
as fraudsters; the audit asks whether it flags *genuine* transactions of one group
much more often than another's. Per segment it reports rows, frauds, the false-
positive rate (genuine transactions flagged for review or decline), recall (frauds
flagged), the decline rate and, with both classes present, average precision.
The *disparity* of a dimension is the largest gap between its segments' false-
positive rates, over segments with at least ``min_rows`` genuine rows (smaller ones
are reported but too noisy to judge); the gate bounds it.

Dimensions: amount band (fixed bands, so reports of different models compare),
time of day (night = hour <= 6, the feature definition's) and day type (weekend).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import average_precision_score

from services.registry.metadata import Thresholds

#: Amount bands: (label, lower bound inclusive, upper bound exclusive).
AMOUNT_BANDS: tuple[tuple[str, float, float], ...] = (
    ("lt20", 0.0, 20.0),
    ("20-100", 20.0, 100.0),
    ("100-250", 100.0, 250.0),
    ("ge250", 250.0, float("inf")),
)
DIMENSIONS = ("amount_band", "time_of_day", "day_type")


def segment_labels(
    amount: np.ndarray, is_night: np.ndarray, is_weekend: np.ndarray
) -> dict[str, np.ndarray]:
    """Each dimension's segment label per row.

    Examples:
        >>> labels = segment_labels(np.array([5.0, 300.0]), np.array([1, 0]), np.array([0, 1]))
        >>> [list(labels[d]) for d in DIMENSIONS]
        [['lt20', 'ge250'], ['night', 'day'], ['weekday', 'weekend']]
    """
    amount = np.asarray(amount, dtype=np.float64)
    band = np.full(len(amount), AMOUNT_BANDS[0][0], dtype=object)
    for label, low, _ in AMOUNT_BANDS[1:]:
        band[amount >= low] = label
    return {
        "amount_band": band,
        "time_of_day": np.where(np.asarray(is_night) > 0, "night", "day").astype(object),
        "day_type": np.where(np.asarray(is_weekend) > 0, "weekend", "weekday").astype(object),
    }


@dataclass(frozen=True)
class SegmentAudit:
    """Per-segment metrics and per-dimension disparity.

    Attributes:
        metrics: ``"<dimension>=<segment>"`` → ``rows``, ``frauds``, ``false_positive_rate``,
            ``recall``, ``decline_rate`` and (both classes present) ``average_precision``.
        disparity: dimension → max - min false-positive rate over judged segments
            (0 when fewer than two are judged).
        judged: dimension → the segments that had at least ``min_rows`` genuine rows.
    """

    metrics: Mapping[str, Mapping[str, float]]
    disparity: Mapping[str, float]
    judged: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def worst(self) -> tuple[str, float]:
        """The dimension with the largest disparity and that disparity."""
        if not self.disparity:
            return ("", 0.0)
        name = max(self.disparity, key=lambda d: self.disparity[d])
        return name, self.disparity[name]


def segment_audit(
    labels: Mapping[str, np.ndarray],
    score: np.ndarray,
    y: np.ndarray,
    thresholds: Thresholds,
    *,
    min_rows: int,
) -> SegmentAudit:
    """Audit calibrated ``score`` against labels ``y`` per segment (see module docstring).

    Examples:
        >>> labels = {"day_type": np.array(["weekday"] * 4 + ["weekend"] * 4, dtype=object)}
        >>> score = np.array([0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1])
        >>> y = np.array([1, 0, 0, 0, 1, 0, 0, 0])
        >>> audit = segment_audit(labels, score, y, Thresholds(0.5, 0.8), min_rows=2)
        >>> audit.metrics["day_type=weekend"]["false_positive_rate"]
        0.3333333333333333
        >>> audit.disparity["day_type"]
        0.3333333333333333
    """
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    flagged = score >= thresholds.review
    declined = score >= thresholds.decline
    metrics: dict[str, dict[str, float]] = {}
    disparity: dict[str, float] = {}
    judged: dict[str, tuple[str, ...]] = {}
    for dimension, label in labels.items():
        rates: dict[str, float] = {}
        for segment in sorted({str(v) for v in label}):
            rows = label == segment
            genuine, frauds = rows & ~y, rows & y
            entry = {
                "rows": float(rows.sum()),
                "frauds": float(frauds.sum()),
                "false_positive_rate": _share(flagged, genuine),
                "recall": _share(flagged, frauds),
                "decline_rate": _share(declined, rows),
            }
            if frauds.any() and genuine.any():
                entry["average_precision"] = float(average_precision_score(y[rows], score[rows]))
            metrics[f"{dimension}={segment}"] = entry
            if genuine.sum() >= min_rows:
                rates[segment] = entry["false_positive_rate"]
        judged[dimension] = tuple(rates)
        disparity[dimension] = max(rates.values()) - min(rates.values()) if len(rates) > 1 else 0.0
    return SegmentAudit(metrics=metrics, disparity=disparity, judged=judged)


def _share(hit: np.ndarray, rows: np.ndarray) -> float:
    count = int(rows.sum())
    return float((hit & rows).sum() / count) if count else 0.0
