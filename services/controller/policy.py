"""The rollout decision: promote the canary, roll it back, or wait.

Kernel: no I/O. :func:`decide` compares the canary's window with the champion's:

ROLLBACK, naming every breached metric with its value and bound, when the canary
has at least ``min_evidence_requests`` requests (and, for the comparisons, the
champion too) and any of these holds:

- error rate (model errors that fell back to rules) above ``max_error_rate``;
- p99 latency above the plan's ``max_p99_latency_ms`` (the configured default
  when the plan has none);
- score-distribution PSI against the champion above ``max_score_psi``;
- decline-rate ratio canary / champion outside ``[1 / max_decline_ratio,
  max_decline_ratio]``;
- precision of flagged decisions lower than the champion's by more than the
  plan's ``max_ap_drop`` (the configured default when the plan has none), once both
  have ``min_labelled_flags`` labelled flagged decisions.

Declines and frauds are rare, so a ratio or a drop of a few counts is mostly
noise: those two checks also need the difference to be significant (two-sided
two-proportion z-test, p below ``significance``).

PROMOTE when nothing is breached and the canary has the plan's
``min_canary_requests`` (or the configured default) in the window — except a
high-impact version without ``approved_by``, which WAITs *awaiting approval*.
Otherwise WAIT. Checks that need labels are skipped until labels arrive; they
never hold a promotion back on their own (labels come days late).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from riskstream.v1 import events_pb2
from services.controller.divergence import ks_distance, psi
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
        max_score_psi: PSI of the canary's scores against the champion's.
        max_decline_ratio: decline-rate ratio bound (> 1), both directions.
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
class Breach:
    """One failed check: ``metric`` measured ``value`` against ``bound``."""

    metric: str
    value: float
    bound: float
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict and why.

    Attributes:
        verdict: promote, roll back or wait.
        reason: one line for the transition record, logs and operators.
        breaches: the failed checks (ROLLBACK only).
        awaiting_approval: passed every check, held for a high-impact approval.
        score_psi: PSI of the canary's scores against the champion's (None when
            either side has too few requests).
        score_ks: binned KS distance, likewise.
    """

    verdict: Verdict
    reason: str
    breaches: tuple[Breach, ...] = ()
    awaiting_approval: bool = False
    score_psi: float | None = None
    score_ks: float | None = None


def _smoothed_decline_rate(stats: WindowStats) -> float:
    return (stats.declines + 0.5) / (stats.scored + 1.0)


def two_proportion_p_value(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value that ``k1/n1`` and ``k2/n2`` share one rate (pooled z-test).

    Examples:
        >>> round(two_proportion_p_value(2, 600, 2, 2000), 3)
        0.201
        >>> two_proportion_p_value(600, 600, 10, 2000) < 1e-12
        True
        >>> two_proportion_p_value(0, 600, 0, 2000)
        1.0
    """
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (k1 / n1 - k2 / n2) / math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    return math.erfc(abs(z) / math.sqrt(2.0))


def decide(
    canary: WindowStats, champion: WindowStats, plan: CanaryPlan, bounds: Bounds
) -> Decision:
    """Promote, roll back or wait, from the two windows.

    Args:
        canary: the canary's window statistics.
        champion: the champion's, over the same window.
        plan: the canary's rollout plan and approval.
        bounds: the configured gates.

    Examples:
        >>> from services.controller.windows import VersionWindow, Observation
        >>> def window(version, score, latency_ms, n):
        ...     w = VersionWindow(version, window_s=600)
        ...     for i in range(n):
        ...         w.update(Observation(version, 1_000 + i, score=score(i),
        ...                              latency_ms=latency_ms))
        ...     return w.stats(now_ms=2_000)
        >>> spread = lambda i: (i % 97) / 970
        >>> champion = window("v1", spread, 2.0, 2_000)
        >>> plan = CanaryPlan("v2", min_canary_requests=500)
        >>> decide(window("v2", spread, 2.1, 600), champion, plan, Bounds()).verdict
        <Verdict.PROMOTE: 'promote'>
        >>> flat = decide(window("v2", lambda i: 0.05, 2.0, 600), champion, plan, Bounds())
        >>> flat.verdict, flat.breaches[0].metric
        (<Verdict.ROLLBACK: 'rollback'>, 'score_psi')
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
    score_psi = score_ks = None
    compared = champion.scored >= bounds.min_evidence_requests and canary.scored > 0
    if compared:
        score_psi = psi(champion.score_counts, canary.score_counts)
        score_ks = ks_distance(champion.score_counts, canary.score_counts)
        if score_psi > bounds.max_score_psi:
            breaches.append(
                Breach(
                    "score_psi", score_psi, bounds.max_score_psi,
                    f"score distribution diverges from champion {champion.version}: "
                    f"PSI {score_psi:.3f} > {bounds.max_score_psi:.3f} (KS {score_ks:.3f}, "
                    f"{canary.scored} vs {champion.scored} scores)",
                )
            )  # fmt: skip
        ratio = _smoothed_decline_rate(canary) / _smoothed_decline_rate(champion)
        p_value = two_proportion_p_value(
            canary.declines, canary.scored, champion.declines, champion.scored
        )
        outside = not 1.0 / bounds.max_decline_ratio <= ratio <= bounds.max_decline_ratio
        if outside and p_value < bounds.significance:
            breaches.append(
                Breach(
                    "decline_ratio", ratio, bounds.max_decline_ratio,
                    f"decline rate {canary.decline_rate:.4f} vs champion "
                    f"{champion.decline_rate:.4f}: ratio {ratio:.2f} outside "
                    f"[{1.0 / bounds.max_decline_ratio:.2f}, {bounds.max_decline_ratio:.2f}] "
                    f"(p {p_value:.2g})",
                )
            )  # fmt: skip
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
    if breaches:
        return Decision(
            Verdict.ROLLBACK,
            "rollback: " + "; ".join(str(b) for b in breaches),
            tuple(breaches),
            score_psi=score_psi,
            score_ks=score_ks,
        )
    if not compared:
        return Decision(
            Verdict.WAIT,
            f"collecting: champion has {champion.scored} of {bounds.min_evidence_requests} "
            "scores to compare with",
            score_psi=score_psi,
            score_ks=score_ks,
        )
    if canary.requests < needed:
        return Decision(
            Verdict.WAIT,
            f"collecting: {canary.requests} of {needed} canary requests in the window",
            score_psi=score_psi,
            score_ks=score_ks,
        )
    passed = (
        f"{canary.requests} requests, error rate {canary.error_rate:.3f}, "
        f"p99 {canary.p99_latency_ms:.1f} ms, PSI {score_psi:.3f}, "
        f"decline rate {canary.decline_rate:.4f} (champion {champion.decline_rate:.4f})"
    )
    if canary.precision is not None and enough_labels >= bounds.min_labelled_flags:
        passed += f", precision {canary.precision:.3f} (champion {champion.precision:.3f})"
    if plan.high_impact and not plan.approved_by:
        return Decision(
            Verdict.WAIT,
            f"awaiting approval: high-impact version passed ({passed})",
            awaiting_approval=True,
            score_psi=score_psi,
            score_ks=score_ks,
        )
    return Decision(
        Verdict.PROMOTE, f"promote: passed ({passed})", score_psi=score_psi, score_ks=score_ks
    )
