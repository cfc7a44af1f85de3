"""The two divergence guards: is the canary broken?

Kernel: no I/O. A broken canary (wrong feature order, a corrupted model, a constant
score) scores live traffic unlike the holdout it was validated on. Each guard
therefore compares the canary's window with its own
:class:`~services.controller.baseline.Baseline` first:

- :func:`score_guard` — PSI of the canary's live score bins against its holdout's
  (:func:`services.controller.divergence.psi`; binned KS in the detail);
- :func:`decline_guard` — the canary's decline rate against its holdout's: ratio
  outside ``[1 / max_ratio, max_ratio]`` *and* significant (two-proportion z-test
  against the holdout's rows; one-sample when only the rate is recorded).

The champion is the control for the traffic. When it has enough scores in the
window, a divergence from the holdout is confirmed only if the canary diverges from
the champion too: a holdout that no longer looks like today's traffic (a quiet
hour, a shift since the holdout ended) moves both models alike, while a better
canary after a drift differs from the stale champion on purpose but not from its
own holdout. Without the holdout side (an artifact without ``reference.json``, a
record without ``decline_rate``) the guard compares with the champion alone, as the
controller did before, and its breach says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.controller.baseline import Baseline
from services.controller.divergence import ks_distance, psi
from services.controller.windows import WindowStats


@dataclass(frozen=True, slots=True)
class Breach:
    """One failed check: ``metric`` measured ``value`` against ``bound``."""

    metric: str
    value: float
    bound: float
    detail: str

    def __str__(self) -> str:
        return self.detail


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


def one_proportion_p_value(k: int, n: int, rate: float) -> float:
    """Two-sided p-value that ``k/n`` comes from the known ``rate`` (score z-test).

    Examples:
        >>> round(one_proportion_p_value(3, 1000, 0.005), 3)
        0.37
        >>> one_proportion_p_value(200, 1000, 0.005) < 1e-12
        True
        >>> one_proportion_p_value(0, 1000, 0.0), one_proportion_p_value(1, 1000, 0.0)
        (1.0, 0.0)
    """
    if n == 0:
        return 1.0
    if rate <= 0.0 or rate >= 1.0:
        return 1.0 if k == round(n * rate) else 0.0
    z = (k - n * rate) / math.sqrt(n * rate * (1.0 - rate))
    return math.erfc(abs(z) / math.sqrt(2.0))


@dataclass(frozen=True, slots=True)
class Guard:
    """One guard's two comparisons (read-only).

    Attributes:
        has_holdout: the holdout side was compared.
        holdout: its breach (None: within bounds, or not compared).
        has_champion: the champion had enough scores to compare with.
        champion: its breach (None: within bounds, or not compared).
        value: the statistic reported (against the holdout, else the champion;
            None when neither was compared).
        champion_value: the statistic against the champion (None: not compared).
        distance: the binned KS distance beside ``value`` (score guard only).
        missing: why the holdout side is absent ("" when it is there).
    """

    has_holdout: bool
    holdout: Breach | None
    has_champion: bool
    champion: Breach | None
    value: float | None = None
    champion_value: float | None = None
    distance: float | None = None
    missing: str = ""

    @property
    def against(self) -> str:
        """What ``value`` compares with: "holdout", "champion" or ""."""
        return "holdout" if self.has_holdout else "champion" if self.has_champion else ""

    def breach(self) -> Breach | None:
        """The holdout's breach, confirmed by the champion when it can be; else the champion's.

        Examples:
            >>> own = Breach("score_psi", 3.0, 0.25, "vs holdout")
            >>> champ = Breach("score_psi", 2.0, 0.25, "vs champion")
            >>> Guard(True, own, True, None).breach() is None  # the traffic, not the model
            True
            >>> print(Guard(True, own, True, champ).breach())
            vs holdout, and vs champion
            >>> print(Guard(False, None, True, champ, missing="no reference").breach())
            vs champion [fallback to the champion: no reference]
        """
        if self.has_holdout:
            if self.holdout is None or (self.has_champion and self.champion is None):
                return None
            if self.champion is None:
                return self.holdout
            own, champ = self.holdout, self.champion
            return Breach(own.metric, own.value, own.bound, f"{own.detail}, and {champ.detail}")
        if self.champion is None:
            return None
        champ = self.champion
        return Breach(
            champ.metric, champ.value, champ.bound,
            f"{champ.detail} [fallback to the champion: {self.missing}]",
        )  # fmt: skip


def score_guard(
    canary: WindowStats,
    champion: WindowStats | None,
    baseline: Baseline,
    *,
    max_psi: float,
) -> Guard:
    """The score-distribution guard.

    Args:
        canary: the canary's window.
        champion: the champion's window (None: too few scores to compare with).
        baseline: the canary's holdout.
        max_psi: the PSI bound.
    """
    holdout = champ = None
    value = champion_value = distance = None
    has_holdout = bool(baseline.score_counts) and canary.scored > 0
    if has_holdout:
        value = psi(baseline.score_counts, canary.score_counts)
        distance = ks_distance(baseline.score_counts, canary.score_counts)
        if value > max_psi:
            holdout = Breach(
                "score_psi", value, max_psi,
                f"score distribution diverges from its own holdout: PSI {value:.3f} > "
                f"{max_psi:.3f} (KS {distance:.3f}, {canary.scored} scores vs "
                f"{baseline.score_rows:.0f} holdout rows)",
            )  # fmt: skip
    has_champion = champion is not None and canary.scored > 0
    if champion is not None and has_champion:
        champion_value = psi(champion.score_counts, canary.score_counts)
        champion_ks = ks_distance(champion.score_counts, canary.score_counts)
        if not has_holdout:
            value, distance = champion_value, champion_ks
        if champion_value > max_psi:
            champ = Breach(
                "score_psi", champion_value, max_psi,
                f"from champion {champion.version}: PSI {champion_value:.3f} > {max_psi:.3f} "
                f"(KS {champion_ks:.3f}, {canary.scored} vs {champion.scored} scores)",
            )  # fmt: skip
            if not has_holdout:
                champ = Breach(
                    champ.metric, champ.value, champ.bound,
                    f"score distribution diverges {champ.detail}",
                )  # fmt: skip
    return Guard(
        has_holdout, holdout, has_champion, champ, value, champion_value, distance,
        baseline.missing,
    )  # fmt: skip


def _ratio_breach(
    ratio: float, p_value: float, what: str, *, max_ratio: float, significance: float
) -> Breach | None:
    outside = not 1.0 / max_ratio <= ratio <= max_ratio
    if not (outside and p_value < significance):
        return None
    return Breach(
        "decline_ratio", ratio, max_ratio,
        f"{what}: ratio {ratio:.2f} outside [{1.0 / max_ratio:.2f}, {max_ratio:.2f}] "
        f"(p {p_value:.2g})",
    )  # fmt: skip


def decline_guard(
    canary: WindowStats,
    champion: WindowStats | None,
    baseline: Baseline,
    *,
    max_ratio: float,
    significance: float,
) -> Guard:
    """The decline-rate guard (rates smoothed by half a decline: the counts are tiny).

    Args:
        canary: the canary's window.
        champion: the champion's window (None: too few scores to compare with).
        baseline: the canary's holdout.
        max_ratio: the ratio bound (> 1), both ways.
        significance: the p-value below which a difference is real.
    """
    k, n = canary.declines, canary.scored
    rate = (k + 0.5) / (n + 1.0)
    bounds = {"max_ratio": max_ratio, "significance": significance}
    holdout = champ = None
    value = champion_value = None
    has_holdout = baseline.decline_rate is not None and n > 0
    if baseline.decline_rate is not None and has_holdout:
        r, n_h = baseline.decline_rate, baseline.decline_rows
        if n_h > 0:  # the holdout is a sample too
            k_h = round(r * n_h)
            p_value = two_proportion_p_value(k, n, k_h, n_h)
            value = rate / ((k_h + 0.5) / (n_h + 1.0))
            of = f"{n_h} rows"
        else:  # only the rate: taken as known, smoothed like the canary's count
            p_value = one_proportion_p_value(k, n, r)
            value = rate / ((r * n + 0.5) / (n + 1.0))
            of = "taken as known"
        holdout = _ratio_breach(
            value, p_value,
            f"decline rate {canary.decline_rate:.4f} vs its own holdout {r:.4f} ({of})",
            **bounds,
        )  # fmt: skip
    has_champion = champion is not None and n > 0
    if champion is not None and has_champion:
        p_value = two_proportion_p_value(k, n, champion.declines, champion.scored)
        champion_value = rate / ((champion.declines + 0.5) / (champion.scored + 1.0))
        if not has_holdout:
            value = champion_value
        champ = _ratio_breach(
            champion_value, p_value,
            f"decline rate {canary.decline_rate:.4f} vs champion {champion.version} "
            f"{champion.decline_rate:.4f}",
            **bounds,
        )  # fmt: skip
    return Guard(
        has_holdout, holdout, has_champion, champ, value, champion_value, None, baseline.missing
    )
