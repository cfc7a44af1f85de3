"""Validation-side kernels: calibration fitting, ECE, decision thresholds.

Pure functions of arrays (scikit-learn, no I/O); kept in the trainer so the scorer's
import path (:mod:`services.registry`) never pulls in scikit-learn.

Calibration choice. Both Platt and isotonic maps are fitted and scored by a two-fold
cross-fit over time on the validation rows: fit on the first half (in event-time
order) and measure ECE on the second, then the other way round; the method with the
lower mean held-out ECE wins and is refitted on all validation rows. Measuring ECE
on the rows a map was fitted on would always favour isotonic (it can fit them
almost exactly).

Threshold rule (on the calibrated score, validation rows):

* decline: the higher of (a) the lowest score t whose "score >= t" set has
  precision >= ``decline_precision`` and (b) the lowest t that flags at most
  ``decline_max_rate`` of the transactions; declining is costly, so both must hold.
  When no t reaches the precision, (a) is 1.0.
* review: the lowest t that flags (reviews or declines) at most ``review_rate`` of
  the transactions, capped at decline.

Rates are budgets: tied scores (isotonic maps are step functions) are never split,
so a tie that would overrun the budget is left out whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from services.registry.calibration import Calibration
from services.registry.metadata import Thresholds

_EPS = 1e-15


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width bins on [0, 1]: sum of |mean(y) - mean(p)| * share.

    Examples:
        >>> expected_calibration_error(np.array([0.1, 0.1, 0.9, 0.9]), np.array([0, 0, 1, 1]))
        0.1
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, y, bins) - np.bincount(which, p, bins))
    return float(round(gap.sum() / max(len(p), 1), 12)) if count.any() else 0.0


def fit_calibration(p: np.ndarray, y: np.ndarray, method: str) -> Calibration:
    """Fit a ``"platt"`` or ``"isotonic"`` map of raw probabilities ``p`` to labels ``y``."""
    p = np.asarray(p, dtype=np.float64)
    if method == "platt":
        q = np.clip(p, _EPS, 1.0 - _EPS)
        logit = (np.log(q) - np.log1p(-q)).reshape(-1, 1)
        model = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
        # sigmoid(w * logit + c) == 1 / (1 + exp(a * logit + b)) with a = -w, b = -c
        return Calibration.platt(a=-float(model.coef_[0, 0]), b=-float(model.intercept_[0]))
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return Calibration.isotonic(x=iso.X_thresholds_.tolist(), y=iso.y_thresholds_.tolist())
    raise ValueError(f"unknown calibration method {method!r}")


@dataclass(frozen=True)
class CalibrationChoice:
    """The chosen map and the held-out ECE of each candidate.

    Attributes:
        calibration: the winner, refitted on all rows.
        heldout_ece: method → mean ECE over the two held-out halves (``identity``
            included for reference).
    """

    calibration: Calibration
    heldout_ece: dict[str, float]


def choose_calibration(p: np.ndarray, y: np.ndarray, bins: int = 15) -> CalibrationChoice:
    """Cross-fit Platt and isotonic on time halves; keep the lower held-out ECE.

    Args:
        p: raw probabilities of the validation rows, in event-time order.
        y: their labels.
        bins: ECE bins.
    """
    half = len(p) // 2
    folds = ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half)))
    ece = {"identity": expected_calibration_error(p, y, bins)}
    for method in ("platt", "isotonic"):
        scores = [
            expected_calibration_error(
                fit_calibration(p[fit], y[fit], method).apply(p[held]), y[held], bins
            )
            for fit, held in folds
        ]
        ece[method] = float(np.mean(scores))
    best = min(("platt", "isotonic"), key=lambda m: ece[m])
    return CalibrationChoice(fit_calibration(p, y, best), ece)


def choose_thresholds(
    score: np.ndarray,
    y: np.ndarray,
    *,
    review_rate: float,
    decline_precision: float,
    decline_max_rate: float,
) -> Thresholds:
    """Review and decline thresholds by the rule in the module docstring.

    Examples:
        >>> score = np.linspace(0.0, 1.0, 1001)
        >>> y = (score > 0.99).astype(int)   # the top 1% are fraud
        >>> t = choose_thresholds(score, y, review_rate=0.02,
        ...                       decline_precision=0.8, decline_max_rate=0.005)
        >>> (round(t.review, 3), round(t.decline, 3))
        (0.981, 0.996)
    """
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    ranked, hits = score[order], np.cumsum(np.asarray(y)[order])
    # "score >= t" for t = each distinct score: its rows end at the tie's last position
    cut = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    reaching = cut[hits[cut] / (cut + 1) >= decline_precision]
    by_precision = float(ranked[reaching[-1]]) if len(reaching) else 1.0
    decline = max(by_precision, _rate_threshold(ranked, cut, decline_max_rate))
    review = min(_rate_threshold(ranked, cut, review_rate), decline)
    return Thresholds(review=review, decline=decline)


def _rate_threshold(ranked: np.ndarray, cut: np.ndarray, rate: float) -> float:
    """Lowest distinct score whose "score >= t" share is at most ``rate`` (ties kept whole)."""
    allowed = cut[(cut + 1) / len(ranked) <= rate]
    if len(allowed):
        return float(ranked[allowed[-1]])
    return float(min(1.0, np.nextafter(ranked[0], np.inf)))  # even the top tie is too many


def decision_metrics(score: np.ndarray, y: np.ndarray, thresholds: Thresholds) -> dict[str, float]:
    """What the thresholds do to calibrated ``score`` with labels ``y``.

    Returns:
        ``fraud_rate``, ``review_rate`` (reviewed, not declined), ``decline_rate``,
        ``decline_precision`` (frauds among declines; 0 with none), ``flagged_recall``
        (frauds reviewed or declined) and ``rows``.

    Examples:
        >>> m = decision_metrics(np.array([0.95, 0.6, 0.6, 0.1]), np.array([1, 1, 0, 0]),
        ...                      Thresholds(review=0.5, decline=0.9))
        >>> m["decline_rate"], m["decline_precision"], m["review_rate"], m["flagged_recall"]
        (0.25, 1.0, 0.5, 1.0)
    """
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y)
    declined = score >= thresholds.decline
    flagged = score >= thresholds.review
    frauds = max(int(y.sum()), 1)
    return {
        "fraud_rate": float(y.mean()),
        "review_rate": float(np.mean(flagged & ~declined)),
        "decline_rate": float(declined.mean()),
        "decline_precision": float(y[declined].mean()) if declined.any() else 0.0,
        "flagged_recall": float(y[flagged].sum() / frauds),
        "rows": float(len(y)),
    }
