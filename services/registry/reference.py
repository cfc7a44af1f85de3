"""A model's reference distributions, parsed from its artifact's ``reference.json``.

Kernel: a JSON document in, typed read-only arrays out. The trainer writes the
document (:mod:`services.trainer.distributions`); this is its one reader, shared by
the drift monitor (the champion's features and score against live windows) and the
rollout controller (a canary's live scores against its own holdout). Each column
keeps a quantile sketch (``sample``), decile bins with their shares and the number
of real rows behind them (``count``): the drift tests
(:mod:`services.drift.two_sample`) need that count, because the sketch stands in
for ``count`` rows, not for its own length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.registry.errors import ReferenceUnavailable

SCORE_KEY = "__score__"  # the same key as services.trainer.distributions.SCORE_KEY
SUPPORTED_SCHEMA = 1

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ColumnReference:
    """What the model saw of one column.

    Attributes:
        name: the feature (or ``__score__``).
        kind: ``continuous`` or ``binary``.
        count: real rows behind the sketch (the reference's sample size).
        sample: sorted quantiles at (i + 0.5) / len(sample).
        bin_edges: inner bin edges (``len + 1`` bins, outer ones open).
        bin_shares: share of the reference rows in each bin.
        share_ones: for binary columns, the share of ones (None otherwise).
    """

    name: str
    kind: str
    count: int
    sample: Floats
    bin_edges: Floats
    bin_shares: Floats
    share_ones: float | None = None

    @property
    def levels(self) -> int:
        """Distinct values in the sketch (a small number means a discrete column)."""
        return int(np.unique(self.sample).size)


@dataclass(frozen=True)
class Reference:
    """Every column of one model's reference.

    Attributes:
        features: feature name → reference, in the model's order.
        score: the calibrated score's reference.
        window_start: ISO UTC start of the reference rows.
        window_end: ISO UTC end of the reference rows.
    """

    features: Mapping[str, ColumnReference]
    score: ColumnReference
    window_start: str
    window_end: str

    @property
    def columns(self) -> dict[str, ColumnReference]:
        """Features and the score, the family tested in each window."""
        return {**self.features, SCORE_KEY: self.score}


def _column(name: str, doc: Any, version: str) -> ColumnReference:
    try:
        sample = np.sort(np.asarray(doc["sample"], dtype=np.float64))
        edges = np.asarray(doc["bin_edges"], dtype=np.float64)
        shares = np.asarray(doc["bin_shares"], dtype=np.float64)
        column = ColumnReference(
            name=name,
            kind=str(doc["kind"]),
            count=int(doc["count"]),
            sample=sample,
            bin_edges=edges,
            bin_shares=shares,
            share_ones=float(doc["share_ones"]) if "share_ones" in doc else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceUnavailable(version=version, detail=f"{name}: {exc!r}") from exc
    if column.kind not in ("continuous", "binary"):
        raise ReferenceUnavailable(version=version, detail=f"{name}: kind {column.kind!r}")
    if len(shares) != len(edges) + 1 or not np.all(np.isfinite(sample)):
        raise ReferenceUnavailable(version=version, detail=f"{name}: malformed bins or sample")
    return column


def parse_reference(doc: Mapping[str, Any], *, version: str) -> Reference:
    """A :class:`Reference` from the parsed ``reference.json`` of ``version``.

    Raises:
        ReferenceUnavailable: unknown schema version or a malformed column.

    Examples:
        >>> col = {"kind": "continuous", "count": 50, "sample": [1.0, 2.0],
        ...        "bin_edges": [1.5], "bin_shares": [0.5, 0.5]}
        >>> ref = parse_reference({"schema_version": 1, "window": {"start": "a", "end": "b"},
        ...     "features": {"x": col}, "__score__": col}, version="v1")
        >>> ref.features["x"].count, list(ref.columns)
        (50, ['x', '__score__'])
    """
    if doc.get("schema_version") != SUPPORTED_SCHEMA:
        raise ReferenceUnavailable(
            version=version, detail=f"schema_version {doc.get('schema_version')!r}"
        )
    features = doc.get("features")
    if not isinstance(features, Mapping) or SCORE_KEY not in doc:
        raise ReferenceUnavailable(version=version, detail="no features or no score")
    window = doc.get("window") or {}
    return Reference(
        features={name: _column(name, col, version) for name, col in features.items()},
        score=_column(SCORE_KEY, doc[SCORE_KEY], version),
        window_start=str(window.get("start", "")),
        window_end=str(window.get("end", "")),
    )
