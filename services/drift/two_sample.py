"""One window of a column against its reference: KS, chi-square and PSI.

Kernel, no I/O. The reference is a quantile sketch of ``count`` real rows
(:mod:`reference`), so two things follow:

- **KS.** The statistic D is the largest gap between the window's empirical CDF and
  the sketch's step CDF. The sketch's CDF is within ``0.5 / len(sample)`` of the
  reference rows' own CDF (each quantile stands for ``1 / len(sample)`` of the
  mass), so that much of D may be the sketch's and is taken off before the p-value
  (conservative). The p-value is the two-sample one for sizes ``n`` (window) and
  ``m = count`` (the rows the sketch summarises): Kolmogorov's distribution at the
  effective size ``n m / (n + m)``, as :func:`scipy.stats.ks_2samp` computes it
  asymptotically (exact up to 2,000, Kolmogorov's limit above). Treating the
  1,000 quantiles as 1,000 draws would make the test far weaker than the data
  allow; treating the reference as exact (m = ∞) would ignore its own sampling
  error and raise false alarms on large windows.
- **Chi-square** (binary and discrete columns) is the 2 x k contingency test of the
  window's bin counts against the reference's (``bin_shares x count``): again the
  reference's finite size counts. Empty bins on both sides are dropped. Binary
  columns use two cells, zeros and ones, from ``share_ones`` (the decile edges of a
  0/1 column are often just ``[0]``, which puts both values in one bin).

PSI over the same decile bins is reported alongside both; it has no p-value and
does not decide anything (its familiar 0.1 / 0.25 rules of thumb ignore the window
size, which is the reason the decision rests on the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from services.registry.reference import ColumnReference, Floats

#: Columns whose sketch has at most this many distinct values are tested as binned.
MAX_DISCRETE_LEVELS = 20
#: Largest effective size whose KS p-value is computed exactly (larger: asymptotically).
EXACT_KS_MAX_N = 2_000
#: Floor on bin shares inside PSI's logarithm (an empty bin must not be infinite).
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class ColumnTest:
    """One column's comparison in one window.

    Attributes:
        column: the feature (or ``__score__``).
        test: ``ks`` or ``chi2``.
        statistic: KS D (after the sketch correction) or the chi-square statistic.
        p_value: the test's p-value (before any multiple-testing correction).
        psi: population stability index over the reference's bins.
        rows: finite values of the column in the window.
    """

    column: str
    test: str
    statistic: float
    p_value: float
    psi: float
    rows: int


def bin_counts(values: Floats, edges: Floats) -> Floats:
    """Values per reference bin (``len(edges) + 1`` bins, right-closed like the trainer's).

    Examples:
        >>> bin_counts(np.array([0.0, 1.0, 1.0, 5.0]), np.array([1.0, 2.0])).tolist()
        [1.0, 2.0, 1.0]
    """
    idx = np.searchsorted(edges, values, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)


def psi(window_shares: Floats, reference_shares: Floats) -> float:
    """Population stability index of two share vectors over the same bins.

    Examples:
        >>> psi(np.array([0.5, 0.5]), np.array([0.5, 0.5]))
        0.0
        >>> round(psi(np.array([0.9, 0.1]), np.array([0.5, 0.5])), 3)
        0.879
    """
    w = np.maximum(window_shares, PSI_EPSILON)
    r = np.maximum(reference_shares, PSI_EPSILON)
    return float(np.sum((w - r) * np.log(w / r)))


def ks_against_sketch(values: Floats, ref: ColumnReference) -> tuple[float, float]:
    """(D, p-value) of the window's values against the reference's sketch.

    ``values`` must be finite and non-empty; see the module docstring for the sizes.

    Examples:
        >>> sample = (np.arange(1000) + 0.5) / 1000  # Uniform(0, 1), 10,000 rows
        >>> ref = ColumnReference("u", "continuous", 10_000, sample, np.array([0.5]),
        ...                       np.array([0.5, 0.5]))
        >>> rng = np.random.default_rng(0)
        >>> d, p = ks_against_sketch(rng.random(5_000), ref)
        >>> p > 0.05
        True
        >>> d, p = ks_against_sketch(rng.random(5_000) ** 1.2, ref)
        >>> round(d, 3), p < 1e-6
        (0.069, True)
    """
    sample = ref.sample
    x = np.sort(values)
    n, k = len(x), len(sample)
    grid = np.concatenate([x, sample])
    gap = np.abs(
        np.searchsorted(x, grid, side="right") / n - np.searchsorted(sample, grid, side="right") / k
    )
    d = max(0.0, float(gap.max()) - 0.5 / k)
    m = max(ref.count, 1)
    effective = max(1, round(n * m / (n + m)))
    if effective <= EXACT_KS_MAX_N:
        return d, float(stats.kstwo.sf(d, effective))
    # Kolmogorov's limit: within 1 % of the exact tail here, and slightly larger
    # (conservative); the exact one costs ~30 ms per column at n = 8,000.
    return d, float(stats.kstwobign.sf(d * np.sqrt(effective)))


def chi2_against_bins(counts: Floats, ref: ColumnReference) -> tuple[float, float]:
    """(chi-square, p-value) of window bin counts against the reference's.

    Examples:
        >>> ref = ColumnReference("b", "binary", 1_000, np.array([0.0, 1.0]),
        ...                       np.array([0.0]), np.array([0.0, 0.7, 0.3]))
        >>> stat, p = chi2_against_bins(np.array([0.0, 700.0, 300.0]), ref)
        >>> round(stat, 6), round(p, 6)
        (0.0, 1.0)
        >>> stat, p = chi2_against_bins(np.array([0.0, 600.0, 400.0]), ref)
        >>> p < 1e-4
        True
    """
    expected = ref.bin_shares * ref.count
    table = np.vstack([counts, expected])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def compare(column: str, values: Floats, ref: ColumnReference) -> ColumnTest | None:
    """Compare one column's window values with its reference (None: nothing to compare).

    Binary columns and columns with at most :data:`MAX_DISCRETE_LEVELS` distinct
    reference values are tested by chi-square over the reference bins; the others
    by KS against the sketch.
    """
    x = values[np.isfinite(values)]
    if not len(x) or not len(ref.sample) or ref.count < 1:
        return None
    if ref.kind == "binary" and ref.share_ones is not None:
        # Two cells, zeros and ones: decile edges of a 0/1 column may not separate them.
        ones = float(np.count_nonzero(x == 1.0))
        shares = np.array([1.0 - ref.share_ones, ref.share_ones])
        cells = replace(ref, bin_shares=shares)
        counts = np.array([len(x) - ones, ones])
        stat, p = chi2_against_bins(counts, cells)
        return ColumnTest(column, "chi2", stat, p, psi(counts / len(x), shares), len(x))
    counts = bin_counts(x, ref.bin_edges)
    drift_psi = psi(counts / len(x), ref.bin_shares)
    if ref.kind == "binary" or ref.levels <= MAX_DISCRETE_LEVELS:
        stat, p = chi2_against_bins(counts, ref)
        return ColumnTest(column, "chi2", stat, p, drift_psi, len(x))
    d, p = ks_against_sketch(x, ref)
    return ColumnTest(column, "ks", d, p, drift_psi, len(x))
