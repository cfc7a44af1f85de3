"""The open-loop Score load generator: its pure parts, then against an in-process fake.

The fake scorer runs on the generator's own event loop, so a blocking stall in it
freezes the generator too: the test of coordinated omission. Whole module < 5 s.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from pathlib import Path

import grpc
import grpc.aio
import numpy as np
import pytest

# loadtests/ is run from the checkout (python -m loadtests...), not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from loadtests.score_load import (
    Target,
    _FakeScoring,
    _redacted,
    parse_args,
    run_async,
    run_open_loop,
    run_open_loop_streaming,
)
from loadtests.score_load_lib import (
    NO_RESPONSE,
    UNSENT,
    LatencySummary,
    PoolSpec,
    RateSearch,
    RunPlan,
    RunRecord,
    TransactionPool,
    format_errors,
    render_markdown,
    summarize,
    to_jsonable,
)
from riskstream.v1 import scoring_pb2, scoring_pb2_grpc
from services.common.events import validate_transaction

# --- schedule --------------------------------------------------------------------


def test_plan_counts_warmup_and_cap() -> None:
    plan = RunPlan(rate=500, duration_s=10, warmup_s=2)
    assert (plan.total, plan.n_warmup, plan.window_s, plan.span_s) == (6000, 1000, 10.0, 12.0)
    capped = RunPlan(rate=500, duration_s=10, warmup_s=2, max_requests=1500)
    assert (capped.total, capped.n_warmup, capped.window_s) == (1500, 1000, 1.0)
    assert RunPlan(rate=3, duration_s=1, warmup_s=0.5).n_warmup == 2  # 0 s and 0.33 s


def test_workers_split_the_schedule_exactly() -> None:
    plan = RunPlan(rate=1000, duration_s=0.1)
    parts = [plan.indices(k, 3) for k in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert parts[1][:3].tolist() == [1, 4, 7]
    assert plan.offsets_s(parts[1][:2]).tolist() == [0.001, 0.004]


@pytest.mark.parametrize(
    "kwargs",
    [{"rate": 0}, {"rate": math.inf}, {"duration_s": 0}, {"warmup_s": -1}, {"max_requests": 0}],
)
def test_plan_rejects_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RunPlan(**{"rate": 10.0, "duration_s": 1.0, **kwargs})


# --- transactions ----------------------------------------------------------------


def test_pool_requests_are_valid_realistic_and_fresh() -> None:
    pool = TransactionPool(PoolSpec(cards=50, terminals=20, size=500, seed=3))
    now_ns = time.time_ns()
    requests = [pool.request(i, run_id="t", now_ns=now_ns) for i in range(500)]
    for request in requests:
        validate_transaction(request.transaction)
    txs = [r.transaction for r in requests]
    assert len({t.transaction_id for t in txs}) == 500
    assert {t.card_id for t in txs} <= {f"card-{i:06d}" for i in range(50)}
    assert {t.terminal_id for t in txs} <= {f"term-{i:05d}" for i in range(20)}
    amounts = np.array([t.amount for t in txs])
    assert 10 < np.median(amounts) < 60 and amounts.max() > 3 * np.median(amounts)
    assert len({t.channel for t in txs}) >= 2 and all(t.event_time.ToNanoseconds() for t in txs)
    # Same spec, same pool; a request is a new message each time.
    again = TransactionPool(PoolSpec(cards=50, terminals=20, size=500, seed=3))
    assert again.request(7, run_id="t", now_ns=now_ns) == requests[7]
    requests[7].transaction.amount = -1.0
    assert pool.request(7, run_id="t", now_ns=now_ns).transaction.amount >= 0


# --- summary ---------------------------------------------------------------------


def _record(plan: RunPlan, lag_s: np.ndarray, service_s: np.ndarray, code: np.ndarray) -> RunRecord:
    index = plan.indices()
    sent = plan.offsets_s(index) + lag_s
    done = sent + service_s
    sent = np.where(code == UNSENT, np.nan, sent)
    done = np.where((code == UNSENT) | (code == NO_RESPONSE), np.nan, done)
    return RunRecord(index=index, sent_s=sent, done_s=done, code=code, cpu_s=0.5, wall_s=2.0)


def test_summary_excludes_warmup_and_counts_errors_by_code() -> None:
    plan = RunPlan(rate=100, duration_s=1, warmup_s=1)
    code = np.zeros(200, dtype=np.int16)
    code[:50] = 14  # UNAVAILABLE during warm-up: not counted
    code[[150, 151]] = 4  # DEADLINE_EXCEEDED
    code[160], code[199] = NO_RESPONSE, UNSENT
    service = np.full(200, 0.002)
    service[:100] = 5.0  # slow warm-up: not in the histogram
    result = summarize(plan, _record(plan, np.zeros(200), service, code))
    assert (result.planned, result.sent, result.answered, result.ok) == (100, 99, 98, 96)
    assert result.errors == {"DEADLINE_EXCEEDED": 2, "NO_RESPONSE": 1, "UNSENT": 1}
    assert result.error_rate == pytest.approx(0.04)
    assert result.latency.count == 98 and result.latency.max_ms == pytest.approx(2.0, rel=1e-3)
    assert result.achieved_rate == pytest.approx(99.0) and not result.generator_bound
    assert result.generator_cores == 0.25 and result.generator_cpu_us == pytest.approx(0.5e6 / 199)
    assert [row["requests"] for row in result.timeline] == [100]


def test_latency_counts_from_the_intended_send_time() -> None:
    """A 200 ms sender stall delays 20 requests: latency shows it, service time does not."""
    plan = RunPlan(rate=100, duration_s=1)
    lag = np.zeros(100)
    lag[40:60] = np.linspace(0.2, 0.01, 20)  # sent in a burst when the stall ended
    result = summarize(plan, _record(plan, lag, np.full(100, 0.002), np.zeros(100, np.int16)))
    assert result.service_time.p99_ms == pytest.approx(2.0, rel=1e-3)
    assert result.latency.p50_ms == pytest.approx(2.0, rel=1e-3)
    assert result.latency.p99_ms >= 190 and result.latency.max_ms == pytest.approx(202, rel=1e-3)
    assert result.send_lag.max_ms == pytest.approx(200, rel=1e-3)
    assert not result.passes(p99_ms=10, max_error_rate=0.001)


def test_late_sender_is_generator_bound() -> None:
    plan = RunPlan(rate=100, duration_s=1)
    lag = np.linspace(0, 0.5, 100)  # falls behind steadily: 100 sends over 1.5 s
    result = summarize(plan, _record(plan, lag, np.full(100, 0.001), np.zeros(100, np.int16)))
    assert result.achieved_rate == pytest.approx(100 / 1.49, rel=1e-3) and result.generator_bound
    assert not result.passes(p99_ms=1e6, max_error_rate=1.0)


def test_hdr_summary_values_and_empty() -> None:
    summary = LatencySummary.of(np.arange(1, 10_001, dtype=float) * 1000)  # 1..10,000 ms
    assert summary.count == 10_000
    assert summary.p50_ms == pytest.approx(5000, rel=1e-3)
    assert summary.p99_ms == pytest.approx(9900, rel=1e-3)
    assert summary.p999_ms == pytest.approx(9990, rel=1e-3)
    assert summary.percentiles_ms["100.0"] == pytest.approx(10_000, rel=1e-3)
    assert LatencySummary.of(np.array([0.0, 9e12])).max_ms == pytest.approx(60_000, rel=1e-3)
    empty = LatencySummary.of(np.array([]))
    assert empty.count == 0 and math.isnan(empty.p99_ms)


def test_records_of_workers_merge_by_index() -> None:
    plan = RunPlan(rate=10, duration_s=1)
    parts = []
    for k in range(2):
        index = plan.indices(k, 2)
        parts.append(
            RunRecord(index, index * 0.1, index * 0.1 + 0.01, np.zeros(len(index), np.int16), 1, k)
        )
    merged = RunRecord.merge(parts)
    assert merged.index.tolist() == list(range(10)) and merged.sent_s[3] == pytest.approx(0.3)
    assert (merged.cpu_s, merged.wall_s) == (2, 1)


# --- rate search -----------------------------------------------------------------


def _search(search: RateSearch, limit: float) -> list[float]:
    tried = []
    while (rate := search.next_rate()) is not None:
        tried.append(rate)
        search.record(rate, passed=rate <= limit)
    return tried


def test_search_doubles_then_bisects_within_its_steps() -> None:
    search = RateSearch(start=500, max_steps=8, resolution=0.05)
    tried = _search(search, limit=2600)
    assert tried[:4] == [500, 1000, 2000, 4000] and len(tried) <= 8
    assert 2400 <= search.best <= 2600 and search.lowest_failure > 2600


def test_search_continues_from_the_ladder() -> None:
    search = RateSearch(start=500, max_steps=3, resolution=0.01)
    for rate, ok in [(500, True), (1000, True), (2000, False), (4000, False)]:
        search.record(rate, passed=ok, counts_as_step=False)
    assert _search(search, limit=1300) == [1500, 1250, 1375]
    assert search.best == 1250


def test_search_when_nothing_passes_or_everything_does() -> None:
    none = RateSearch(start=100, max_steps=20, floor=10)
    assert _search(none, limit=0) == [100, 50, 25, 12.5] and none.best is None
    capped = RateSearch(start=100, max_steps=20, ceiling=500)
    assert _search(capped, limit=1e9) == [100, 200, 400, 500] and capped.best == 500


def test_search_ignores_a_noisy_pass_above_a_failure() -> None:
    search = RateSearch(start=1000, max_steps=1)
    for rate, ok in [(1000, True), (2000, False), (3000, True)]:
        search.record(rate, passed=ok, counts_as_step=False)
    assert search.best == 1000 and search.next_rate() == 1500


# --- report ----------------------------------------------------------------------


def test_markdown_and_json_report() -> None:
    plan = RunPlan(rate=100, duration_s=1)
    code = np.zeros(100, np.int16)
    code[:3] = 4
    ok = summarize(plan, _record(plan, np.zeros(100), np.full(100, 0.002), np.zeros(100, np.int16)))
    bad = summarize(plan, _record(plan, np.linspace(0, 0.5, 100), np.full(100, 0.002), code))
    text = render_markdown([ok, bad], p99_ms=10, max_error_rate=0.001, best_rate=100, searched=True)
    lines = text.splitlines()
    assert lines[0].startswith("| target/s | achieved/s | p50 ms | p99 ms | p99.9 ms | max ms |")
    assert lines[2].startswith("| 100 | 100 | 2.00 | 2.00 | 2.00 | 2.00 | 0 |")
    assert lines[2].endswith("| pass |")
    assert "DEADLINE_EXCEEDED 3" in lines[3] and lines[3].endswith("| fail, generator-bound |")
    assert text.endswith("Highest passing rate found: 100 requests/s.\n")
    none = render_markdown([bad], p99_ms=10, max_error_rate=0.001, searched=True)
    assert none.endswith(
        "none of the rates (the next rate up was generator-bound: "
        "this limit may be the generator's).\n"
    )
    assert format_errors({"UNAVAILABLE": 1, "DEADLINE_EXCEEDED": 5}) == (
        "DEADLINE_EXCEEDED 5, UNAVAILABLE 1"
    )
    document = json.loads(json.dumps(to_jsonable(bad), allow_nan=False))
    assert document["errors"] == {"DEADLINE_EXCEEDED": 3} and document["latency"]["histogram"]


def test_command_line_defaults_and_token_redaction() -> None:
    args = parse_args([])
    assert args.rates == [500, 1000, 2000, 4000] and args.target == "127.0.0.1:50051"
    assert (args.duration_s, args.warmup_s, args.deadline_ms, args.p99_ms) == (10, 2, 1000, 10)
    assert parse_args(["--rates", "", "--find-max-rate"]).rates == []
    assert _redacted(["--token", "s3cret", "--token=s3cret", "--rates", "1"]) == [
        "--token",
        "***",
        "--token=***",
        "--rates",
        "1",
    ]


# --- against an in-process fake scorer --------------------------------------------

TOKEN = "test-token"


class FakeScoring(scoring_pb2_grpc.FraudScoringServicer):
    """Answers after 2 ms; the first call after ``stall_at_s`` stalls for 200 ms.

    ``blocking`` stalls the whole process (and so the generator on the same event
    loop), as a stop-the-world pause of a machine would; otherwise only that call
    and the calls arriving during the window wait.
    """

    def __init__(self, *, stall_at_s: float | None = None, blocking: bool = False) -> None:
        self.stall_at_s, self.blocking = stall_at_s, blocking
        self.started = time.perf_counter()
        self.window_end: float | None = None

    async def Score(self, request, context):  # noqa: N802 (the gRPC method's name)
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {TOKEN}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
        now = time.perf_counter()
        stall = self.stall_at_s is not None and self.window_end is None
        if stall and now - self.started >= self.stall_at_s:
            self.window_end = now + 0.2
            if self.blocking:
                time.sleep(0.2)
        if self.window_end is not None and now < self.window_end and not self.blocking:
            await asyncio.sleep(self.window_end - now)
        await asyncio.sleep(0.002)
        return scoring_pb2.ScoreResponse(transaction_id=request.transaction.transaction_id)

    async def ScoreStream(self, request_iterator, context):  # noqa: N802
        """Each message answered 2 ms after it arrives, several at once, in order."""
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {TOKEN}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
        async for response in _FakeScoring(0.002).ScoreStream(request_iterator, context):
            yield response


def _run_against_fake(
    fake: FakeScoring, plan: RunPlan, token: str = TOKEN, *, streams: int = 0,
    deadline_s: float = 1.0,
):  # fmt: skip
    async def scenario():
        server = grpc.aio.server()
        scoring_pb2_grpc.add_FraudScoringServicer_to_server(fake, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            fake.started = time.perf_counter()
            target = Target(address=f"127.0.0.1:{port}", token=token, deadline_s=deadline_s,
                            streams=streams)  # fmt: skip
            pool = TransactionPool(PoolSpec(cards=100, terminals=50, size=200))
            send = run_open_loop_streaming if streams else run_open_loop
            return await send(target, plan, pool, run_id="test")
        finally:
            await server.stop(None)

    return summarize(plan, run_async(scenario()))


@pytest.mark.parametrize("streams", [0, 3], ids=["unary", "streams"])
def test_open_loop_against_fake_scorer(streams: int) -> None:
    plan = RunPlan(rate=200, duration_s=1.0, warmup_s=0.2)
    result = _run_against_fake(FakeScoring(), plan, streams=streams)
    assert result.errors == {} and result.ok == result.planned == 200
    # Within 10%, not the generator-bound flag's 5%: the machine is shared.
    assert result.achieved_rate == pytest.approx(200, rel=0.1)
    assert result.latency.p50_ms >= 2.0
    assert result.latency.p50_ms >= result.service_time.p50_ms


@pytest.mark.parametrize("streams", [0, 2], ids=["unary", "streams"])
def test_wrong_token_is_counted_as_unauthenticated(streams: int) -> None:
    plan = RunPlan(rate=100, duration_s=0.25)
    result = _run_against_fake(FakeScoring(), plan, token="nope", streams=streams)
    assert result.errors == {"UNAUTHENTICATED": 25} and result.error_rate == 1.0


def test_a_streamed_answer_later_than_the_deadline_counts_as_exceeded() -> None:
    plan = RunPlan(rate=100, duration_s=0.25)
    result = _run_against_fake(FakeScoring(), plan, streams=2, deadline_s=0.001)
    assert result.errors == {"DEADLINE_EXCEEDED": 25} and result.answered == 25


def test_server_stall_shows_in_p99() -> None:
    plan = RunPlan(rate=200, duration_s=0.6)
    result = _run_against_fake(FakeScoring(stall_at_s=0.2), plan)
    assert result.errors == {}
    assert result.latency.p99_ms >= 150  # ~40 of 120 requests waited up to 200 ms


def test_stalled_generator_is_not_hidden() -> None:
    """The process freezes for 200 ms: the sends due meanwhile go out late and count late."""
    plan = RunPlan(rate=200, duration_s=0.6)
    result = _run_against_fake(FakeScoring(stall_at_s=0.2, blocking=True), plan)
    assert result.errors == {} and result.send_lag.max_ms >= 150
    # ~10 of 120 requests were due in the freeze's first 50 ms: >= 150 ms late each.
    assert result.latency.percentiles_ms["95.0"] >= 150 and result.latency.p99_ms >= 150
    # Timed from the actual send (a closed-loop tool's view), they would look faster.
    assert result.service_time.percentiles_ms["95.0"] < result.latency.percentiles_ms["95.0"]
