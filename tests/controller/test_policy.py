"""The decision kernel on seeded streams: which canaries promote, roll back or wait."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import pytest

from services.controller.baseline import Baseline
from services.controller.comparison import Comparison, Rollout, Scored
from services.controller.policy import Bounds, CanaryPlan, Verdict, decide
from services.controller.precision import Labelled
from services.controller.windows import WindowStats
from services.registry.reference import parse_reference
from services.trainer.distributions import reference_document

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
    canary_decision: Callable[[float], str] = _decision,
    champion_score: Callable[[random.Random], float] = _fraud_score,
    champion_decision: Callable[[float], str] = _decision,
    canary_share: float = 0.2,
) -> tuple[WindowStats, WindowStats]:
    """n decisions over the last 5 minutes, ``canary_share`` of the cards on the canary."""
    rng = random.Random(seed)
    comparison = Comparison(ROLLOUT, window_s=900)
    for i in range(n):
        bucket = rng.randrange(10_000)
        at_ms = NOW_MS - 300_000 + i * 300_000 // n
        canary = bucket < canary_share * 10_000
        if canary and canary_error_every and i % canary_error_every == 0:
            event = Scored(f"t{i}", bucket, at_ms, "fallback", "", 0.1, "approve", 1.0,
                           "model_error")  # fmt: skip
        elif canary:
            score = canary_score(rng)
            event = Scored(f"t{i}", bucket, at_ms, "canary", "v2", score,
                           canary_decision(score), canary_latency(rng))  # fmt: skip
        else:
            score = champion_score(rng)
            event = Scored(f"t{i}", bucket, at_ms, "champion", "v1", score,
                           champion_decision(score), rng.uniform(1.0, 4.0))  # fmt: skip
        comparison.update(event)
    return comparison.stats(NOW_MS)


def _holdout(
    score: Callable[[random.Random], float],
    *,
    rows: int = 3_000,
    decline_rate: float | None = None,
    decision: Callable[[float], str] = _decision,
    seed: int = 99,
) -> Baseline:
    """The canary's baseline as the trainer records it: reference.json and holdout metrics."""
    rng = random.Random(seed)
    scores = np.array([score(rng) for _ in range(rows)])
    doc = reference_document(
        {}, scores, feature_names=[], window={"start": "2026-01-01", "end": "2026-01-03"}
    )
    reference = parse_reference(doc, version="v2")  # the reader the controller uses
    if decline_rate is None:
        decline_rate = float(np.mean([decision(float(s)) == "decline" for s in scores]))
    return Baseline.of(
        "v2", {"decline_rate": decline_rate, "rows": float(rows)},
        score_sketch=reference.score.sample.tolist(), score_rows=reference.score.count,
    )  # fmt: skip


def _post_drift_score(rng: random.Random) -> float:
    """A retrained model after a drift: frauds it recognises lift its whole tail."""
    return min(1.0, rng.lognormvariate(-3.5, 1.8))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _amount_and_count(rng: random.Random) -> tuple[float, float]:
    return rng.lognormvariate(3.4, 0.8), float(rng.randint(0, 4))


def _model(rng: random.Random) -> float:
    """A two-feature model: amount (euros) and the card's transactions in the last hour."""
    amount, count = _amount_and_count(rng)
    return _sigmoid(-7.0 + 0.02 * amount + 0.5 * count)


def _model_with_features_swapped(rng: random.Random) -> float:
    """The same model served its inputs in the wrong order."""
    amount, count = _amount_and_count(rng)
    return _sigmoid(-7.0 + 0.02 * count + 0.5 * amount)


def _never_declines(score: float) -> str:
    """A retrain that found no decline threshold: its top scores go to review."""
    return "review" if score >= 0.1 else "approve"


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


# The canary judged against its own holdout (issue 6: after a drift the champion is stale).


def test_a_better_canary_after_a_drift_is_promoted_though_it_diverges_from_the_champion() -> None:
    canary, champion = _compare(canary_score=_post_drift_score)
    # Against the stale champion alone it would be rolled back on both guards.
    stale = decide(canary, champion, CanaryPlan("v2"), BOUNDS)
    assert {b.metric for b in stale.breaches} == {"score_psi", "decline_ratio"}, stale.reason
    assert stale.score_psi is not None and stale.score_psi > 1.0
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS, _holdout(_post_drift_score))
    assert decision.verdict is Verdict.PROMOTE, decision.reason
    assert decision.score_against == "holdout"
    assert decision.score_psi is not None and decision.score_psi < 0.1
    assert "vs its holdout (champion " in decision.reason
    assert "fallback" not in decision.reason


@pytest.mark.parametrize("constant", [0.0, 0.004, 0.2])
def test_a_constant_score_canary_is_rolled_back_on_its_own_holdout(constant: float) -> None:
    canary, champion = _compare(canary_score=lambda r: constant, canary_decision=_never_declines)
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS, _holdout(_fraud_score))
    assert decision.verdict is Verdict.ROLLBACK
    [breach] = [b for b in decision.breaches if b.metric == "score_psi"]
    assert breach.value > 1.0 and decision.score_against == "holdout"
    assert "score distribution diverges from its own holdout: PSI" in decision.reason
    assert "3000 holdout rows" in decision.reason


def test_a_canary_served_its_features_in_the_wrong_order_is_rolled_back() -> None:
    canary, champion = _compare(canary_score=_model_with_features_swapped, champion_score=_model)
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS, _holdout(_model))
    assert decision.verdict is Verdict.ROLLBACK
    assert {"score_psi", "decline_ratio"} <= {b.metric for b in decision.breaches}
    assert "diverges from its own holdout" in decision.reason
    assert "decline rate" in decision.reason and "vs its own holdout" in decision.reason


def test_a_canary_declining_nothing_like_its_holdout_is_fine_against_a_declining_champion() -> None:
    # The demo's case: a retrain found no decline threshold (holdout decline rate 0)
    # and declines 0 % live, while the stale champion declines ~3.6 %.
    def champion_decision(score: float) -> str:
        return "decline" if score >= 0.04 else _decision(score)

    canary, champion = _compare(
        canary_decision=_never_declines, champion_decision=champion_decision
    )
    assert canary.declines == 0 and 0.02 < champion.decline_rate < 0.06
    baseline = _holdout(_fraud_score, decline_rate=0.0)
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS, baseline)
    assert decision.verdict is Verdict.PROMOTE, decision.reason
    assert "decline rate 0.0000 (holdout 0.0000, champion 0.0" in decision.reason
    # Without its holdout rate, the champion comparison would have rolled it back.
    fallback = decide(canary, champion, CanaryPlan("v2"), BOUNDS, Baseline("v2", missing="old"))
    assert [b.metric for b in fallback.breaches] == ["decline_ratio"], fallback.reason


@pytest.mark.parametrize("holdout_rows", [3_000, 0])
def test_a_canary_declining_far_more_than_its_holdout_is_rolled_back(holdout_rows: int) -> None:
    # Scores as validated, but a decline threshold that declines a fifth of the traffic
    # where the holdout declined 0.5 % (0 rows: the rate alone is recorded, taken as known).
    canary, champion = _compare(canary_decision=lambda s: "decline" if s >= 0.012 else _decision(s))
    assert 0.15 < canary.decline_rate < 0.25
    holdout = _holdout(_fraud_score, decline_rate=0.005)
    baseline = Baseline("v2", holdout.score_counts, 0.005, holdout_rows)
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS, baseline)
    assert decision.verdict is Verdict.ROLLBACK
    [breach] = decision.breaches
    assert breach.metric == "decline_ratio" and breach.value > 20
    assert "vs its own holdout 0.0050" in decision.reason
    assert ("3000 rows" if holdout_rows else "taken as known") in decision.reason


def test_a_holdout_unlike_todays_traffic_is_not_blamed_on_the_canary() -> None:
    # Both models score today's traffic higher than the canary's holdout did (a busy
    # hour, a shift since the holdout): the champion, on the same traffic, explains it.
    def busier(rng: random.Random) -> float:
        return min(1.0, rng.lognormvariate(-3.5, 1.3))

    canary, champion = _compare(canary_score=busier, champion_score=busier)
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS, _holdout(_fraud_score))
    assert decision.verdict is Verdict.PROMOTE, decision.reason
    assert decision.score_psi is not None and decision.score_psi > BOUNDS.max_score_psi
    # With too few champion scores to compare with, the holdout alone decides.
    alone, few = _compare(canary_score=busier, champion_score=busier, canary_share=0.95)
    assert few.scored < BOUNDS.min_evidence_requests
    solo = decide(alone, few, CanaryPlan("v2"), BOUNDS, _holdout(_fraud_score))
    assert solo.verdict is Verdict.ROLLBACK and "its own holdout" in solo.reason


def test_a_canary_with_its_holdout_does_not_wait_for_the_champion() -> None:
    canary, champion = _compare(canary_share=0.95)
    assert champion.scored < BOUNDS.min_evidence_requests
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS, _holdout(_fraud_score))
    assert decision.verdict is Verdict.PROMOTE, decision.reason
    old = decide(canary, champion, CanaryPlan("v2"), BOUNDS, Baseline("v2", missing="old"))
    assert old.verdict is Verdict.WAIT
    assert old.reason == (
        f"collecting: champion has {champion.scored} of 200 scores to compare with (old)"
    )


def test_without_a_reference_the_champion_is_the_comparison_and_the_reason_says_so() -> None:
    missing = Baseline.of("v2", {}, missing="no reference: artifact has no reference")
    flat, champion = _compare(canary_score=lambda r: 0.004)
    decision = decide(flat, champion, CanaryPlan("v2"), BOUNDS, missing)
    assert decision.verdict is Verdict.ROLLBACK and decision.score_against == "champion"
    assert "score distribution diverges from champion v1: PSI" in decision.reason
    assert "[fallback to the champion: no reference: artifact has no reference; " in (
        decision.reason
    )
    good, champion = _compare()
    passed = decide(good, champion, CanaryPlan("v2"), BOUNDS, missing)
    assert passed.verdict is Verdict.PROMOTE and passed.score_against == "champion"
    assert "PSI 0.0" in passed.reason and "vs the champion" in passed.reason
    assert passed.reason.endswith(
        "; fallback to the champion: no reference: artifact has no reference; "
        "no holdout decline_rate in the record)"
    )


def test_a_reference_without_a_recorded_decline_rate_falls_back_for_declines_only() -> None:
    reference = _holdout(_post_drift_score)
    nothing = Baseline.of("v2", {}, score_sketch=[])
    assert nothing.missing == "no holdout score sketch; no holdout decline_rate in the record"
    scores_only = Baseline("v2", reference.score_counts, missing="no holdout decline_rate")
    canary, champion = _compare(canary_score=_post_drift_score)
    decision = decide(canary, champion, CanaryPlan("v2"), BOUNDS, scores_only)
    assert [b.metric for b in decision.breaches] == ["decline_ratio"], decision.reason
    assert "[fallback to the champion: no holdout decline_rate]" in decision.reason
