"""The decision kernel on seeded streams: which canaries promote, roll back or wait."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from services.controller.comparison import Comparison, Rollout, Scored
from services.controller.policy import Bounds, CanaryPlan, Verdict, decide
from services.controller.precision import Labelled
from services.controller.windows import WindowStats

NOW_MS = 1_800_000_000_000
BOUNDS = Bounds(min_canary_requests=400, min_evidence_requests=200)
ROLLOUT = Rollout("v1", "v2", 0.2, started_ms=NOW_MS - 600_000)


def _fraud_score(rng: random.Random) -> float:
    """A calibrated fraud model's scores: most near zero, a thin tail towards one."""
    return min(1.0, rng.lognormvariate(-5.5, 1.3))


def _decision(score: float) -> str:
    return "decline" if score >= 0.5 else "review" if score >= 0.1 else "approve"


def _compare(
    *,
    n: int = 3_000,
    seed: int = 0,
    canary_score: Callable[[random.Random], float] = _fraud_score,
    canary_latency: Callable[[random.Random], float] = lambda r: r.uniform(1.0, 4.0),
    canary_error_every: int = 0,
) -> tuple[WindowStats, WindowStats]:
    """n decisions over the last 5 minutes, 20 % of the cards on the canary."""
    rng = random.Random(seed)
    comparison = Comparison(ROLLOUT, window_s=900)
    for i in range(n):
        bucket = rng.randrange(10_000)
        at_ms = NOW_MS - 300_000 + i * 300_000 // n
        canary = bucket < 2_000
        if canary and canary_error_every and i % canary_error_every == 0:
            event = Scored(f"t{i}", bucket, at_ms, "fallback", "", 0.1, "approve", 1.0,
                           "model_error")  # fmt: skip
        else:
            score = canary_score(rng) if canary else _fraud_score(rng)
            latency = canary_latency(rng) if canary else rng.uniform(1.0, 4.0)
            event = Scored(f"t{i}", bucket, at_ms, "canary" if canary else "champion",
                           "v2" if canary else "v1", score, _decision(score), latency)  # fmt: skip
        comparison.update(event)
    return comparison.stats(NOW_MS)


def test_a_good_canary_is_promoted() -> None:
    canary, champion = _compare()
    assert canary.requests >= BOUNDS.min_canary_requests
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS)
    assert decision.verdict is Verdict.PROMOTE, decision.reason
    assert decision.score_psi is not None and decision.score_psi < 0.1
    assert decision.reason.startswith("promote: passed (")


@pytest.mark.parametrize("constant", [0.0, 0.004, 0.2])
def test_a_constant_score_canary_is_rolled_back_naming_the_divergence(constant: float) -> None:
    canary, champion = _compare(canary_score=lambda r: constant)
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS)
    assert decision.verdict is Verdict.ROLLBACK
    assert "score_psi" in {b.metric for b in decision.breaches}
    assert "score distribution diverges from champion v1: PSI" in decision.reason


def test_a_slow_canary_is_rolled_back_naming_p99() -> None:
    canary, champion = _compare(canary_latency=lambda r: r.uniform(60.0, 90.0))
    decision = decide(canary, champion, CanaryPlan("v2", max_p99_latency_ms=20.0), BOUNDS)
    assert decision.verdict is Verdict.ROLLBACK
    [breach] = decision.breaches
    assert breach.metric == "p99_latency_ms" and breach.bound == 20.0
    assert breach.value > 80.0
    assert "p99 latency" in decision.reason and "> 20.0 ms" in decision.reason


def test_the_configured_p99_applies_when_the_plan_has_none() -> None:
    canary, champion = _compare(canary_latency=lambda r: r.uniform(60.0, 90.0))
    assert decide(canary, champion, CanaryPlan("v2"), BOUNDS).breaches[0].bound == 50.0


def test_a_failing_canary_is_rolled_back_naming_its_error_rate() -> None:
    canary, champion = _compare(canary_error_every=20)  # ~5 % of its requests
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS)
    assert decision.verdict is Verdict.ROLLBACK
    assert [b.metric for b in decision.breaches] == ["error_rate"]
    assert canary.errors > 0 and champion.errors == 0
    assert "error rate 0.0" in decision.reason and "model errors" in decision.reason


def test_a_canary_declining_far_more_is_rolled_back_on_the_decline_ratio() -> None:
    # Scores shifted up enough to decline 10x as often: PSI and decline ratio both break.
    canary, champion = _compare(canary_score=lambda r: min(1.0, _fraud_score(r) * 30))
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS)
    assert decision.verdict is Verdict.ROLLBACK
    assert "decline_ratio" in {b.metric for b in decision.breaches}


def test_a_high_impact_canary_without_approval_waits() -> None:
    canary, champion = _compare()
    plan = CanaryPlan("v2", high_impact=True)
    decision = decide(canary, champion, plan, BOUNDS)
    assert decision.verdict is Verdict.WAIT and decision.awaiting_approval
    assert decision.reason.startswith("awaiting approval")
    approved = CanaryPlan("v2", high_impact=True, approved_by="alice")
    assert decide(canary, champion, approved, BOUNDS).verdict is Verdict.PROMOTE


def test_too_few_requests_wait() -> None:
    canary, champion = _compare(n=1_000)  # ~200 canary requests, 400 needed
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS)
    assert decision.verdict is Verdict.WAIT and not decision.awaiting_approval
    assert decision.reason.startswith("collecting:")
    few, champion = _compare(n=500)  # under the evidence needed for any check
    assert decide(few, champion, CanaryPlan("v2"), BOUNDS).reason.endswith("before any check")


def test_the_plans_min_canary_requests_wins() -> None:
    canary, champion = _compare()
    plan = CanaryPlan("v2", min_canary_requests=canary.requests + 1)
    assert decide(canary, champion, plan, BOUNDS).verdict is Verdict.WAIT


def test_a_precision_drop_rolls_back_once_labels_arrive() -> None:
    rng = random.Random(3)
    comparison = Comparison(ROLLOUT, window_s=900)
    for i in range(4_000):
        canary = i % 5 == 0
        score = _fraud_score(rng)
        comparison.update(
            Scored(f"t{i}", 0 if canary else 9_999, NOW_MS - 100_000 + i, "canary" if canary
                   else "champion", "v2" if canary else "v1", score, "review", 2.0)
        )  # fmt: skip
        # Half of the champion's flags are fraud, a tenth of the canary's.
        comparison.update(Labelled(f"t{i}", is_fraud=rng.random() < (0.1 if canary else 0.5)))
    canary_stats, champion_stats = comparison.stats(NOW_MS)
    plan = CanaryPlan("v2", max_precision_drop=0.1)
    decision = decide(canary_stats, champion_stats, plan, BOUNDS)
    assert decision.verdict is Verdict.ROLLBACK
    [breach] = [b for b in decision.breaches if b.metric == "precision_drop"]
    assert breach.bound == 0.1 and breach.value > 0.3
