"""The demo's summary kernel: AP, KS, latency percentiles and per-version numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from services.demo.summary import (
    SCORE_BINS,
    DemoSummary,
    ScoredRequest,
    average_precision,
    ks_distance,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_equals_scikit_learn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(500) < 0.1
    scores = np.round(rng.random(500) + labels * 0.3, 2)  # rounding makes ties
    assert average_precision(labels.tolist(), scores.tolist()) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )


def test_ks_distance_equals_scipy() -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 400), rng.normal(0.3, 1, 300)
    assert ks_distance(a.tolist(), b.tolist()) == pytest.approx(ks_2samp(a, b).statistic)


def _request(i: int, *, version: str, phase: str, fraud: bool, score: float) -> ScoredRequest:
    return ScoredRequest(
        day=30 + i / 1000, phase=phase, model_version=version, route="champion",
        decision="decline" if score > 0.5 else "approve", score=score,
        latency_ms=float(i % 10 + 1), amount=100.0, is_fraud=fraud,
    )  # fmt: skip


def test_versions_are_split_by_phase_with_their_own_ap() -> None:
    summary = DemoSummary()
    for i in range(200):
        fraud = i % 20 == 0
        # v1 ranks frauds perfectly before the drift and not at all after it.
        summary.update(_request(i, version="v1", phase="pre-drift", fraud=fraud,
                                score=0.9 if fraud else 0.1))  # fmt: skip
        summary.update(_request(i, version="v1", phase="post-drift", fraud=fraud,
                                score=0.1 if fraud else 0.2 + (i % 7) / 10))  # fmt: skip
    summary.update(_request(0, version="", phase="post-drift", fraud=False, score=0.0))
    result = summary.result()
    assert result.requests == 401
    (v1,) = result.versions  # the rules fallback ("" version) is no model version
    assert v1.requests == {"pre-drift": 200, "post-drift": 200}
    assert v1.frauds == {"pre-drift": 10, "post-drift": 10}
    assert v1.average_precision["pre-drift"] == 1.0
    assert v1.average_precision["post-drift"] < 0.1
    assert sum(v1.score_histogram) == 400
    assert len(v1.score_histogram) == len(SCORE_BINS) - 1


def test_latency_percentiles_come_from_the_histogram() -> None:
    summary = DemoSummary()
    for i in range(1000):
        summary.update(_request(i, version="v1", phase="pre-drift", fraud=False, score=0.0))
    result = summary.result()
    # latencies are 1..10 ms, 100 each: p50 = 5 ms, p99 = 10 ms (3 significant digits)
    assert result.latency_p50_ms == pytest.approx(5.0, rel=1e-3)
    assert result.latency_p99_ms == pytest.approx(10.0, rel=1e-3)
    assert sum(count for _, count in result.latency_histogram) == 1000


def test_daily_points_show_the_amount_shift() -> None:
    summary = DemoSummary()
    rng = np.random.default_rng(5)
    for day, scale in ((26, 1.0), (27, 1.0), (30, 1.6)):
        for amount in rng.normal(50, 20, 300) * scale:
            summary.update(ScoredRequest(
                day=day + 0.5, phase="pre-drift" if day < 30 else "post-drift",
                model_version="v1", route="champion", decision="approve", score=0.01,
                latency_ms=1.0, amount=float(amount), is_fraud=False,
            ))  # fmt: skip
    daily = {p.day: p for p in summary.result().daily}
    assert daily[26].amount_ks == 0.0
    assert daily[27].amount_ks < 0.15
    assert daily[30].amount_ks > 0.3
    assert daily[30].mean_amount > daily[26].mean_amount * 1.4


def test_empty_summary_has_no_numbers_but_does_not_fail() -> None:
    result = DemoSummary().result()
    assert result.requests == 0 and result.versions == () and result.daily == ()
    assert math.isnan(average_precision([], []))
