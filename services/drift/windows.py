"""Tumbling windows of score events, bounded in rows and in time.

Kernel, no I/O. A window collects the model's input row and score of each decision
into one preallocated array (memory is ``max_rows x (features + 1)`` floats, never
more). It closes when it holds ``max_rows`` rows, when a row arrives ``span_ms``
after the window's first row (that row opens the next window), or, on a quiet
stream, when :meth:`WindowBuffer.flush` is called ``span_ms`` after it opened.
Counting rows bounds both the memory and the cost of one evaluation; the time
bound keeps a slow stream's windows recent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from services.registry.reference import Floats


@dataclass(frozen=True)
class ClosedWindow:
    """The rows of one window, column by column.

    Attributes:
        columns: the feature names, in the order of ``values``' columns.
        values: rows x features (NaN where a row had no value).
        scores: the score of each row.
        first_ms: scored-at time of the first row, epoch ms.
        last_ms: scored-at time of the last row, epoch ms.
        first_event_ms: earliest event time of a row, epoch ms.
        last_event_ms: latest event time of a row, epoch ms.
    """

    columns: tuple[str, ...]
    values: Floats
    scores: Floats
    first_ms: int
    last_ms: int
    first_event_ms: int
    last_event_ms: int

    @property
    def rows(self) -> int:
        """Rows in the window."""
        return len(self.scores)

    def column(self, name: str) -> Floats:
        """The values of one feature (a view; do not modify)."""
        return self.values[:, self.columns.index(name)]


class WindowBuffer:
    """Collects rows and hands back each window as it closes.

    Args:
        columns: the features to keep, in order.
        max_rows: rows that close a window.
        span_ms: time after a window's first row that closes it.

    Examples:
        >>> buf = WindowBuffer(("x",), max_rows=2, span_ms=1_000)
        >>> buf.update(0, 0, {"x": 1.0}, 0.1) is None
        True
        >>> w = buf.update(10, 10, {"x": 2.0}, 0.2)
        >>> w.rows, w.column("x").tolist(), w.last_ms
        (2, [1.0, 2.0], 10)
        >>> buf.update(20, 20, {}, 0.3) is None   # opens the next window
        True
        >>> late = buf.update(5_000, 5_000, {"x": 9.0}, 0.4)  # past the span
        >>> late.rows, late.column("x").tolist()
        (1, [nan])
    """

    def __init__(self, columns: Sequence[str], *, max_rows: int, span_ms: int) -> None:
        if max_rows < 2 or span_ms < 1:
            raise ValueError("max_rows must be at least 2 and span_ms positive")
        self.columns = tuple(columns)
        self._index = {name: i for i, name in enumerate(self.columns)}
        self.max_rows = max_rows
        self.span_ms = span_ms
        self._values = np.full((max_rows, len(self.columns)), np.nan)
        self._scores = np.empty(max_rows)
        self._n = 0
        self._first_ms = self._last_ms = 0
        self._first_event = self._last_event = 0

    @property
    def rows(self) -> int:
        """Rows in the open window."""
        return self._n

    def update(
        self, at_ms: int, event_ms: int, features: Mapping[str, float], score: float
    ) -> ClosedWindow | None:
        """Add one row; returns the window this row closed, if any."""
        closed = None
        if self._n and at_ms - self._first_ms >= self.span_ms:
            closed = self._close()
        if not self._n:
            self._first_ms = at_ms
            self._first_event = self._last_event = event_ms
        row = self._values[self._n]
        for name, value in features.items():
            i = self._index.get(name)
            if i is not None:
                row[i] = value
        self._scores[self._n] = score
        self._n += 1
        self._last_ms = max(self._last_ms, at_ms)
        self._first_event = min(self._first_event, event_ms)
        self._last_event = max(self._last_event, event_ms)
        if self._n == self.max_rows:
            return self._close()  # max_rows >= 2: no window closed on the span above
        return closed

    def flush(self, now_ms: int) -> ClosedWindow | None:
        """Close the open window when ``span_ms`` has passed since its first row."""
        if self._n and now_ms - self._first_ms >= self.span_ms:
            return self._close()
        return None

    def clear(self) -> None:
        """Drop the open window (its reference no longer applies)."""
        self._n = 0
        self._values.fill(np.nan)

    def _close(self) -> ClosedWindow:
        n = self._n
        window = ClosedWindow(
            columns=self.columns,
            values=self._values[:n].copy(),
            scores=self._scores[:n].copy(),
            first_ms=self._first_ms,
            last_ms=self._last_ms,
            first_event_ms=self._first_event,
            last_event_ms=self._last_event,
        )
        self._values[:n] = np.nan
        self._n = 0
        self._last_ms = 0
        return window
