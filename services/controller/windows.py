"""Per-version statistics over a sliding time window, in bounded memory.

Kernel: no I/O. The window is cut into ``slices`` equal time slices; each slice
holds counters and two fixed-bucket histograms (latency and score), so memory does
not grow with traffic and old traffic leaves the window a slice at a time. p99
latency is read from the latency histogram (log-spaced buckets, 10 % wide: the
answer is the upper edge of the bucket holding the 99th percentile, so it errs
high by at most one bucket). Score buckets are fixed and log-spaced near zero,
where a fraud model puts almost all of its scores: equal-width bins would put a
constant-score model and a healthy one in the same first bin.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

#: Upper edges of the latency buckets, milliseconds (0.05 ms .. ~60 s, x1.1 apart).
LATENCY_EDGES_MS: tuple[float, ...] = tuple(0.05 * 1.1**i for i in range(148))
#: Edges of the score buckets (scores are probabilities in [0, 1]).
SCORE_EDGES: tuple[float, ...] = (
    0.0, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05,
    0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0,
)  # fmt: skip
SCORE_BINS = len(SCORE_EDGES) - 1


def latency_bucket(latency_ms: float) -> int:
    """Index of the latency bucket of ``latency_ms`` (the last one is open-ended)."""
    return min(bisect.bisect_left(LATENCY_EDGES_MS, latency_ms), len(LATENCY_EDGES_MS) - 1)


def score_bin(score: float) -> int:
    """Index of the score bin of ``score`` (1.0 falls in the last bin).

    Examples:
        >>> score_bin(0.0), score_bin(0.00015), score_bin(0.5), score_bin(1.0)
        (0, 1, 13, 15)
    """
    return min(max(bisect.bisect_right(SCORE_EDGES, score) - 1, 0), SCORE_BINS - 1)


@dataclass(frozen=True, slots=True)
class Observation:
    """One decision attributed to a model version.

    Attributes:
        version: the version that decided (or failed to).
        at_ms: when it was decided (the score event's ``scored_at``), epoch ms.
        error: the model failed and rules decided instead.
        score: the model's score (ignored when ``error``).
        latency_ms: server-side time to decide (ignored when ``error``).
        declined: the decision was DECLINE.
        flagged: the decision was DECLINE or REVIEW.
    """

    version: str
    at_ms: int
    error: bool = False
    score: float = 0.0
    latency_ms: float = 0.0
    declined: bool = False
    flagged: bool = False


@dataclass(slots=True)
class _Slice:
    requests: int = 0
    errors: int = 0
    declines: int = 0
    flagged: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * len(LATENCY_EDGES_MS))
    scores: list[int] = field(default_factory=lambda: [0] * SCORE_BINS)


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What one version did in the window (read-only).

    Attributes:
        version: the model version.
        requests: decisions attributed to it, model errors included.
        errors: model errors (rules decided instead).
        declines: DECLINE decisions of the model.
        flagged: DECLINE or REVIEW decisions of the model.
        latency_counts: decisions per latency bucket (:data:`LATENCY_EDGES_MS`).
        score_counts: decisions per score bin (:data:`SCORE_EDGES`).
        labelled_flagged: flagged decisions whose label has arrived (since the
            comparison started, not windowed: labels come days late).
        fraud_flagged: those of them labelled fraud.
    """

    version: str
    requests: int = 0
    errors: int = 0
    declines: int = 0
    flagged: int = 0
    latency_counts: tuple[int, ...] = (0,) * len(LATENCY_EDGES_MS)
    score_counts: tuple[int, ...] = (0,) * SCORE_BINS
    labelled_flagged: int = 0
    fraud_flagged: int = 0

    @property
    def scored(self) -> int:
        """Decisions the model itself made (requests less errors)."""
        return self.requests - self.errors

    @property
    def error_rate(self) -> float:
        """Model errors per request (0 without requests)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def decline_rate(self) -> float:
        """Declines per model decision (0 without decisions)."""
        return self.declines / self.scored if self.scored else 0.0

    @property
    def precision(self) -> float | None:
        """Share of labelled flagged decisions that were fraud (None before any label)."""
        return self.fraud_flagged / self.labelled_flagged if self.labelled_flagged else None

    def latency_quantile_ms(self, q: float) -> float:
        """Upper edge of the latency bucket holding quantile ``q`` (0 without decisions)."""
        total = sum(self.latency_counts)
        if total == 0:
            return 0.0
        rank = max(1, math.ceil(q * total))
        seen = 0
        for index, count in enumerate(self.latency_counts):
            seen += count
            if seen >= rank:
                return LATENCY_EDGES_MS[index]
        return LATENCY_EDGES_MS[-1]  # pragma: no cover - the loop always reaches rank

    @property
    def p99_latency_ms(self) -> float:
        """99th-percentile latency, milliseconds (bucket upper edge)."""
        return self.latency_quantile_ms(0.99)


class VersionWindow:
    """Sliding-window statistics of one model version.

    Args:
        version: the model version.
        window_s: window length, seconds.
        slices: how many slices the window is cut into (its time resolution).

    Examples:
        >>> import random
        >>> rng = random.Random(7)
        >>> w = VersionWindow("v2", window_s=60, slices=6)
        >>> for i in range(1_000):
        ...     w.update(Observation("v2", at_ms=i * 60, score=rng.random() * 0.01,
        ...                          latency_ms=rng.uniform(1.0, 3.0), error=i % 100 == 0))
        >>> s = w.stats(now_ms=59_999)
        >>> s.requests, s.errors, round(s.p99_latency_ms, 2)
        (1000, 10, 3.01)
        >>> w.stats(now_ms=89_999).requests  # the first half has left the window
        500
    """

    def __init__(self, version: str, *, window_s: float, slices: int = 20) -> None:
        if window_s <= 0 or slices < 1:
            raise ValueError("window_s must be positive and slices at least 1")
        self.version = version
        self._slices = slices
        self._slice_ms = max(1, math.ceil(window_s * 1000 / slices))
        self._ring: dict[int, _Slice] = {}

    def _live(self, now_ms: int) -> range:
        newest = now_ms // self._slice_ms
        return range(newest - self._slices + 1, newest + 1)

    def update(self, obs: Observation) -> None:
        """Count one decision (older than the newest slice's window: ignored)."""
        index = obs.at_ms // self._slice_ms
        if self._ring and index <= max(self._ring) - self._slices:
            return
        piece = self._ring.get(index)
        if piece is None:
            piece = self._ring[index] = _Slice()
            oldest = index - self._slices
            for stale in [i for i in self._ring if i <= oldest]:
                del self._ring[stale]
        piece.requests += 1
        if obs.error:
            piece.errors += 1
            return
        piece.declines += obs.declined
        piece.flagged += obs.flagged
        piece.latency[latency_bucket(obs.latency_ms)] += 1
        piece.scores[score_bin(obs.score)] += 1

    def stats(self, now_ms: int, *, labelled: int = 0, frauds: int = 0) -> WindowStats:
        """The window ending at ``now_ms`` (slices in the future count too: clock skew).

        Args:
            now_ms: end of the window, epoch ms.
            labelled: flagged decisions with a label so far (from the label join).
            frauds: those labelled fraud.
        """
        live = [s for i, s in self._ring.items() if i >= self._live(now_ms).start]
        latency = [0] * len(LATENCY_EDGES_MS)
        scores = [0] * SCORE_BINS
        for piece in live:
            for b, c in enumerate(piece.latency):
                latency[b] += c
            for b, c in enumerate(piece.scores):
                scores[b] += c
        return WindowStats(
            version=self.version,
            requests=sum(s.requests for s in live),
            errors=sum(s.errors for s in live),
            declines=sum(s.declines for s in live),
            flagged=sum(s.flagged for s in live),
            latency_counts=tuple(latency),
            score_counts=tuple(scores),
            labelled_flagged=labelled,
            fraud_flagged=frauds,
        )
