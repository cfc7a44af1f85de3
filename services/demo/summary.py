"""What the demo's built-in client saw: requests, latency, decisions, AP per version.

A pure kernel: the wiring feeds it one :class:`ScoredRequest` per Score call (with
the simulator's ground truth, which the demo knows at once while the platform waits
a label delay for it) and reads one :class:`Summary` at the end. Latency goes into
an HDR histogram (1 µs to 60 s, 3 significant digits), so p50/p99 are exact to
0.1 % in bounded memory however long the demo runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from hdrh.histogram import HdrHistogram

#: Fixed score bins of the score-distribution plot: log-spaced near 0, where a
#: fraud model's scores live.
SCORE_BINS: tuple[float, ...] = (0.0, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Phases of the stream in which requests are scored.
PHASES = ("pre-drift", "post-drift")


def average_precision(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Average precision (area under the precision-recall steps), ties grouped.

    The same definition as scikit-learn's ``average_precision_score``; NaN when
    there is no positive.

    Examples:
        >>> average_precision([True, False, True, False], [0.9, 0.8, 0.7, 0.1])
        0.8333333333333333
        >>> average_precision([False, False], [0.2, 0.1])
        nan
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.size == 0 or not y.any():
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True, slots=True)
class ScoredRequest:
    """One Score call as the client saw it.

    Attributes:
        day: simulated day of the transaction (float, from the stream's start).
        phase: ``pre-drift`` or ``post-drift``.
        model_version: the version that decided ("" for a rules fallback).
        route: ``champion``, ``canary``, ``fallback`` (or ``shadow``).
        decision: ``approve``, ``review``, ``decline``.
        score: the calibrated score.
        latency_ms: client-side round trip, milliseconds.
        amount: the transaction's amount.
        is_fraud: the simulator's ground truth.
    """

    day: float
    phase: str
    model_version: str
    route: str
    decision: str
    score: float
    latency_ms: float
    amount: float
    is_fraud: bool


@dataclass(frozen=True)
class VersionStats:
    """One model version's live numbers, before and after the drift.

    Attributes:
        version: the model version.
        requests: requests it decided, by phase.
        frauds: frauds among them, by phase.
        average_precision: AP of its scores, by phase (NaN: no fraud seen).
        score_histogram: request counts per :data:`SCORE_BINS` bin.
    """

    version: str
    requests: Mapping[str, int]
    frauds: Mapping[str, int]
    average_precision: Mapping[str, float]
    score_histogram: tuple[int, ...]


@dataclass(frozen=True)
class DailyPoint:
    """One simulated day of traffic: the drift statistics the report plots.

    Attributes:
        day: the simulated day (integer).
        requests: Score calls.
        mean_amount: mean transaction amount.
        amount_ks: two-sample KS distance of the day's amounts against the first
            scored day's (0: same distribution, 1: disjoint).
        flag_rate: share of REVIEW or DECLINE decisions.
        fraud_rate: share of frauds (ground truth).
    """

    day: int
    requests: int
    mean_amount: float
    amount_ks: float
    flag_rate: float
    fraud_rate: float


@dataclass(frozen=True)
class Summary:
    """The end-of-demo numbers.

    Attributes:
        requests: Score calls answered.
        latency_p50_ms: client-side median latency.
        latency_p99_ms: client-side p99 latency.
        latency_histogram: (upper edge ms, count) pairs, for the plot.
        decisions: decision → count.
        routes: route → count.
        versions: per version, in order of first request.
        daily: one point per simulated day with requests.
    """

    requests: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_histogram: tuple[tuple[float, int], ...]
    decisions: Mapping[str, int]
    routes: Mapping[str, int]
    versions: tuple[VersionStats, ...]
    daily: tuple[DailyPoint, ...]


def ks_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov distance (largest gap between the empirical CDFs).

    Examples:
        >>> ks_distance([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
        0.0
        >>> ks_distance([1.0, 2.0], [3.0, 4.0])
        1.0
    """
    x, y = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    if x.size == 0 or y.size == 0:
        return float("nan")
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / x.size
    cdf_y = np.searchsorted(y, grid, side="right") / y.size
    return float(np.max(np.abs(cdf_x - cdf_y)))


@dataclass
class _Version:
    rows: dict[str, list[tuple[float, bool]]] = field(
        default_factory=lambda: {p: [] for p in PHASES}
    )
    histogram: list[int] = field(default_factory=lambda: [0] * (len(SCORE_BINS) - 1))


class DemoSummary:
    """Accumulates Score calls; :meth:`result` gives the :class:`Summary`.

    Examples:
        >>> summary = DemoSummary()
        >>> for i in range(100):
        ...     summary.update(ScoredRequest(
        ...         day=i / 50, phase="pre-drift", model_version="v1", route="champion",
        ...         decision="decline" if i % 10 == 0 else "approve",
        ...         score=0.9 if i % 10 == 0 else 0.01, latency_ms=1.0 + i / 100,
        ...         amount=50.0, is_fraud=i % 10 == 0))
        >>> result = summary.result()
        >>> result.requests, result.decisions["decline"], round(result.latency_p50_ms, 2)
        (100, 10, 1.49)
        >>> result.versions[0].average_precision["pre-drift"]
        1.0
    """

    def __init__(self) -> None:
        self._latency = HdrHistogram(1, 60_000_000, 3)  # microseconds
        self._decisions: Counter[str] = Counter()
        self._routes: Counter[str] = Counter()
        self._versions: dict[str, _Version] = {}
        self._days: dict[int, list[tuple[float, bool, bool]]] = {}
        self._requests = 0

    def update(self, request: ScoredRequest) -> None:
        """Count one Score call."""
        self._requests += 1
        self._latency.record_value(max(1, round(request.latency_ms * 1000)))
        self._decisions[request.decision] += 1
        self._routes[request.route] += 1
        flagged = request.decision in ("review", "decline")
        self._days.setdefault(int(request.day), []).append(
            (request.amount, flagged, request.is_fraud)
        )
        if not request.model_version or request.phase not in PHASES:
            return
        version = self._versions.setdefault(request.model_version, _Version())
        version.rows[request.phase].append((request.score, request.is_fraud))
        edges = SCORE_BINS
        index = min(int(np.searchsorted(edges, request.score, side="right")) - 1, len(edges) - 2)
        version.histogram[max(index, 0)] += 1

    def result(self) -> Summary:
        """The summary of every call so far."""
        latency = self._latency
        histogram = tuple(
            (item.value_iterated_to / 1000.0, int(item.count_added_in_this_iter_step))
            for item in latency.get_log_iterator(100, 1.5)
        )
        return Summary(
            requests=self._requests,
            latency_p50_ms=latency.get_value_at_percentile(50) / 1000.0,
            latency_p99_ms=latency.get_value_at_percentile(99) / 1000.0,
            latency_histogram=histogram,
            decisions=dict(self._decisions),
            routes=dict(self._routes),
            versions=tuple(self._version_stats(name, v) for name, v in self._versions.items()),
            daily=self._daily(),
        )

    @staticmethod
    def _version_stats(name: str, version: _Version) -> VersionStats:
        return VersionStats(
            version=name,
            requests={p: len(rows) for p, rows in version.rows.items()},
            frauds={p: sum(f for _, f in rows) for p, rows in version.rows.items()},
            average_precision={
                p: average_precision([f for _, f in rows], [s for s, _ in rows])
                for p, rows in version.rows.items()
            },
            score_histogram=tuple(version.histogram),
        )

    def _daily(self) -> tuple[DailyPoint, ...]:
        if not self._days:
            return ()
        first = self._days[min(self._days)]
        reference = [amount for amount, _, _ in first]
        points = []
        for day in sorted(self._days):
            rows = self._days[day]
            amounts = [amount for amount, _, _ in rows]
            points.append(
                DailyPoint(
                    day=day,
                    requests=len(rows),
                    mean_amount=float(np.mean(amounts)),
                    amount_ks=ks_distance(amounts, reference),
                    flag_rate=sum(flag for _, flag, _ in rows) / len(rows),
                    fraud_rate=sum(fraud for _, _, fraud in rows) / len(rows),
                )
            )
        return tuple(points)
