"""Reference distributions stored with a model, for the drift monitor.

Kernel: arrays in, a JSON-ready document out. For every input feature and for the
served (calibrated) score, the trainer stores what the model saw on its most recent
labelled rows (the holdout): a compact quantile sketch that stands in for a sample
(``sample_size`` evenly spaced quantiles: a two-sample KS test against it behaves
like one against that many draws), decile bin edges with the share in each bin (for
PSI and chi-square), and, for 0/1 features, the share of ones. The drift monitor
compares live windows from ``scores`` against this; it never needs the training
data itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Layout version of ``reference.json``.
REFERENCE_SCHEMA_VERSION = 1
SCORE_KEY = "__score__"


def describe(values: np.ndarray, *, sample_size: int, bins: int = 10) -> dict[str, Any]:
    """The reference of one column.

    Returns:
        ``kind`` (``binary`` for 0/1 columns, else ``continuous``), ``count``, ``mean``,
        ``std``, ``sample`` (quantiles at (i + 0.5) / sample_size), ``bin_edges``
        (unique decile edges, outer edges open), ``bin_shares`` (share of rows per bin,
        ``len(bin_edges) + 1`` bins: below the first edge, between edges, above the
        last) and, for binary columns, ``share_ones``.

    Examples:
        >>> ref = describe(np.array([0.0, 1.0, 1.0, 1.0]), sample_size=4)
        >>> ref["kind"], ref["share_ones"], ref["count"]
        ('binary', 0.75, 4)
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    doc: dict[str, Any] = {"count": len(x)}
    if not len(x):
        return doc | {"kind": "continuous", "sample": [], "bin_edges": [], "bin_shares": []}
    binary = bool(np.isin(x, (0.0, 1.0)).all())
    probs = (np.arange(sample_size) + 0.5) / sample_size
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    shares = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    doc |= {
        "kind": "binary" if binary else "continuous",
        "mean": float(x.mean()),
        "std": float(x.std()),
        "sample": [float(v) for v in np.quantile(x, probs)],
        "bin_edges": [float(v) for v in edges],
        "bin_shares": [float(v) for v in shares / len(x)],
    }
    if binary:
        doc["share_ones"] = float(x.mean())
    return doc


def reference_document(
    columns: Mapping[str, np.ndarray],
    score: np.ndarray,
    *,
    feature_names: Sequence[str],
    window: Mapping[str, str],
    sample_size: int = 1000,
) -> dict[str, Any]:
    """``reference.json``: every feature in ``feature_names`` and the score.

    Args:
        columns: feature name → values of the reference rows.
        score: the calibrated score of the same rows.
        feature_names: the model's inputs, in order.
        window: ``{"start": ..., "end": ...}`` of the reference rows (ISO UTC).
        sample_size: quantiles kept per column.
    """
    return {
        "schema_version": REFERENCE_SCHEMA_VERSION,
        "window": dict(window),
        "rows": len(score),
        "features": {
            name: describe(columns[name], sample_size=sample_size) for name in feature_names
        },
        SCORE_KEY: describe(score, sample_size=sample_size),
    }
