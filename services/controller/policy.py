"""The rollout decision: promote the canary, roll it back, or wait.

Kernel: no I/O. :func:`decide` judges the canary's window against two things: its
own validated behaviour (its :class:`~services.controller.baseline.Baseline`: the
holdout scores of its artifact's ``reference.json`` and the holdout decline rate of
its record) for *is it broken*, and the champion's window for *is it better*.

ROLLBACK, naming every breached metric with its value and bound, when the canary
has at least ``min_evidence_requests`` requests and any of these holds:

- error rate (model errors that fell back to rules) above ``max_error_rate``;
- p99 latency above the plan's ``max_p99_latency_ms`` (the configured default
  when the plan has none);
- score-distribution PSI against its own holdout above ``max_score_psi``;
- decline-rate ratio canary / its own holdout outside ``[1 / max_decline_ratio,
  max_decline_ratio]``;
- precision of flagged decisions lower than the champion's by more than the
  plan's ``max_ap_drop`` (the configured default when the plan has none), once both
  have ``min_labelled_flags`` labelled flagged decisions.

Why the two divergence guards look at the canary's own holdout: they exist to catch
a *broken* canary (wrong feature order, a corrupted model, a constant score), which
scores live traffic unlike the holdout it was validated on. Against the champion
they misfire after a drift, when the champion is the stale model and a better
canary differs from it on purpose. The champion still serves as the control for
the traffic: when it has ``min_evidence_requests`` scores of its own, a divergence
from the holdout counts only if the canary diverges from the champion too (a
holdout that no longer looks like today's traffic — a quiet hour, a shift after the
holdout ended — moves both models alike). A canary without a reference or without
a recorded holdout decline rate (an artifact older than those) is compared with the
champion for that signal, as before, and the reason says so.

Declines and frauds are rare, so a ratio or a drop of a few counts is mostly
noise: those two checks also need the difference to be significant (two-sided
two-proportion z-test, p below ``significance``; a holdout rate recorded without
its row count is taken as known, one-sample test).

PROMOTE when nothing is breached and the canary has the plan's
``min_canary_requests`` (or the configured default) in the window — except a
high-impact version without ``approved_by``, which WAITs *awaiting approval*.
Otherwise WAIT; also while a check that falls back to the champion has fewer than
``min_evidence_requests`` champion scores to compare with. Checks that need labels
are skipped until labels arrive; they never hold a promotion back on their own
(labels come days late).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from riskstream.v1 import events_pb2
from services.controller.baseline import Baseline
from services.controller.guards import (
    Breach,
    Guard,
    decline_guard,
    score_guard,
    two_proportion_p_value,
)
from services.controller.windows import WindowStats


class Verdict(Enum):
    """What to do with the canary."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Bounds:
    """Configured gates (the plan's own values win where it has them).

    Attributes:
        min_canary_requests: canary requests in the window before a promotion.
        min_evidence_requests: requests each side needs before a rollback check counts.
        max_error_rate: model errors per request, 0..1.
        max_p99_latency_ms: p99 latency, milliseconds.
        max_score_psi: PSI of the canary's scores against its holdout's (the
            champion's when it has no reference).
        max_decline_ratio: decline-rate ratio bound (> 1), both directions, canary
            against its holdout (the champion when it has no holdout rate).
        max_precision_drop: champion precision minus canary precision, 0..1.
        min_labelled_flags: labelled flagged decisions per side before precision counts.
        significance: p-value below which a decline-rate or precision difference is real.
    """

    min_canary_requests: int = 1_000
    min_evidence_requests: int = 200
    max_error_rate: float = 0.01
    max_p99_latency_ms: float = 50.0
    max_score_psi: float = 0.25
    max_decline_ratio: float = 2.0
    max_precision_drop: float = 0.05
    min_labelled_flags: int = 30
    significance: float = 0.01


@dataclass(frozen=True, slots=True)
class CanaryPlan:
    """The parts of the canary's ``ModelVersion`` the decision reads (0 = not set).

    Attributes:
        version: the canary version.
        min_canary_requests: ``rollout.min_canary_requests``.
        max_p99_latency_ms: ``rollout.max_p99_latency_ms``.
        max_precision_drop: ``rollout.max_ap_drop``, read as the largest precision drop.
        high_impact: ``rollout.high_impact``: needs ``approved_by`` before promotion.
        approved_by: who approved it ("" when nobody has).
    """

    version: str
    min_canary_requests: int = 0
    max_p99_latency_ms: float = 0.0
    max_precision_drop: float = 0.0
    high_impact: bool = False
    approved_by: str = ""

    @classmethod
    def of(cls, record: events_pb2.ModelVersion) -> CanaryPlan:
        """The plan of a registry record."""
        plan = record.rollout
        return cls(
            version=record.version,
            min_canary_requests=plan.min_canary_requests,
            max_p99_latency_ms=plan.max_p99_latency_ms,
            max_precision_drop=plan.max_ap_drop,
            high_impact=plan.high_impact,
            approved_by=record.approved_by,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict and why.

    Attributes:
        verdict: promote, roll back or wait.
        reason: one line for the transition record, logs and operators.
        breaches: the failed checks (ROLLBACK only).
        awaiting_approval: passed every check, held for a high-impact approval.
        score_psi: PSI of the canary's scores against its holdout's, else against
            the champion's (None when there was nothing to compare with).
        score_ks: binned KS distance, likewise.
        score_against: what ``score_psi`` compared with: "holdout", "champion" or "".
    """

    verdict: Verdict
    reason: str
    breaches: tuple[Breach, ...] = ()
    awaiting_approval: bool = False
    score_psi: float | None = None
    score_ks: float | None = None
    score_against: str = ""


def decide(
    canary: WindowStats,
    champion: WindowStats,
    plan: CanaryPlan,
    bounds: Bounds,
    baseline: Baseline | None = None,
) -> Decision:
    """Promote, roll back or wait, from the canary's window, its holdout and the champion's.

    Args:
        canary: the canary's window statistics.
        champion: the champion's, over the same window.
        plan: the canary's rollout plan and approval.
        bounds: the configured gates.
        baseline: the canary's holdout behaviour (None: none loaded; the score and
            decline checks then compare with the champion alone).

    Examples:
        >>> from services.controller.windows import VersionWindow, Observation
        >>> def window(version, score, latency_ms, n):
        ...     w = VersionWindow(version, window_s=600)
        ...     for i in range(n):
        ...         w.update(Observation(version, 1_000 + i, score=score(i),
        ...                              latency_ms=latency_ms))
        ...     return w.stats(now_ms=2_000)
        >>> spread = lambda i: (i % 97) / 970
        >>> shifted = lambda i: 0.5 + (i % 97) / 970
        >>> champion = window("v1", spread, 2.0, 2_000)
        >>> plan = CanaryPlan("v2", min_canary_requests=500)
        >>> holdout = Baseline.of("v2", {"decline_rate": 0.0, "rows": 3_000.0},
        ...     score_sketch=[shifted(i) for i in range(970)], score_rows=3_000)
        >>> good = decide(window("v2", shifted, 2.1, 600), champion, plan, Bounds(), holdout)
        >>> good.verdict, good.score_against  # its own scores, unlike the champion's
        (<Verdict.PROMOTE: 'promote'>, 'holdout')
        >>> flat = decide(window("v2", lambda i: 0.05, 2.0, 600), champion, plan, Bounds(),
        ...               holdout)
        >>> flat.verdict, flat.breaches[0].metric
        (<Verdict.ROLLBACK: 'rollback'>, 'score_psi')
        >>> old = decide(window("v2", spread, 2.0, 600), champion, plan, Bounds())
        >>> old.verdict, old.score_against  # no baseline: compared with the champion
        (<Verdict.PROMOTE: 'promote'>, 'champion')
        >>> decide(window("v2", spread, 2.0, 300), champion, plan, Bounds()).reason
        'collecting: 300 of 500 canary requests in the window'
    """
    needed = plan.min_canary_requests or bounds.min_canary_requests
    if canary.requests < bounds.min_evidence_requests:
        return Decision(
            Verdict.WAIT,
            f"collecting: {canary.requests} of {bounds.min_evidence_requests} canary requests "
            "before any check",
        )
    baseline = baseline or Baseline(canary.version, missing="no baseline loaded")
    breaches: list[Breach] = []
    if canary.error_rate > bounds.max_error_rate:
        breaches.append(
            Breach(
                "error_rate", canary.error_rate, bounds.max_error_rate,
                f"error rate {canary.error_rate:.3f} > {bounds.max_error_rate:.3f} "
                f"({canary.errors} model errors in {canary.requests} requests; "
                f"champion {champion.error_rate:.3f})",
            )
        )  # fmt: skip
    p99_bound = plan.max_p99_latency_ms or bounds.max_p99_latency_ms
    if canary.scored and canary.p99_latency_ms > p99_bound:
        breaches.append(
            Breach(
                "p99_latency_ms", canary.p99_latency_ms, p99_bound,
                f"p99 latency {canary.p99_latency_ms:.1f} ms > {p99_bound:.1f} ms "
                f"(champion {champion.p99_latency_ms:.1f} ms)",
            )
        )  # fmt: skip
    control = champion if champion.scored >= bounds.min_evidence_requests else None
    scores = score_guard(canary, control, baseline, max_psi=bounds.max_score_psi)
    declines = decline_guard(
        canary, control, baseline,
        max_ratio=bounds.max_decline_ratio, significance=bounds.significance,
    )  # fmt: skip
    breaches.extend(b for b in (scores.breach(), declines.breach()) if b is not None)
    drop_bound = plan.max_precision_drop or bounds.max_precision_drop
    enough_labels = min(canary.labelled_flagged, champion.labelled_flagged)
    if enough_labels >= bounds.min_labelled_flags:
        drop = (champion.precision or 0.0) - (canary.precision or 0.0)
        p_value = two_proportion_p_value(
            canary.fraud_flagged, canary.labelled_flagged,
            champion.fraud_flagged, champion.labelled_flagged,
        )  # fmt: skip
        if drop > drop_bound and p_value < bounds.significance:
            breaches.append(
                Breach(
                    "precision_drop", drop, drop_bound,
                    f"precision of flagged decisions {canary.precision:.3f} vs champion "
                    f"{champion.precision:.3f}: drop {drop:.3f} > {drop_bound:.3f} "
                    f"({canary.labelled_flagged} and {champion.labelled_flagged} labelled, "
                    f"p {p_value:.2g})",
                )
            )  # fmt: skip
    verdict, awaiting = Verdict.WAIT, False
    if breaches:
        verdict, reason = Verdict.ROLLBACK, "rollback: " + "; ".join(str(b) for b in breaches)
    elif not (scores.has_holdout and declines.has_holdout) and control is None:
        reason = (
            f"collecting: champion has {champion.scored} of {bounds.min_evidence_requests} "
            f"scores to compare with ({baseline.missing})"
        )
    elif canary.requests < needed:
        reason = f"collecting: {canary.requests} of {needed} canary requests in the window"
    else:
        passed = (
            f"{canary.requests} requests, error rate {canary.error_rate:.3f}, "
            f"p99 {canary.p99_latency_ms:.1f} ms, {_passed_scores(scores)}, "
            f"{_passed_declines(canary, champion, baseline)}"
        )
        if canary.precision is not None and enough_labels >= bounds.min_labelled_flags:
            passed += f", precision {canary.precision:.3f} (champion {champion.precision:.3f})"
        if baseline.missing:
            passed += f"; fallback to the champion: {baseline.missing}"
        if plan.high_impact and not plan.approved_by:
            reason, awaiting = f"awaiting approval: high-impact version passed ({passed})", True
        else:
            verdict, reason = Verdict.PROMOTE, f"promote: passed ({passed})"
    return Decision(
        verdict, reason, tuple(breaches), awaiting_approval=awaiting,
        score_psi=scores.value, score_ks=scores.distance, score_against=scores.against,
    )  # fmt: skip


def _passed_scores(scores: Guard) -> str:
    champion = f"champion {scores.champion_value:.3f}" if scores.champion_value is not None else ""
    if scores.against == "holdout":
        return f"PSI {scores.value:.3f} vs its holdout" + (f" ({champion})" if champion else "")
    return f"PSI {scores.value or 0.0:.3f} vs the champion"


def _passed_declines(canary: WindowStats, champion: WindowStats, baseline: Baseline) -> str:
    holdout = f"holdout {baseline.decline_rate:.4f}, " if baseline.decline_rate is not None else ""
    return f"decline rate {canary.decline_rate:.4f} ({holdout}champion {champion.decline_rate:.4f})"
