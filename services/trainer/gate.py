"""The validation gate: may a candidate model take traffic?

Kernel: numbers in, a verdict out. A candidate passes only when, on the *same*
holdout rows the champion is scored on:

* its average precision is not lower than the champion's by more than
  ``max_ap_drop`` (no champion: nothing to compare, the check passes);
* its calibrated score's expected calibration error is at most ``max_ece`` (a
  decision threshold means nothing on an uncalibrated score);
* in every segment dimension the false-positive-rate gap is at most
  ``max_disparity`` (see :mod:`services.trainer.segments`);
* ONNX and XGBoost agree within ``parity_tolerance`` (what is served is what was
  evaluated);
* one-row ONNX Runtime inference has p99 within ``latency_budget_ms``.

Every failed check adds a reason that starts with the check's name (``average_precision:``,
``ece:``, ``disparity:``, ``parity:``, ``latency:``) and gives the values, so a
rejected version's record on ``model-updates`` says why in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CHECKS = ("average_precision", "ece", "disparity", "parity", "latency")


@dataclass(frozen=True)
class GateBounds:
    """The gate's limits (from :class:`services.trainer.config.TrainerConfig`)."""

    max_ap_drop: float
    max_ece: float
    max_disparity: float
    parity_tolerance: float
    latency_budget_ms: float


@dataclass(frozen=True)
class HoldoutReport:
    """One model's results on the holdout.

    Attributes:
        version: the model version ("" for a candidate not yet named).
        metrics: at least ``average_precision`` and ``ece``.
        disparity: segment dimension → false-positive-rate gap.
    """

    version: str
    metrics: Mapping[str, float]
    disparity: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    """The verdict.

    Attributes:
        passed: every check passed.
        reasons: one line per failed check (empty when passed).
        checks: the numbers compared (candidate and champion AP, ECE, worst
            disparity, parity, latency), for the model card.
        champion_version: the champion compared against, or None.
    """

    passed: bool
    reasons: tuple[str, ...]
    checks: Mapping[str, float]
    champion_version: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the model card's ``gate``)."""
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "champion_version": self.champion_version,
            **{k: float(v) for k, v in self.checks.items()},
        }


def evaluate_gate(
    candidate: HoldoutReport,
    champion: HoldoutReport | None,
    *,
    parity_max_diff: float,
    latency_p99_ms: float,
    bounds: GateBounds,
) -> GateResult:
    """Run every check (see the module docstring); all are evaluated, none short-cut.

    Examples:
        >>> bounds = GateBounds(0.01, 0.02, 0.1, 1e-5, 1.0)
        >>> good = HoldoutReport("v2", {"average_precision": 0.70, "ece": 0.004})
        >>> champ = HoldoutReport("v1", {"average_precision": 0.69, "ece": 0.003})
        >>> evaluate_gate(good, champ, parity_max_diff=1e-7, latency_p99_ms=0.1,
        ...               bounds=bounds).passed
        True
        >>> worse = HoldoutReport("v3", {"average_precision": 0.60, "ece": 0.05})
        >>> evaluate_gate(worse, champ, parity_max_diff=1e-7, latency_p99_ms=0.1,
        ...               bounds=bounds).reasons  # doctest: +NORMALIZE_WHITESPACE
        ('average_precision: 0.6000 is 0.0900 below champion v1 (0.6900); at most 0.0100
          allowed', 'ece: 0.0500 is above the bound 0.0200')
    """
    reasons: list[str] = []
    ap = candidate.metrics["average_precision"]
    checks: dict[str, float] = {"candidate_average_precision": ap}
    if champion is not None:
        champion_ap = champion.metrics["average_precision"]
        checks["champion_average_precision"] = champion_ap
        checks["average_precision_drop"] = champion_ap - ap
        if champion_ap - ap > bounds.max_ap_drop:
            reasons.append(
                f"average_precision: {ap:.4f} is {champion_ap - ap:.4f} below champion "
                f"{champion.version} ({champion_ap:.4f}); at most {bounds.max_ap_drop:.4f} allowed"
            )
        if "ece" in champion.metrics:
            checks["champion_ece"] = champion.metrics["ece"]
    ece = candidate.metrics["ece"]
    checks["candidate_ece"] = ece
    if not ece <= bounds.max_ece:
        reasons.append(f"ece: {ece:.4f} is above the bound {bounds.max_ece:.4f}")
    if candidate.disparity:
        worst = max(candidate.disparity, key=lambda d: candidate.disparity[d])
        checks["worst_disparity"] = candidate.disparity[worst]
        for dimension, gap in sorted(candidate.disparity.items()):
            if not gap <= bounds.max_disparity:
                reasons.append(
                    f"disparity: false-positive rates across {dimension} differ by {gap:.4f}; "
                    f"at most {bounds.max_disparity:.4f} allowed"
                )
    checks["parity_max_abs_diff"] = parity_max_diff
    if not parity_max_diff <= bounds.parity_tolerance:
        reasons.append(
            f"parity: ONNX and XGBoost differ by {parity_max_diff:.3g}; "
            f"at most {bounds.parity_tolerance:.3g} allowed"
        )
    checks["latency_p99_ms"] = latency_p99_ms
    if not latency_p99_ms <= bounds.latency_budget_ms:
        reasons.append(
            f"latency: one-row inference p99 {latency_p99_ms:.3f} ms is above the budget "
            f"{bounds.latency_budget_ms:.3f} ms"
        )
    return GateResult(
        passed=not reasons,
        reasons=tuple(reasons),
        checks=checks,
        champion_version=champion.version if champion is not None else None,
    )
