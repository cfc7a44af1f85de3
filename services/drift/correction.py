"""From p-values to a confirmed drift: multiple testing, then persistence.

Kernel, no I/O. Each window tests every feature and the score (dozens of tests);
a window *flags* when any test survives Benjamini-Hochberg at level ``q``. Under a
stationary stream every null hypothesis is true, and then BH's false discovery rate
is its family-wise error rate: a stationary window flags with probability at most
``q``, however many features there are, and the per-test p-values already account
for the window's size. A drift is *confirmed* when at least ``k`` of the last ``m``
evaluated windows flagged (:class:`Persistence`). With independent windows a
stationary stream confirms at a given window with probability at most
``C(m - 1, k - 1) q^k``; :func:`window_level` inverts that, so operators set the
false-alarm rate they accept per window and ``q`` follows.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (a test is rejected at level q when its value is <= q).

    Examples:
        >>> [round(p, 3) for p in benjamini_hochberg([0.01, 0.04, 0.03, 0.5])]
        [0.04, 0.053, 0.053, 0.5]
        >>> benjamini_hochberg([])
        []
    """
    p = np.asarray(p_values, dtype=np.float64)
    n = len(p)
    if not n:
        return []
    order = np.argsort(p)
    scaled = p[order] * n / np.arange(1, n + 1)
    adjusted_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(n)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return [float(v) for v in adjusted]


def window_level(false_alarm_rate: float, k: int, m: int) -> float:
    """The per-window BH level ``q`` so that k-of-m persistence confirms a stationary
    stream at most ``false_alarm_rate`` of the windows.

    Examples:
        >>> round(window_level(1e-4, 2, 3), 6)
        0.007071
        >>> window_level(0.01, 1, 1)
        0.01
    """
    if not (0 < false_alarm_rate < 1 and 1 <= k <= m):
        raise ValueError("need 0 < false_alarm_rate < 1 and 1 <= k <= m")
    return float(min(1.0, (false_alarm_rate / math.comb(m - 1, k - 1)) ** (1.0 / k)))


class Persistence:
    """k of the last m windows.

    Args:
        k: flagged windows needed.
        m: windows remembered.

    Examples:
        >>> rule = Persistence(2, 3)
        >>> [rule.update(f) for f in (True, False, False, True, False, True)]
        [False, False, False, False, False, True]
        >>> rule.reset(); rule.update(True)
        False
    """

    def __init__(self, k: int, m: int) -> None:
        if not 1 <= k <= m:
            raise ValueError("need 1 <= k <= m")
        self.k = k
        self._last: deque[bool] = deque(maxlen=m)

    def update(self, flagged: bool) -> bool:
        """Record one evaluated window; True when the rule is met after it."""
        self._last.append(flagged)
        return flagged and sum(self._last) >= self.k

    def reset(self) -> None:
        """Forget every window (a new champion means a new reference)."""
        self._last.clear()

    @property
    def flagged(self) -> int:
        """Flagged windows among the remembered ones."""
        return sum(self._last)
