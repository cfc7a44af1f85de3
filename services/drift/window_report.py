"""One closed window judged against the champion's reference: the drift report.

Kernel, no I/O. Every column of the reference (the features and the score) is
compared (:func:`services.drift.two_sample.compare`), the p-values are adjusted
together (:func:`services.drift.correction.benjamini_hochberg`) and a column has
drifted when its adjusted p-value is at most the window level ``q``. A window with
fewer than ``min_rows`` rows is reported but not judged (``evaluated`` false): its
tests would have too little power to mean the same as a full window's.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from services.drift.correction import benjamini_hochberg
from services.drift.two_sample import ColumnTest, compare
from services.drift.windows import ClosedWindow
from services.registry.reference import SCORE_KEY, Floats, Reference


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC (``...Z``).

    Examples:
        >>> iso_ms(0)
        '1970-01-01T00:00:00.000Z'
    """
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@dataclass(frozen=True)
class ColumnResult:
    """A column's test in a window, with its corrected p-value and verdict.

    ``votes`` is False for a report-only column: its drift is reported (and is
    evidence in a request) but does not flag the window by itself.
    """

    column: str
    test: str
    statistic: float
    p_value: float
    adjusted_p_value: float
    psi: float
    rows: int
    drifted: bool
    votes: bool = True


@dataclass(frozen=True)
class WindowReport:
    """The drift report of one window.

    Attributes:
        model_name: the monitored model.
        champion_version: the version whose reference was used.
        first_ms: scored-at time of the window's first row.
        last_ms: scored-at time of its last row.
        first_event_ms: earliest event time in it.
        last_event_ms: latest event time in it.
        rows: rows in the window.
        level: the BH level the window was judged at.
        evaluated: whether it had enough rows to be judged.
        results: one entry per tested column, in reference order.
    """

    model_name: str
    champion_version: str
    first_ms: int
    last_ms: int
    first_event_ms: int
    last_event_ms: int
    rows: int
    level: float
    evaluated: bool
    results: tuple[ColumnResult, ...]

    @property
    def drifted(self) -> tuple[ColumnResult, ...]:
        """The columns that drifted, most significant first."""
        return tuple(sorted((r for r in self.results if r.drifted), key=lambda r: r.p_value))

    @property
    def flagged(self) -> bool:
        """Whether any voting column drifted after the correction."""
        return self.evaluated and any(r.drifted and r.votes for r in self.results)

    def to_json(self) -> str:
        """The report as written to the report directory (sorted keys, one document)."""
        doc = {
            "model_name": self.model_name,
            "champion_version": self.champion_version,
            "window": {
                "start": iso_ms(self.first_ms),
                "end": iso_ms(self.last_ms),
                "event_start": iso_ms(self.first_event_ms),
                "event_end": iso_ms(self.last_event_ms),
            },
            "rows": self.rows,
            "level": self.level,
            "evaluated": self.evaluated,
            "flagged": self.flagged,
            "drifted_features": [r.column for r in self.drifted],
            "features": {r.column: asdict(r) for r in self.results},
        }
        return json.dumps(doc, sort_keys=True, allow_nan=False)


def judge_window(
    window: ClosedWindow,
    reference: Reference,
    *,
    model_name: str,
    champion_version: str,
    level: float,
    min_rows: int,
    min_psi: float = 0.0,
    report_only: Collection[str] = (),
) -> WindowReport:
    """Compare every reference column in ``window`` and correct for their number.

    A column drifts when its Benjamini-Hochberg adjusted p-value is at most ``level``
    *and* its PSI is at least ``min_psi``. The p-value says the difference is real;
    the PSI floor says it is large enough to matter. Without it a big window of a
    stationary stream is flagged anyway: its rows are not independent draws (a
    window is a few hours of the same cards, the day's rhythm), so a KS D of 0.03
    already gives p < 1e-6 (see docs/DRIFT.md, "Stationary simulator stream").
    Columns in ``report_only`` are tested and reported but do not flag the window.

    Examples:
        >>> import numpy as np
        >>> from services.registry.reference import ColumnReference
        >>> u = ColumnReference("u", "continuous", 10_000, (np.arange(1000) + 0.5) / 1000,
        ...                     np.array([0.5]), np.array([0.5, 0.5]))
        >>> ref = Reference({"u": u}, u, "", "")
        >>> rng = np.random.default_rng(1)
        >>> def window(x, s):
        ...     return ClosedWindow(("u",), x[:, None], s, 0, 1, 0, 1)
        >>> same = judge_window(window(rng.random(4000), rng.random(4000)), ref,
        ...     model_name="m", champion_version="v1", level=0.01, min_rows=100)
        >>> same.flagged
        False
        >>> moved = judge_window(window(rng.random(4000) * 0.9, rng.random(4000)), ref,
        ...     model_name="m", champion_version="v1", level=0.01, min_rows=100)
        >>> moved.flagged, [r.column for r in moved.drifted]
        (True, ['u'])
    """
    tests: list[ColumnTest] = []
    evaluated = window.rows >= min_rows
    if evaluated:
        for name, ref in reference.columns.items():
            values = window.scores if name == SCORE_KEY else _column(window, name)
            if values is None:
                continue
            test = compare(name, values, ref)
            if test is not None:
                tests.append(test)
    adjusted = benjamini_hochberg([t.p_value for t in tests])
    results = tuple(
        ColumnResult(
            column=t.column,
            test=t.test,
            statistic=t.statistic,
            p_value=t.p_value,
            adjusted_p_value=a,
            psi=t.psi,
            rows=t.rows,
            drifted=a <= level and t.psi >= min_psi,
            votes=t.column not in report_only,
        )
        for t, a in zip(tests, adjusted, strict=True)
    )
    return WindowReport(
        model_name=model_name,
        champion_version=champion_version,
        first_ms=window.first_ms,
        last_ms=window.last_ms,
        first_event_ms=window.first_event_ms,
        last_event_ms=window.last_event_ms,
        rows=window.rows,
        level=level,
        evaluated=evaluated,
        results=results,
    )


def _column(window: ClosedWindow, name: str) -> Floats | None:
    return window.column(name) if name in window.columns else None
