"""Open-loop load generator for ``FraudScoring.Score``: latency percentiles at fixed rates.

Request ``i`` of a run is due ``i / rate`` seconds after the start and goes out then,
or as soon as the generator can if it is late, whatever is still in flight (grpc.aio,
one event loop per process, calls spread over ``--channels`` connections). Latency
is the answer's arrival minus the *intended* send time, into an HdrHistogram (µs,
1 µs..60 s, 3 significant digits), so a stall of the server or of the generator is
counted against every request it delays. The send lag (actual minus intended send
time) is reported too; a run whose achieved send rate is below 95% of the target is
flagged "generator-bound": its numbers describe the generator, not the server.

Transactions are valid and realistic (simulator-style cards ``card-000123``,
terminals ``term-00042``, log-normal amounts, ``event_time`` = now); the scorer reads
their features itself. Each run is bounded in time and in count (``--max-requests``).
Examples, with the stack's scorer up::

    .venv/bin/python -m loadtests.score_load --token-file .state/scoring/tokens.json \\
        --rates 500,1000,2000,4000 --duration-s 10 --warmup-s 2 --json score_load.json
    .venv/bin/python -m loadtests.score_load --token-file .state/scoring/tokens.json \\
        --rates '' --find-max-rate --p99-ms 10

The same schedule over long-lived ScoreStream calls (``--streams N``): the client a
high-rate application would run, since one stream message costs far less than one
unary call in gRPC Python::

    .venv/bin/python -m loadtests.score_load --token-file .state/scoring/tokens.json \\
        --rates 500,1000,2000,4000 --streams 4

The generator's own ceiling, against a fake scorer in a child process that answers
after ``--fake-server-ms`` (no token needed)::

    .venv/bin/python -m loadtests.score_load --fake-server-ms 2 --rates 1000,2000,4000
    .venv/bin/python -m loadtests.score_load --fake-server-ms 2 --rates 4000 --processes 2

On a shared machine the generator takes CPU from the server it measures: compare
send lag and the "generator-bound" flag before reading a tail as the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform
import selectors
import sys
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
import numpy as np

from loadtests.score_load_lib import (
    NO_RESPONSE,
    UNSENT,
    PoolSpec,
    RateSearch,
    RunPlan,
    RunRecord,
    RunResult,
    TransactionPool,
    render_markdown,
    summarize,
    to_jsonable,
)
from riskstream.v1 import scoring_pb2, scoring_pb2_grpc
from services.scoring.client import bearer_metadata, open_aio_channels

CONNECT_TIMEOUT_S = 5.0
START_LEAD_S = 0.5  # worker processes connect, then wait for the common start
LATE_BURST = 64  # late requests sent back to back before the loop gets a turn
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to call Score.

    Attributes:
        address: ``host:port``.
        token: bearer token of the ``score`` role; None sends no authorization.
        tls_ca: PEM of the CA that signed the server's certificate; None: plaintext.
        server_name: TLS name to check instead of the address's host.
        channels: connections the calls are spread over (round robin).
        deadline_s: per-call deadline (streams: an answer later than this after its
            send counts as DEADLINE_EXCEEDED).
        streams: 0 calls unary Score; N > 0 sends every request over N long-lived
            ScoreStream calls per sender process (spread over the channels).
    """

    address: str = "127.0.0.1:50051"
    token: str | None = None
    tls_ca: bytes | None = None
    server_name: str | None = None
    channels: int = 1
    deadline_s: float = 1.0
    streams: int = 0


def _open_channels(target: Target) -> list[grpc.aio.Channel]:
    return open_aio_channels(
        target.address, target.channels, tls_ca=target.tls_ca, server_name=target.server_name
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers wake within ~0.2 ms instead of up to 1 ms late.

    The default epoll selector rounds every timeout up to a whole millisecond, which
    would add up to 1 ms of send lag to every request; select() takes microseconds.
    We watch a handful of descriptors, far below select()'s limit.
    """
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` on :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


@lru_cache(maxsize=4)
def _pool(spec: PoolSpec) -> TransactionPool:
    return TransactionPool(spec)


async def _on_schedule(due_s: list[float], t0: float, give_up_s: float) -> AsyncIterator[int]:
    """Yields each request's position when it is due (or at once when late), until
    ``give_up_s`` after ``t0``; late requests go out in bursts of ``LATE_BURST`` with a
    loop turn between, so that answers get in instead of waiting behind the backlog."""
    perf, burst = time.perf_counter, 0
    for j, due in enumerate(due_s):
        now = perf()
        if now < t0 + due:
            await asyncio.sleep(t0 + due - now)
            burst = 0
        elif burst >= LATE_BURST:
            await asyncio.sleep(0)
            burst = 0
        else:
            burst += 1
        if perf() - t0 > give_up_s:
            return
        yield j


async def run_open_loop(
    target: Target,
    plan: RunPlan,
    pool: TransactionPool,
    *,
    run_id: str,
    worker: int = 0,
    workers: int = 1,
    start_wall: float | None = None,
) -> RunRecord:
    """Send one worker's share of a run's schedule and record what happened.

    Args:
        target: the server.
        plan: the run; this worker sends indices ``worker, worker + workers, ...``.
        pool: the transactions.
        run_id: part of every transaction id, unique per run.
        worker: this worker's number.
        workers: senders sharing the schedule.
        start_wall: the run's start as ``time.time()`` (shared by all workers);
            None: as soon as connected.

    Returns:
        The record, times in seconds after the start.

    Raises:
        TimeoutError: the server did not accept a connection within 5 s.
    """
    indices = plan.indices(worker, workers)
    due_s, index = plan.offsets_s(indices).tolist(), indices.tolist()
    n = len(index)
    sent, done, code = [math.nan] * n, [math.nan] * n, [UNSENT] * n
    channels = _open_channels(target)
    cpu_start = time.process_time()
    try:
        ready = asyncio.gather(*(c.channel_ready() for c in channels))
        await asyncio.wait_for(ready, CONNECT_TIMEOUT_S)
        scores = [scoring_pb2_grpc.FraudScoringStub(c).Score for c in channels]
        metadata = bearer_metadata(target.token) if target.token else None
        deadline_s, perf = target.deadline_s, time.perf_counter
        t0 = perf() + (0.0 if start_wall is None else start_wall - time.time())
        give_up_s = plan.span_s + deadline_s + 1.0  # later than this, stop sending
        pending: set[asyncio.Task[None]] = set()

        async def call(j: int, request: scoring_pb2.ScoreRequest, score: Any) -> None:
            sent[j], code[j] = perf() - t0, NO_RESPONSE
            try:
                await score(request, timeout=deadline_s, metadata=metadata)
                status = 0
            except grpc.aio.AioRpcError as exc:
                status = exc.code().value[0]
            done[j], code[j] = perf() - t0, status

        async for j in _on_schedule(due_s, t0, give_up_s):
            request = pool.request(index[j], run_id=run_id, now_ns=time.time_ns())
            task = asyncio.create_task(call(j, request, scores[j % len(scores)]))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending, timeout=deadline_s + 1.0)
        for task in list(pending):
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        wall_s, cpu_s = perf() - t0, time.process_time() - cpu_start
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    return RunRecord(
        index=indices,
        sent_s=np.array(sent),
        done_s=np.array(done),
        code=np.array(code, dtype=np.int16),
        cpu_s=cpu_s,
        wall_s=wall_s,
    )


_DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


async def run_open_loop_streaming(
    target: Target,
    plan: RunPlan,
    pool: TransactionPool,
    *,
    run_id: str,
    worker: int = 0,
    workers: int = 1,
    start_wall: float | None = None,
) -> RunRecord:
    """:func:`run_open_loop` over ``target.streams`` ScoreStream calls instead of unary calls.

    Request ``j`` still leaves at its intended time (into its stream's send queue,
    round robin), and its latency is still measured from that time; answers are
    matched by ``request_id``, so the server's answer order does not matter here.
    A stream that fails marks its unanswered requests, and those sent to it later,
    with its status (it is not reopened).

    Raises:
        TimeoutError: the server did not accept a connection within 5 s.
    """
    indices = plan.indices(worker, workers)
    due_s, index = plan.offsets_s(indices).tolist(), indices.tolist()
    n = len(index)
    sent, done, code = [math.nan] * n, [math.nan] * n, [UNSENT] * n
    channels = _open_channels(target)
    cpu_start = time.process_time()
    try:
        ready = asyncio.gather(*(c.channel_ready() for c in channels))
        await asyncio.wait_for(ready, CONNECT_TIMEOUT_S)
        metadata = bearer_metadata(target.token) if target.token else None
        deadline_s, perf = target.deadline_s, time.perf_counter
        t0 = perf() + (0.0 if start_wall is None else start_wall - time.time())
        give_up_s = plan.span_s + deadline_s + 1.0
        queues: list[asyncio.Queue[scoring_pb2.ScoreRequest | None]] = [
            asyncio.Queue() for _ in range(target.streams)
        ]
        outstanding: list[set[int]] = [set() for _ in range(target.streams)]
        failed: list[int | None] = [None] * target.streams  # a dead stream's status

        async def outgoing(queue: asyncio.Queue[scoring_pb2.ScoreRequest | None]) -> Any:
            while (request := await queue.get()) is not None:
                yield request

        async def stream(k: int) -> None:
            stub = scoring_pb2_grpc.FraudScoringStub(channels[k % len(channels)])
            call = stub.ScoreStream(
                outgoing(queues[k]), timeout=give_up_s + deadline_s + 5.0, metadata=metadata
            )
            try:
                async for response in call:
                    j = int(response.request_id)
                    done[j] = perf() - t0
                    late = done[j] - sent[j] > deadline_s
                    code[j] = _DEADLINE_EXCEEDED if late else 0
                    outstanding[k].discard(j)
            except grpc.aio.AioRpcError as exc:
                failed[k] = exc.code().value[0]
                for j in outstanding[k]:
                    code[j] = failed[k]
            except asyncio.CancelledError:
                call.cancel()
                raise

        readers = [asyncio.create_task(stream(k)) for k in range(target.streams)]
        async for j in _on_schedule(due_s, t0, give_up_s):
            request = pool.request(index[j], run_id=run_id, now_ns=time.time_ns())
            request.request_id = str(j)
            k = j % target.streams
            sent[j], code[j] = perf() - t0, NO_RESPONSE
            if (status := failed[k]) is not None:  # sent into a stream that has ended
                code[j] = status
                continue
            outstanding[k].add(j)
            queues[k].put_nowait(request)
        for queue in queues:
            queue.put_nowait(None)  # half-close: the server answers what it has, then ends
        await asyncio.wait(readers, timeout=deadline_s + 1.0)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        wall_s, cpu_s = perf() - t0, time.process_time() - cpu_start
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    return RunRecord(
        index=indices,
        sent_s=np.array(sent),
        done_s=np.array(done),
        code=np.array(code, dtype=np.int16),
        cpu_s=cpu_s,
        wall_s=wall_s,
    )


def _sender(target: Target) -> Any:
    """The open-loop sender for the target's call shape (unary or streams)."""
    return run_open_loop_streaming if target.streams else run_open_loop


def _worker_run(
    target: Target,
    plan: RunPlan,
    spec: PoolSpec,
    run_id: str,
    worker: int,
    workers: int,
    start_wall: float,
) -> RunRecord:
    pool = _pool(spec)
    return run_async(
        _sender(target)(
            target, plan, pool, run_id=run_id, worker=worker, workers=workers, start_wall=start_wall
        )
    )


def _worker_prime(spec: PoolSpec) -> int:
    _pool(spec)
    time.sleep(0.3)  # hold this worker, so that the next prime starts another
    return os.getpid()


class LoadGenerator:
    """Runs plans against a target from this process or from ``processes`` workers.

    Args:
        target: the server.
        spec: the transaction pool.
        processes: 1 sends from this process; N > 1 from N spawned workers, each
            sending every N-th request of the schedule.
    """

    def __init__(self, target: Target, spec: PoolSpec, *, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.target, self.spec, self.processes = target, spec, processes
        self._executor: ProcessPoolExecutor | None = None

    def run(self, plan: RunPlan) -> RunResult:
        """Run one plan and summarize its measured window."""
        run_id = uuid.uuid4().hex[:8]
        if self.processes == 1:
            coro = _sender(self.target)(self.target, plan, _pool(self.spec), run_id=run_id)
            return summarize(plan, run_async(coro))
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn")
            )
            primes = [
                self._executor.submit(_worker_prime, self.spec) for _ in range(self.processes)
            ]
            for prime in primes:
                prime.result()
        start_wall = time.time() + START_LEAD_S
        futures = [
            self._executor.submit(
                _worker_run, self.target, plan, self.spec, run_id, k, self.processes, start_wall
            )
            for k in range(self.processes)
        ]
        record = RunRecord.merge([f.result() for f in futures])
        return summarize(plan, record, processes=self.processes)

    def close(self) -> None:
        """Stop the worker processes."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None


# --- fake scorer, for measuring the generator alone --------------------------------


class _FakeScoring(scoring_pb2_grpc.FraudScoringServicer):
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def Score(self, request, context):  # noqa: N802 (the gRPC method's name)
        await asyncio.sleep(self.delay_s)
        return scoring_pb2.ScoreResponse(transaction_id=request.transaction.transaction_id)

    async def ScoreStream(self, request_iterator, context):  # noqa: N802
        answers: asyncio.Queue[Any] = asyncio.Queue()

        async def answer(request: scoring_pb2.ScoreRequest) -> scoring_pb2.ScoreResponse:
            await asyncio.sleep(self.delay_s)
            return scoring_pb2.ScoreResponse(
                transaction_id=request.transaction.transaction_id, request_id=request.request_id
            )

        async def read() -> None:
            async for request in request_iterator:
                answers.put_nowait(asyncio.ensure_future(answer(request)))
            answers.put_nowait(None)

        reader = asyncio.ensure_future(read())
        while (pending := await answers.get()) is not None:
            yield await pending
        await reader


def _serve_fake(delay_ms: float, conn: Connection) -> None:
    async def serve() -> None:
        server = grpc.aio.server()
        scoring_pb2_grpc.add_FraudScoringServicer_to_server(_FakeScoring(delay_ms / 1e3), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        conn.send(port)
        await server.wait_for_termination()

    asyncio.run(serve())


def start_fake_server(delay_ms: float) -> tuple[multiprocessing.Process, str]:
    """A fake scorer in a child process that answers after ``delay_ms``; (process, address)."""
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_fake, args=(delay_ms, child), daemon=True
    )
    process.start()
    started = time.monotonic()
    while not parent.poll(0.1):
        if not process.is_alive() or time.monotonic() - started > 30:
            process.kill()
            raise RuntimeError("the fake scorer did not start")
    return process, f"127.0.0.1:{parent.recv()}"


# --- command line ----------------------------------------------------------------


def _rates(text: str) -> list[float]:
    return [float(r) for r in text.replace("_", "").split(",") if r.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    p = argparse.ArgumentParser(prog="score_load", description=__doc__.split("\n")[0])
    p.add_argument("--target", default="127.0.0.1:50051")
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--token", help="bearer token of the score role")
    auth.add_argument("--token-file", type=Path, help='JSON {"score": TOKEN, "admin": TOKEN}')
    p.add_argument("--tls-ca", type=Path, help="CA certificate (PEM); default plaintext")
    p.add_argument("--tls-server-name", help="TLS name to check instead of the target's host")
    p.add_argument("--rates", type=_rates, default=_rates("500,1000,2000,4000"))
    p.add_argument("--duration-s", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup-s", type=float, default=2.0, help="unmeasured seconds first")
    p.add_argument("--max-requests", type=int, default=200_000, help="per run, warm-up included")
    p.add_argument("--pause-s", type=float, default=1.0, help="idle time between runs")
    p.add_argument("--deadline-ms", type=float, default=1000.0)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument(
        "--streams", type=int, default=0,
        help="send over N ScoreStream calls per process instead of unary Score (default 0)",
    )  # fmt: skip
    p.add_argument("--processes", type=int, default=1, help="sender processes (rate/N each)")
    p.add_argument("--cards", type=int, default=5000)
    p.add_argument("--terminals", type=int, default=10000)
    p.add_argument("--pool-size", type=int, default=10000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--find-max-rate", action="store_true")
    p.add_argument("--p99-ms", type=float, default=10.0)
    p.add_argument("--max-error-rate", type=float, default=0.001)
    p.add_argument("--search-start", type=float, default=500.0)
    p.add_argument("--search-steps", type=int, default=8)
    p.add_argument("--search-resolution", type=float, default=0.05)
    p.add_argument("--search-ceiling", type=float, default=50_000.0)
    p.add_argument("--fake-server-ms", type=float, help="target a fake scorer with this delay")
    p.add_argument("--json", type=Path, help="write every result and the machine info here")
    args = p.parse_args(argv)
    if not args.rates and not args.find_max_rate:
        p.error("nothing to do: give --rates or --find-max-rate")
    return args


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is None:
        return args.token
    tokens = json.loads(args.token_file.read_text())
    if not isinstance(tokens, dict) or not isinstance(tokens.get("score"), str):
        raise SystemExit(f"{args.token_file}: no string entry 'score'")
    return tokens["score"]


def _redacted(argv: Sequence[str]) -> list[str]:
    """The command line with the value of ``--token`` replaced by ``***``."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--token":
            arg = "***"
        elif arg.startswith("--token="):
            arg = "--token=***"
        out.append(arg)
    return out


def machine_info() -> dict[str, Any]:
    """CPU count, load average, date and versions, for the JSON report."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "load_average": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
    }


def _progress(result: RunResult) -> None:
    flag = " generator-bound" if result.generator_bound else ""
    print(
        f"rate {result.rate:.0f}/s: achieved {result.achieved_rate:.0f}/s, "
        f"p50 {result.latency.p50_ms:.2f} p99 {result.latency.p99_ms:.2f} ms, "
        f"errors {result.error_rate:.2%}, send lag p99 {result.send_lag.p99_ms:.2f} ms{flag}",
        file=sys.stderr,
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rate ladder and the optional search; print the table, write the JSON."""
    args = parse_args(argv)
    fake = None
    address, token = args.target, _token(args)
    if args.fake_server_ms is not None:
        fake, address = start_fake_server(args.fake_server_ms)
    target = Target(
        address=address,
        token=token,
        tls_ca=args.tls_ca.read_bytes() if args.tls_ca else None,
        server_name=args.tls_server_name,
        channels=args.channels,
        deadline_s=args.deadline_ms / 1e3,
        streams=args.streams,
    )
    spec = PoolSpec(cards=args.cards, terminals=args.terminals, size=args.pool_size, seed=args.seed)
    machine_before = machine_info()
    generator = LoadGenerator(target, spec, processes=args.processes)
    results: list[RunResult] = []

    def run(rate: float) -> RunResult:
        if results:
            time.sleep(args.pause_s)
        plan = RunPlan(rate, args.duration_s, args.warmup_s, args.max_requests)
        results.append(generator.run(plan))
        _progress(results[-1])
        return results[-1]

    search = RateSearch(
        start=args.search_start,
        max_steps=args.search_steps,
        resolution=args.search_resolution,
        ceiling=args.search_ceiling,
    )
    if token is None and fake is None:
        print("warning: no --token or --token-file; calls carry no authorization", file=sys.stderr)
    try:
        for rate in args.rates:
            result = run(rate)
            search.record(
                rate, passed=result.passes(args.p99_ms, args.max_error_rate), counts_as_step=False
            )
        while args.find_max_rate and (rate := search.next_rate()) is not None:
            search.record(rate, passed=run(rate).passes(args.p99_ms, args.max_error_rate))
    except TimeoutError:
        print(f"error: no connection to {address} within {CONNECT_TIMEOUT_S:g} s", file=sys.stderr)
        return 1
    finally:
        generator.close()
        if fake is not None:
            fake.kill()
            fake.join()
    best = search.best if args.find_max_rate else None
    print(
        render_markdown(
            results,
            p99_ms=args.p99_ms,
            max_error_rate=args.max_error_rate,
            best_rate=best,
            searched=args.find_max_rate,
        ),
        end="",
    )
    if args.json:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        settings.pop("token")  # a secret
        document = {
            "machine": {**machine_before, "load_average_after": list(os.getloadavg())},
            "command": _redacted(["-m", "loadtests.score_load", *sys.argv[1:]]),
            "target": address,
            "settings": settings,
            "runs": [to_jsonable(r) for r in results],
            "search": {
                "enabled": args.find_max_rate,
                "best_rate": best,
                "observations": search.observations,
            },
        }
        args.json.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
