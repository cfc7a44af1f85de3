"""Pure parts of the open-loop Score load generator (``loadtests/score_load.py``).

No I/O and no grpc here: the send schedule, the transaction pool, the per-run
summary (HdrHistogram percentiles, errors by status code, send lag), the rate search
and the report. The generator fills a :class:`RunRecord` (one row per planned
request: when it was sent, when it finished, with which status) and everything else
is computed from those arrays, so it is tested with synthetic records.

Latency is measured from the *intended* send time of each request (``index / rate``
after the run's start), never from when the generator got round to sending it: a
stall anywhere, in the server or in the generator, delays every request scheduled
during it, and each of them counts (no coordinated omission). The latency from the
actual send is kept beside it as ``service_time``, which is what a closed-loop
tool would report; the gap between the two is the cost of the stalls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from riskstream.v1 import events_pb2, scoring_pb2
from services.producer.profiles import CARD_PRESENT_MCCS, FOREIGN_COUNTRIES, REMOTE_MCCS

# gRPC status codes by number (grpc.StatusCode), so this module needs no grpc.
STATUS_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
NO_RESPONSE = -1  # sent, but no answer when the run ended (cancelled by the generator)
UNSENT = -2  # never sent: the generator fell too far behind and stopped
_PSEUDO_CODES = {NO_RESPONSE: "NO_RESPONSE", UNSENT: "UNSENT"}

LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS = 1, 60_000_000, 3
GENERATOR_BOUND_SHARE = 0.95  # achieved send rate below this share of the target
PERCENTILES = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0]


def status_name(code: int) -> str:
    """The gRPC status name of a code number, or our name for UNSENT / NO_RESPONSE."""
    if code in _PSEUDO_CODES:
        return _PSEUDO_CODES[code]
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else f"CODE_{code}"


# --- schedule ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunPlan:
    """One run at a fixed arrival rate: request ``i`` is due ``i / rate`` s after start.

    The first ``warmup_s`` seconds are sent but left out of every statistic.
    ``max_requests`` caps the run (warm-up included), which shortens the measured
    window; :attr:`window_s` is its real length.

    Args:
        rate: requests per second, > 0.
        duration_s: measured seconds after the warm-up, > 0.
        warmup_s: seconds sent first and not measured, >= 0.
        max_requests: most requests in the run; None: no cap.

    Examples:
        >>> plan = RunPlan(rate=4, duration_s=1.0, warmup_s=0.5)
        >>> plan.total, plan.n_warmup, plan.window_s
        (6, 2, 1.0)
        >>> plan.indices(worker=1, workers=2).tolist(), plan.offsets_s(np.arange(3)).tolist()
        ([1, 3, 5], [0.0, 0.25, 0.5])
    """

    rate: float
    duration_s: float
    warmup_s: float = 0.0
    max_requests: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number, got {self.rate!r}")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s must be positive, got {self.duration_s!r}")
        if not (math.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise ValueError(f"warmup_s must not be negative, got {self.warmup_s!r}")
        if self.max_requests is not None and self.max_requests < 1:
            raise ValueError(f"max_requests must be >= 1, got {self.max_requests!r}")

    @property
    def n_warmup(self) -> int:
        """Requests due before the warm-up ends (index < rate * warmup_s)."""
        return min(math.ceil(self.rate * self.warmup_s - 1e-9), self.total)

    @property
    def total(self) -> int:
        """Requests in the run, warm-up included."""
        n = math.floor(self.rate * (self.warmup_s + self.duration_s) + 1e-9)
        return n if self.max_requests is None else min(n, self.max_requests)

    @property
    def window_s(self) -> float:
        """Length of the measured window: its requests' share of the schedule."""
        return (self.total - self.n_warmup) / self.rate

    @property
    def span_s(self) -> float:
        """Time from the first due request to one interval after the last."""
        return self.total / self.rate

    def indices(self, worker: int = 0, workers: int = 1) -> np.ndarray:
        """The request indices one of ``workers`` senders owns (interleaved: k, k+N, ...)."""
        if not 0 <= worker < workers:
            raise ValueError(f"worker {worker} is not in [0, {workers})")
        return np.arange(worker, self.total, workers, dtype=np.int64)

    def offsets_s(self, indices: np.ndarray) -> np.ndarray:
        """Intended send times of requests, in seconds after the run's start."""
        return indices / self.rate


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What happened to each planned request; times in seconds after the run's start.

    Attributes:
        index: request indices (into the plan's schedule).
        sent_s: when the call was started, NaN when never sent.
        done_s: when its answer (or error) arrived, NaN when none did.
        code: gRPC status code number, NO_RESPONSE or UNSENT.
        cpu_s: CPU time the sender process(es) used during the run (all threads).
        wall_s: time from the start to the last answer (or the generator giving up).
    """

    index: np.ndarray
    sent_s: np.ndarray
    done_s: np.ndarray
    code: np.ndarray
    cpu_s: float = 0.0
    wall_s: float = 0.0

    @classmethod
    def merge(cls, records: Sequence[RunRecord]) -> RunRecord:
        """One record from the records of several sender processes, by index."""
        index = np.concatenate([r.index for r in records])
        order = np.argsort(index, kind="stable")
        return cls(
            index=index[order],
            sent_s=np.concatenate([r.sent_s for r in records])[order],
            done_s=np.concatenate([r.done_s for r in records])[order],
            code=np.concatenate([r.code for r in records])[order],
            cpu_s=sum(r.cpu_s for r in records),
            wall_s=max((r.wall_s for r in records), default=0.0),
        )


# --- transactions --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """How to build a transaction pool; cheap to send to worker processes.

    Args:
        cards: number of card ids (``card-000000`` ...), as the simulator names them.
        terminals: number of terminal ids (``term-00000`` ...), one merchant each.
        size: transactions in the pool; request ``i`` uses entry ``i % size``.
        seed: random seed; the same spec gives the same pool.
        home_country: country of the terminals that are not abroad.
        currency: ISO 4217 code of every amount.
    """

    cards: int = 5000
    terminals: int = 10000
    size: int = 10000
    seed: int = 7
    home_country: str = "BE"
    currency: str = "EUR"


class TransactionPool:
    """Valid, realistic transactions over a fixed set of cards and terminals.

    Each terminal has a fixed merchant category, channel and country drawn like the
    simulator's (80% card-present, 10% of terminals abroad); amounts are log-normal
    (median 25, long right tail, capped at 5,000). Only ``transaction_id`` and
    ``event_time`` change per request, so each request is a fresh message and no
    message is shared between calls in flight.

    Args:
        spec: the pool's parameters.

    Examples:
        >>> pool = TransactionPool(PoolSpec(cards=10, terminals=5, size=100, seed=1))
        >>> tx = pool.request(3, run_id="r1", now_ns=1_700_000_000_000_000_000).transaction
        >>> tx.transaction_id, tx.card_id.startswith("card-"), tx.terminal_id[:5], tx.currency
        ('lt-r1-3', True, 'term-', 'EUR')
        >>> tx.event_time.seconds
        1700000000
    """

    def __init__(self, spec: PoolSpec) -> None:
        if spec.cards < 1 or spec.terminals < 1 or spec.size < 1:
            raise ValueError("cards, terminals and size must be >= 1")
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        card = rng.integers(0, spec.cards, spec.size)
        terminal = rng.integers(0, spec.terminals, spec.size)
        amount = np.minimum(np.round(rng.lognormal(math.log(25.0), 1.0, spec.size), 2), 5000.0)
        mcc, channel, country = self._terminal_profiles(rng, spec)
        self._entries = tuple(
            (
                f"card-{c:06d}",
                f"term-{t:05d}",
                f"merch-{t:05d}",
                float(a),
                mcc[t],
                events_pb2.CHANNEL_CONTACTLESS
                if channel[t] == events_pb2.CHANNEL_CARD_PRESENT and a <= 50.0 and c % 2
                else int(channel[t]),
                country[t],
            )
            for c, t, a in zip(card.tolist(), terminal.tolist(), amount.tolist(), strict=True)
        )

    @staticmethod
    def _terminal_profiles(
        rng: np.random.Generator, spec: PoolSpec
    ) -> tuple[list[str], list[int], list[str]]:
        n = spec.terminals
        remote = rng.random(n) < 0.2
        present_mcc = [m for m, _ in CARD_PRESENT_MCCS]
        present_p = np.array([p for _, p in CARD_PRESENT_MCCS])
        remote_p = np.array([p for _, _, p in REMOTE_MCCS])
        present_pick = rng.choice(len(present_mcc), n, p=present_p / present_p.sum())
        remote_pick = rng.choice(len(REMOTE_MCCS), n, p=remote_p / remote_p.sum())
        abroad = rng.random(n) < 0.1
        foreign = rng.choice(len(FOREIGN_COUNTRIES), n)
        mcc, channel, country = [], [], []
        for t in range(n):
            if remote[t]:
                mcc.append(REMOTE_MCCS[remote_pick[t]][0])
                channel.append(int(REMOTE_MCCS[remote_pick[t]][1]))
            else:
                mcc.append(present_mcc[present_pick[t]])
                channel.append(events_pb2.CHANNEL_CARD_PRESENT)
            country.append(FOREIGN_COUNTRIES[foreign[t]] if abroad[t] else spec.home_country)
        return mcc, channel, country

    def request(self, index: int, *, run_id: str, now_ns: int) -> scoring_pb2.ScoreRequest:
        """The request for schedule index ``index``, its event time ``now_ns`` (epoch ns)."""
        card, terminal, merchant, amount, mcc, channel, country = self._entries[
            index % len(self._entries)
        ]
        tx = events_pb2.Transaction(
            transaction_id=f"lt-{run_id}-{index}",
            card_id=card,
            terminal_id=terminal,
            merchant_id=merchant,
            amount=amount,
            currency=self.spec.currency,
            merchant_category=mcc,
            channel=channel,
            country=country,
        )
        tx.event_time.FromNanoseconds(now_ns)
        return scoring_pb2.ScoreRequest(transaction=tx)


# --- summary -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of an HdrHistogram (µs, 1 µs..60 s, 3 significant digits), in ms.

    Attributes:
        count: values recorded.
        p50_ms, p90_ms, p99_ms, p999_ms, max_ms, mean_ms: the statistics, in ms.
        percentiles_ms: ``{"50.0": ..., "99.99": ..., "100.0": ...}``.
        histogram: the HdrHistogram, compressed and base64-encoded (``HdrHistogram.decode``).
    """

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    percentiles_ms: dict[str, float] = field(default_factory=dict)
    histogram: str = ""

    @classmethod
    def of(cls, values_us: np.ndarray) -> LatencySummary:
        """Summarize values in µs (clamped into the histogram's range); NaN-free."""
        histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        clamped = np.clip(np.rint(values_us), LOWEST_US, HIGHEST_US).astype(np.int64)
        values, counts = np.unique(clamped, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            histogram.record_value(value, count)
        if not len(clamped):
            return cls(0, *([math.nan] * 6))
        # One pass over the buckets for all percentiles; the exact mean from the values.
        ms = {p: v / 1000.0 for p, v in histogram.get_percentile_to_value_dict(PERCENTILES).items()}
        return cls(
            count=len(clamped),
            p50_ms=ms[50.0],
            p90_ms=ms[90.0],
            p99_ms=ms[99.0],
            p999_ms=ms[99.9],
            max_ms=histogram.get_max_value() / 1000.0,
            mean_ms=float(clamped.mean()) / 1000.0,
            percentiles_ms={str(p): v for p, v in ms.items()},
            histogram=histogram.encode().decode("ascii"),
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    """The measured window of one run.

    Latency covers every answered request of the window, errors included (a
    deadline-exceeded call counts at its deadline); ``errors`` and ``error_rate``
    count every planned request that did not end OK, unsent ones included.

    Attributes:
        rate: target requests per second.
        processes: sender processes.
        window_s: length of the measured window.
        planned, sent, answered, ok: request counts in the window.
        achieved_rate: requests sent per second of the window (stretched if the
            last ones went out late).
        ok_rate: OK answers per second of the window.
        errors: count by status name, OK left out.
        error_rate: share of planned requests not OK.
        latency: answer time minus intended send time.
        service_time: answer time minus actual send time (what closed-loop tools show).
        send_lag: actual minus intended send time.
        generator_bound: the achieved rate fell below 95% of the target.
        generator_cores: CPU time of the sender process(es) over the run's wall
            time, warm-up included: near ``processes`` means the generator is saturated.
        generator_cpu_us: sender CPU time per request sent, in µs (warm-up included).
        timeline: per second of the window: sent, errors and latency p99 (ms).
    """

    rate: float
    processes: int
    window_s: float
    planned: int
    sent: int
    answered: int
    ok: int
    achieved_rate: float
    ok_rate: float
    errors: dict[str, int]
    error_rate: float
    latency: LatencySummary
    service_time: LatencySummary
    send_lag: LatencySummary
    generator_bound: bool
    generator_cores: float
    generator_cpu_us: float
    timeline: list[dict[str, float]]

    def passes(self, p99_ms: float, max_error_rate: float) -> bool:
        """p99 within the bound, errors below the share, and the target rate reached."""
        return (
            not self.generator_bound
            and self.error_rate < max_error_rate
            and self.latency.count > 0
            and self.latency.p99_ms <= p99_ms
        )


def summarize(plan: RunPlan, record: RunRecord, *, processes: int = 1) -> RunResult:
    """The statistics of a run's measured window (warm-up requests left out).

    Args:
        plan: the run's schedule.
        record: what happened to its requests (any order, all workers merged).
        processes: sender processes, recorded in the result.

    Returns:
        The run's result.
    """
    measured = record.index >= plan.n_warmup
    index = record.index[measured]
    intended = plan.offsets_s(index)
    sent_s, done_s, code = record.sent_s[measured], record.done_s[measured], record.code[measured]
    was_sent, answered = ~np.isnan(sent_s), ~np.isnan(done_s)
    window_start = plan.n_warmup / plan.rate
    window_end = max(
        window_start + plan.window_s, float(np.max(sent_s, initial=0.0, where=was_sent))
    )
    n_sent, n_ok = int(was_sent.sum()), int((code == 0).sum())
    planned = plan.total - plan.n_warmup
    achieved = n_sent / (window_end - window_start) if planned else 0.0
    codes, counts = np.unique(code, return_counts=True)
    errors = {status_name(c): n for c, n in zip(codes.tolist(), counts.tolist(), strict=True)}
    errors.pop("OK", None)
    latency_s = done_s[answered] - intended[answered]
    return RunResult(
        rate=plan.rate,
        processes=processes,
        window_s=plan.window_s,
        planned=planned,
        sent=n_sent,
        answered=int(answered.sum()),
        ok=n_ok,
        achieved_rate=achieved,
        ok_rate=n_ok / plan.window_s if planned else 0.0,
        errors=errors,
        error_rate=(planned - n_ok) / planned if planned else 0.0,
        latency=LatencySummary.of(latency_s * 1e6),
        service_time=LatencySummary.of((done_s[answered] - sent_s[answered]) * 1e6),
        send_lag=LatencySummary.of(np.maximum(sent_s[was_sent] - intended[was_sent], 0.0) * 1e6),
        generator_bound=achieved < GENERATOR_BOUND_SHARE * plan.rate,
        generator_cores=record.cpu_s / record.wall_s if record.wall_s > 0 else math.nan,
        generator_cpu_us=record.cpu_s * 1e6 / max(int((~np.isnan(record.sent_s)).sum()), 1),
        timeline=_timeline(intended - window_start, latency_s, answered, code),
    )


def _timeline(
    at_s: np.ndarray, latency_s: np.ndarray, answered: np.ndarray, code: np.ndarray
) -> list[dict[str, float]]:
    """Per second of intended send time: requests, errors, latency p99 in ms."""
    second = np.floor(at_s).astype(np.int64)
    answered_second = second[answered]
    rows = []
    for s in np.unique(second).tolist():
        in_second = latency_s[answered_second == s]
        rows.append(
            {
                "second": s,
                "requests": int((second == s).sum()),
                "errors": int(((second == s) & (code != 0)).sum()),
                "p99_ms": float(np.percentile(in_second, 99) * 1e3) if len(in_second) else math.nan,
            }
        )
    return rows


def to_jsonable(result: RunResult) -> dict[str, Any]:
    """A result as plain JSON values (NaN as null)."""
    return _no_nan(asdict(result))


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


# --- rate search ---------------------------------------------------------------


class RateSearch:
    """Finds the highest rate that passes: doubling up to the first failure, then bisection.

    Passing is monotone in the ideal (a server that keeps its p99 at some rate keeps
    it below); on a noisy machine it is not, so the bracket is the highest pass
    below the lowest failure. The search ends after ``max_steps`` runs, when the
    bracket is narrower than ``resolution`` (relative), or at the ceiling/floor.

    Args:
        start: first rate tried when nothing is known yet.
        max_steps: most runs this search asks for.
        resolution: stop when (fail - pass) <= resolution * pass.
        ceiling: never ask for more than this rate.
        floor: never ask for less than this rate.

    Examples:
        >>> search = RateSearch(start=1000, max_steps=10, resolution=0.1)
        >>> tried = []
        >>> while (rate := search.next_rate()) is not None:
        ...     tried.append(rate)
        ...     search.record(rate, passed=rate <= 3000)
        >>> tried, search.best
        ([1000.0, 2000.0, 4000.0, 3000.0, 3500.0, 3250.0], 3000.0)
    """

    def __init__(
        self,
        *,
        start: float = 500.0,
        max_steps: int = 8,
        resolution: float = 0.05,
        ceiling: float = 100_000.0,
        floor: float = 10.0,
    ) -> None:
        if start <= 0 or max_steps < 1 or resolution <= 0 or not 0 < floor <= ceiling:
            raise ValueError("start, max_steps, resolution and floor..ceiling must be positive")
        self.start, self.max_steps, self.resolution = float(start), max_steps, resolution
        self.ceiling, self.floor = float(ceiling), float(floor)
        self.steps = 0
        self.observations: list[tuple[float, bool]] = []

    def record(self, rate: float, *, passed: bool, counts_as_step: bool = True) -> None:
        """Record a run's verdict; ``counts_as_step=False`` for runs made before the search."""
        self.observations.append((float(rate), passed))
        self.steps += counts_as_step

    @property
    def lowest_failure(self) -> float | None:
        """The lowest rate that failed, or None."""
        failures = [r for r, ok in self.observations if not ok]
        return min(failures) if failures else None

    @property
    def best(self) -> float | None:
        """The highest passing rate below the lowest failure, or None."""
        fail = self.lowest_failure
        passes = [r for r, ok in self.observations if ok and (fail is None or r < fail)]
        return max(passes) if passes else None

    def next_rate(self) -> float | None:
        """The next rate to run, or None when the search is over."""
        if self.steps >= self.max_steps:
            return None
        low, high = self.best, self.lowest_failure
        if low is None and high is None:
            rate = self.start
        elif high is None:
            rate = min(2 * low, self.ceiling) if low < self.ceiling else None
        elif low is None:
            rate = high / 2 if high / 2 >= self.floor else None
        elif high - low <= self.resolution * low:
            rate = None
        else:
            rate = round((low + high) / 2)
        return None if rate is None else float(rate)


# --- report --------------------------------------------------------------------


def _ms(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def format_errors(errors: Mapping[str, int]) -> str:
    """``"0"`` or ``"DEADLINE_EXCEEDED 12, UNAVAILABLE 3"`` (most frequent first)."""
    if not errors:
        return "0"
    return ", ".join(f"{k} {v}" for k, v in sorted(errors.items(), key=lambda kv: (-kv[1], kv[0])))


def render_markdown(
    results: Sequence[RunResult],
    *,
    p99_ms: float,
    max_error_rate: float,
    best_rate: float | None = None,
    searched: bool = False,
) -> str:
    """The runs as a Markdown table, with the search's answer below it.

    Args:
        results: the runs, in the order they were made.
        p99_ms: the latency bound of the verdict column.
        max_error_rate: the error share of the verdict column.
        best_rate: the highest passing rate the search found.
        searched: whether a rate search ran (prints its answer, even if none passed).

    Returns:
        The Markdown text, ending with a newline.
    """
    header = (
        "| target/s | achieved/s | p50 ms | p99 ms | p99.9 ms | max ms | errors "
        "| send lag p99 ms | send lag max ms | gen cores | verdict |"
    )
    lines = [header, "|" + "---:|" * 6 + "---|" + "---:|" * 3 + "---|"]
    for r in results:
        verdict = "pass" if r.passes(p99_ms, max_error_rate) else "fail"
        if r.generator_bound:
            verdict += ", generator-bound"
        lines.append(
            f"| {r.rate:.0f} | {r.achieved_rate:.0f} | {_ms(r.latency.p50_ms)} "
            f"| {_ms(r.latency.p99_ms)} | {_ms(r.latency.p999_ms)} | {_ms(r.latency.max_ms)} "
            f"| {format_errors(r.errors)} | {_ms(r.send_lag.p99_ms)} | {_ms(r.send_lag.max_ms)} "
            f"| {r.generator_cores:.2f} | {verdict} |"
        )
    lines.append("")
    lines.append(
        f"Latency from the intended send time (open loop); verdict: p99 ≤ {p99_ms:g} ms, "
        f"errors < {max_error_rate:.2%}, achieved ≥ {GENERATOR_BOUND_SHARE:.0%} of target."
    )
    if searched:
        answer = f"{best_rate:.0f} requests/s" if best_rate is not None else "none of the rates"
        above = [r for r in results if best_rate is None or r.rate > best_rate]
        if above and min(above, key=lambda r: r.rate).generator_bound:
            answer += " (the next rate up was generator-bound: this limit may be the generator's)"
        lines.append(f"Highest passing rate found: {answer}.")
    return "\n".join(lines) + "\n"
