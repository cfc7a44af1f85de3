"""Metrics kernels against hand-computed values (and the handbook's CP@k procedure)."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from services.trainer import metrics
from services.trainer.metrics import (
    average_precision,
    card_precision_at_k,
    recall_at_fpr,
    roc_auc,
)


def test_doctests() -> None:
    assert doctest.testmod(metrics).failed == 0


def test_roc_auc_and_average_precision_by_hand() -> None:
    y = [1, 0, 1, 0, 0]
    s = [0.9, 0.8, 0.7, 0.2, 0.1]
    # Pairs (pos, neg): 0.9 beats all 3; 0.7 beats 0.2, 0.1, not 0.8 → 5/6.
    assert roc_auc(y, s) == pytest.approx(5 / 6)
    # Ranks of positives 1 and 3: precision 1/1 and 2/3, each Δrecall 1/2.
    assert average_precision(y, s) == pytest.approx((1 + 2 / 3) / 2)
    assert math.isnan(roc_auc([0, 0], [0.1, 0.2]))
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_recall_at_fpr_never_splits_ties() -> None:
    # 2 positives, 100 negatives: 1 % FPR allows one false positive.
    y = np.r_[[1, 0, 1], np.zeros(99, dtype=int)]
    s = np.r_[[0.9, 0.8, 0.7], np.linspace(0.5, 0.0, 99)]
    assert recall_at_fpr(y, s, fpr=0.01) == 1.0
    assert recall_at_fpr(y, s, fpr=0.0) == 0.5
    # A tie of two negatives with the second positive: flagging it costs 2 % FPR.
    tied = np.r_[[0.9, 0.7, 0.7, 0.7], np.linspace(0.5, 0.0, 98)]
    assert recall_at_fpr(y, tied, fpr=0.01) == 0.5
    with pytest.raises(ValueError):
        recall_at_fpr(y, s, fpr=1.5)


def test_card_precision_drops_cards_detected_earlier_and_divides_by_k() -> None:
    day = [0] * 5 + [1] * 4 + [2] * 2
    card = ["a", "a", "b", "c", "d", "a", "b", "c", "e", "b", "c"]
    y = [1, 0, 0, 1, 1, 1, 0, 1, 0, 1, 0]
    s = [0.2, 0.95, 0.9, 0.1, 0.5, 0.99, 0.3, 0.8, 0.6, 0.7, 0.1]
    cp = card_precision_at_k(day, card, y, s, k=2)
    # Day 0: cards a (max 0.95, fraud), b (0.9, genuine), d (0.5, fraud), c (0.1, fraud)
    #        top 2 = a, b → 1/2; a detected. Compromised cards present: a, c, d → 3.
    # Day 1: a is dropped; c (0.8, fraud), e (0.6), b (0.3) → top 2 = c, e → 1/2; c detected.
    # Day 2: c is dropped; only b (0.7, fraud) left → 1/2 (divided by k, not by 1).
    assert cp.per_day == (0.5, 0.5, 0.5)
    assert cp.compromised_per_day == (3, 1, 1)
    assert cp.mean == 0.5
    assert cp.days == (0, 1, 2)


def test_card_precision_counts_a_card_once_per_day_with_its_max() -> None:
    # Card x has three frauds; it is one card, so CP@1 = 1 and CP@3 = 1/3.
    day = [7, 7, 7, 7]
    card = ["x", "x", "x", "y"]
    y = [1, 1, 1, 0]
    s = [0.1, 0.2, 0.3, 0.25]
    assert card_precision_at_k(day, card, y, s, k=1).mean == 1.0
    assert card_precision_at_k(day, card, y, s, k=3).mean == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        card_precision_at_k(day, card, y, s, k=0)
    assert math.isnan(card_precision_at_k([], [], [], [], k=5).mean)
