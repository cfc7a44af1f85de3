"""How far a canary's score distribution is from a reference's, over fixed bins.

Kernel: no I/O. Both statistics take bin counts (see
:data:`services.controller.windows.SCORE_EDGES`), so they are computed from the
bounded window histograms, never from stored scores. The reference is the canary's
own holdout (its sketch binned and scaled to its rows, fractional counts,
:mod:`services.controller.baseline`) or the champion's window.

- :func:`psi` — the population stability index, ``sum((q - p) * ln(q / p))``, with
  additive (Jeffreys, +0.5) smoothing so that an empty bin is finite. It is the
  gate: a model that collapses to one score puts all its mass in one bin and
  scores in the several units, while two samples of one distribution stay near
  ``(bins - 1) * (1/n + 1/m)`` (about 0.08 for 16 bins, 200 and 2,000 scores).
  Usual reading: < 0.1 stable, 0.1 to 0.25 moderate, > 0.25 a real shift.
- :func:`ks_distance` — the two-sample Kolmogorov-Smirnov statistic on the binned
  CDFs (a lower bound of the exact one), reported beside PSI for the operator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def psi(expected: Sequence[float], actual: Sequence[float], *, smoothing: float = 0.5) -> float:
    """Population stability index of ``actual`` against ``expected`` bin counts.

    Args:
        expected: the reference's counts per bin (the holdout, or the champion).
        actual: the compared counts per bin (the canary), same bins.
        smoothing: added to every bin's count before normalising.

    Raises:
        ValueError: the bin counts differ in length, or one side is empty.

    Examples:
        >>> champion = [5, 40, 300, 900, 500, 200, 40, 15]
        >>> round(psi(champion, [3, 22, 150, 452, 245, 98, 22, 8]), 4)  # same shape
        0.0009
        >>> psi(champion, [0, 0, 0, 1000, 0, 0, 0, 0]) > 1.0  # a constant score
        True
    """
    if len(expected) != len(actual):
        raise ValueError("psi: bin counts differ in length")
    n_e, n_a = sum(expected), sum(actual)
    if n_e == 0 or n_a == 0:
        raise ValueError("psi: a side has no counts")
    k = len(expected)
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        p = (e + smoothing) / (n_e + smoothing * k)
        q = (a + smoothing) / (n_a + smoothing * k)
        total += (q - p) * math.log(q / p)
    return total


def ks_distance(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Largest gap between the two binned cumulative distributions (0..1).

    Examples:
        >>> ks_distance([10, 10, 0], [0, 10, 10])
        0.5
        >>> ks_distance([1, 2, 3], [2, 4, 6])
        0.0
    """
    if len(expected) != len(actual):
        raise ValueError("ks_distance: bin counts differ in length")
    n_e, n_a = sum(expected), sum(actual)
    if n_e == 0 or n_a == 0:
        raise ValueError("ks_distance: a side has no counts")
    gap = cum_e = cum_a = 0.0
    for e, a in zip(expected, actual, strict=True):
        cum_e += e / n_e
        cum_a += a / n_a
        gap = max(gap, abs(cum_e - cum_a))
    return round(gap, 12)
