"""Ranking metrics of a fraud model: ROC AUC, average precision, Card Precision@k,
recall at a false-positive rate.

Pure functions of arrays (NumPy, scikit-learn; no I/O). Card Precision@k is the
Fraud Detection Handbook's (``card_precision_top_k``, chapter 4.2, used as the
chapter-5 model-selection metric), reproduced step by step because investigators
work per card and per day, not per transaction:

1. for each test day in increasing order, drop the transactions of cards already
   *detected* compromised on an earlier test day (a detected card is blocked, so it
   cannot be detected again);
2. group the day's remaining transactions by card: the card's score is its maximum
   score, its label its maximum label (compromised if any transaction is a fraud);
3. take the ``k`` cards with the highest scores; precision = compromised among them / k
   (divided by k even when fewer than k cards remain, as the handbook does);
4. the compromised cards among those k join the detected list;
5. the result is the mean of the daily precisions.

Ties in score are broken by card id (ascending) so results are reproducible; the
handbook's ``sort_values`` leaves tie order to the sort algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

__all__ = [
    "CardPrecision",
    "average_precision",
    "card_precision_at_k",
    "recall_at_fpr",
    "roc_auc",
]

ArrayLike = npt.ArrayLike


def roc_auc(y: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve (scikit-learn); NaN when ``y`` holds one class.

    Examples:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    labels = np.asarray(y)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(score, dtype=np.float64)))


def average_precision(y: ArrayLike, score: ArrayLike) -> float:
    """Average precision (scikit-learn: sum over thresholds of precision * Δrecall).

    NaN when ``y`` holds no positive.

    Examples:
        >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
        0.8333
    """
    labels = np.asarray(y)
    if not labels.any():
        return float("nan")
    return float(average_precision_score(labels, np.asarray(score, dtype=np.float64)))


def recall_at_fpr(y: ArrayLike, score: ArrayLike, fpr: float = 0.01) -> float:
    """The highest recall of a threshold "score >= t" whose false-positive rate is <= ``fpr``.

    Tied scores are never split (a threshold flags all of a tie or none of it), so
    the false-positive budget is never overrun. NaN when ``y`` holds one class.

    Args:
        y: labels, 0/1.
        score: scores, higher = more suspicious.
        fpr: the false-positive rate allowed, in [0, 1].

    Examples:
        >>> y = [1, 1, 0, 1, 0, 0, 0, 0, 0, 0]
        >>> s = [.9, .8, .7, .6, .5, .4, .3, .2, .1, 0.]
        >>> round(recall_at_fpr(y, s, fpr=0.0), 4), recall_at_fpr(y, s, fpr=0.15)
        (0.6667, 1.0)
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be in [0, 1], got {fpr}")
    labels = np.asarray(y)
    if len(np.unique(labels)) < 2:
        return float("nan")
    false_rate, true_rate, _ = roc_curve(
        labels, np.asarray(score, dtype=np.float64), drop_intermediate=False
    )
    allowed = false_rate <= fpr + 1e-12
    return float(round(true_rate[allowed].max(), 12)) if allowed.any() else 0.0


@dataclass(frozen=True)
class CardPrecision:
    """Card Precision@k of a test period, with its daily values.

    Attributes:
        k: cards inspected per day.
        mean: the mean of ``per_day`` (the handbook's CP@k); NaN with no day.
        per_day: precision of each test day, in day order.
        days: the days, in order.
        compromised_per_day: compromised cards left on each day after removing
            those detected earlier (the handbook's ``nb_compromised_cards_per_day``).
    """

    k: int
    mean: float
    per_day: tuple[float, ...]
    days: tuple[object, ...]
    compromised_per_day: tuple[int, ...]


def card_precision_at_k(
    day: ArrayLike | Sequence[object],
    card: ArrayLike | Sequence[object],
    y: ArrayLike,
    score: ArrayLike,
    k: int = 100,
) -> CardPrecision:
    """The handbook's Card Precision@k (see the module docstring).

    Args:
        day: each transaction's test day (any sortable value: a date, a day number).
        card: each transaction's card id.
        y: each transaction's label, 0/1.
        score: each transaction's score.
        k: cards inspected per day (> 0).

    Returns:
        The mean over days and the daily values.

    Examples:
        Day 1: cards a (0.9, fraud), b (0.8), c (0.2, fraud): top 2 = a, b → 1/2; a is
        detected. Day 2: a is dropped; c (0.7, fraud) and b (0.1): top 2 → 1/2.

        >>> cp = card_precision_at_k(
        ...     day=[1, 1, 1, 1, 2, 2, 2],
        ...     card=["a", "a", "b", "c", "a", "b", "c"],
        ...     y=[0, 1, 0, 1, 1, 0, 1],
        ...     score=[0.9, 0.1, 0.8, 0.2, 0.99, 0.1, 0.7],
        ...     k=2)
        >>> cp.mean, cp.per_day, cp.compromised_per_day
        (0.5, (0.5, 0.5), (2, 1))
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    frame = pd.DataFrame(
        {
            "day": np.asarray(day),
            "card": np.asarray(card),
            "y": np.asarray(y).astype(np.int64),
            "score": np.asarray(score, dtype=np.float64),
        }
    )
    detected: set[object] = set()
    days: list[object] = []
    per_day: list[float] = []
    compromised: list[int] = []
    for value, rows in frame.groupby("day", sort=True):
        rows = rows.loc[~rows["card"].isin(detected)]
        cards = rows.groupby("card", sort=True)[["score", "y"]].max()
        compromised.append(int(cards["y"].sum()))
        top = cards.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top.index[top["y"].to_numpy() == 1]
        per_day.append(len(hits) / k)
        detected.update(hits)
        days.append(value)
    mean = float(np.mean(per_day)) if per_day else float("nan")
    return CardPrecision(k, mean, tuple(per_day), tuple(days), tuple(compromised))
