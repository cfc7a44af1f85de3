"""Closed-loop load on the scorer's Open Inference Protocol ``ModelInfer``: N callers, n rows.

Why: ``ModelInfer`` is the scorer's batch entry (backfills, ScoreBatch-like clients,
the GPU path): requests of up to 64 rows go through the micro-batcher, larger ones
run as one ONNX Runtime call, on the CUDA tensor form when the loader chose one.
``loadtests/gpu_inference.py`` timed the model forms in-process and
``loadtests/peers/`` drove one row a request through perf_analyzer; neither says
what a *served* scorer gives at 1-4,096 rows a request, gRPC, token check, request
decoding and event loop included. This driver does, for a grid of concurrency x
rows per request, each point bounded in time::

    .venv/bin/python -m loadtests.oip_infer_load --target 127.0.0.1:50051 \\
        --token-file .state/scoring/tokens.json --rows-file rows.npy \\
        --concurrency 1,8,32 --rows-per-request 1,64,1024,4096 --duration-s 2.5 \\
        --json oip_infer.json [--metrics-url http://127.0.0.1:9102/metrics]

A scorer with no Kafka (a bench host) is ``python -m loadtests.standalone_scorer``.

Each point: ``concurrency`` callers (grpc.aio, one event loop, calls spread over
``--channels`` connections), each sending its next request as soon as the last one
answered (closed loop: latency is service time, arrivals adapt to the server, so
this measures capacity and per-request latency at that concurrency, not behaviour
under a fixed arrival rate; ``score_load.py`` does that). Requests are
pre-serialized ``ModelInferRequest`` bytes (FP32 ``[n, width]`` raw contents, from
``--rows-file`` or seeded rows), answers are not decoded in the loop, so the client
spends its CPU on gRPC alone. A warm-up is sent first; the window counts the calls
that *finish* inside it: requests/s, rows/s, and their latency (HdrHistogram,
1 µs..60 s, 3 significant digits, as ``score_load``; numpy percentiles when hdrh is
not installed, said in the output). Before the grid it checks the token (a call
without one must be refused) and scores rows ``0..n`` once per size (the shape is
checked; ``--scores-dir`` keeps them, to compare two runs). With ``--metrics-url``
it reads the scorer's Prometheus counters before and after each point: micro-batches
formed and their mean rows, ONNX Runtime time per batch, server-side ModelInfer time.

Bounds: each point lasts ``--warmup-s`` + ``--duration-s`` plus the drain of calls in
flight (each under ``--deadline-s``); a point whose single request already takes
longer than the window divided by its concurrency is skipped (listed with the
reason); with ``--budget-s`` the points left share the time left (none shorter than
``--min-duration-s``; skipped once even that does not fit).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import numpy as np
import numpy.typing as npt
from prometheus_client.samples import Sample

from riskstream.oip.v2 import grpc_service_pb2 as pb
from riskstream.oip.v2 import grpc_service_pb2_grpc as pb_grpc
from services.common.prometheus_text import scrape, total
from services.scoring.client import bearer_metadata, open_aio_channels, read_token

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
#: Variants of each request (different rows), cycled by the callers.
VARIANTS = 4

try:  # the scorer's environment has it; a bare bench host may not
    from loadtests.score_load_lib import LatencySummary

    PERCENTILE_METHOD = "hdrh"
except ImportError:  # pragma: no cover - depends on the host
    LatencySummary = None  # type: ignore[assignment,misc]
    PERCENTILE_METHOD = "numpy"


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """p50/p90/p99/p99.9/max/mean in ms of call latencies given in seconds.

    HdrHistogram (``score_load``'s :class:`LatencySummary`) when hdrh is installed,
    else numpy's nearest-rank percentiles (``PERCENTILE_METHOD`` says which).

    Examples:
        >>> s = latency_summary([0.001] * 99 + [0.010])
        >>> (s["count"], round(s["p50_ms"], 2), round(s["max_ms"], 1))
        (100, 1.0, 10.0)
    """
    values_us = np.asarray(seconds, dtype=np.float64) * 1e6
    if LatencySummary is not None:
        return dataclasses.asdict(LatencySummary.of(values_us))
    if not len(values_us):
        return {"count": 0}
    pct = np.percentile(values_us, [50, 90, 99, 99.9], method="inverted_cdf") / 1000.0
    return {
        "count": len(values_us),
        "p50_ms": float(pct[0]),
        "p90_ms": float(pct[1]),
        "p99_ms": float(pct[2]),
        "p999_ms": float(pct[3]),
        "max_ms": float(values_us.max()) / 1000.0,
        "mean_ms": float(values_us.mean()) / 1000.0,
    }


# --- requests ------------------------------------------------------------------


def request_rows(rows: npt.NDArray[np.float32], n: int, variant: int) -> npt.NDArray[np.float32]:
    """``n`` consecutive rows (wrapping) starting at the variant's quarter of ``rows``.

    Examples:
        >>> r = np.arange(8, dtype=np.float32).reshape(8, 1)
        >>> request_rows(r, 3, 1)[:, 0].tolist(), request_rows(r, 3, 3)[:, 0].tolist()
        ([2.0, 3.0, 4.0], [6.0, 7.0, 0.0])
    """
    start = variant * len(rows) // VARIANTS
    return rows[(start + np.arange(n)) % len(rows)]


def infer_request(
    model: str, input_name: str, rows: npt.NDArray[np.float32]
) -> pb.ModelInferRequest:
    """A ``ModelInferRequest`` carrying ``rows`` as FP32 raw contents."""
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=input_name, datatype="FP32", shape=list(rows.shape)
    )
    return pb.ModelInferRequest(
        model_name=model,
        inputs=[tensor],
        raw_input_contents=[np.ascontiguousarray(rows, dtype="<f4").tobytes()],
    )


def seeded_rows(width: int, count: int = 8192, seed: int = 7) -> npt.NDArray[np.float32]:
    """Positive rows spread like amounts and counts (when no ``--rows-file`` is given)."""
    rng = np.random.default_rng(seed)
    return rng.gamma(2.0, 20.0, size=(count, width)).astype(np.float32)


# --- server metrics ------------------------------------------------------------


def metric_totals(samples: list[Sample]) -> dict[str, float]:
    """The counters a point's server view needs, summed over label sets.

    Examples:
        >>> from services.common.prometheus_text import parse_samples
        >>> text = (
        ...     'riskstream_scoring_batch_rows_sum 130.0\\n'
        ...     'riskstream_scoring_inference_seconds_count{model_version="v1"} 3.0\\n'
        ...     'riskstream_scoring_rpc_seconds_count{code="OK",method="ModelInfer"} 2.0\\n'
        ...     'riskstream_scoring_rpc_seconds_count{code="OK",method="Score"} 5.0\\n'
        ... )
        >>> totals = metric_totals(parse_samples(text))
        >>> totals["batch_rows_sum"], totals["inference_count"], totals["infer_rpc_count"]
        (130.0, 3.0, 2.0)
    """
    out = {
        key: total(samples, f"riskstream_scoring_{name}")
        for key, name in {
            "batch_rows_sum": "batch_rows_sum",
            "batch_rows_count": "batch_rows_count",
            "inference_sum": "inference_seconds_sum",
            "inference_count": "inference_seconds_count",
        }.items()
    }
    for part in ("sum", "count"):
        out[f"infer_rpc_{part}"] = total(
            samples, f"riskstream_scoring_rpc_seconds_{part}", method="ModelInfer"
        )
    return out


def server_view(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """What the scorer saw during a point, from two :func:`metric_totals` readings.

    Examples:
        >>> b = dict.fromkeys(metric_totals([]), 0.0)
        >>> a = dict(b, batch_rows_sum=640.0, batch_rows_count=10.0, inference_sum=0.02,
        ...          inference_count=10.0, infer_rpc_sum=0.5, infer_rpc_count=100.0)
        >>> v = server_view(b, a)
        >>> v["micro_batches"], v["mean_batch_rows"], v["mean_inference_ms"], v["mean_infer_rpc_ms"]
        (10.0, 64.0, 2.0, 5.0)
    """
    d = {k: after[k] - before.get(k, 0.0) for k in after}

    def ratio(num: float, den: float, scale: float = 1.0) -> float | None:
        return round(num / den * scale, 4) if den > 0 else None

    return {
        "micro_batches": d["batch_rows_count"],
        "mean_batch_rows": ratio(d["batch_rows_sum"], d["batch_rows_count"]),
        "mean_inference_ms": ratio(d["inference_sum"], d["inference_count"], 1000.0),
        "infer_rpcs": d["infer_rpc_count"],
        "mean_infer_rpc_ms": ratio(d["infer_rpc_sum"], d["infer_rpc_count"], 1000.0),
    }


def scrape_totals(url: str) -> dict[str, float] | None:
    """:func:`metric_totals` of a Prometheus endpoint; None when it does not answer."""
    try:
        return metric_totals(scrape(url))
    except OSError:
        return None


# --- one point -----------------------------------------------------------------


@dataclass
class Calls:
    """What happened to every call of a point (times in s after the point's start)."""

    started: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    code: list[str] = field(default_factory=list)


async def closed_loop(
    calls: Sequence[Callable[..., Any]],
    payloads: Sequence[bytes],
    *,
    concurrency: int,
    metadata: tuple[tuple[str, str], ...],
    warmup_s: float,
    duration_s: float,
    deadline_s: float,
) -> tuple[Calls, float]:
    """``concurrency`` callers, each calling again as soon as answered, until the window ends.

    Returns:
        Every call, and the client's CPU seconds over the point.
    """
    record = Calls()
    perf = time.perf_counter
    t0 = perf()
    end = warmup_s + duration_s
    cpu0 = time.process_time()

    async def caller(k: int) -> None:
        call = calls[k % len(calls)]
        i = k
        while (started := perf() - t0) < end:
            payload = payloads[i % len(payloads)]
            i += 1
            try:
                await call(payload, timeout=deadline_s, metadata=metadata)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            record.started.append(started)
            record.done.append(perf() - t0)
            record.code.append(code)

    await asyncio.gather(*(caller(k) for k in range(concurrency)))
    return record, time.process_time() - cpu0


def summarize_point(
    record: Calls, *, rows: int, warmup_s: float, duration_s: float, cpu_s: float
) -> dict[str, Any]:
    """Requests/s, rows/s and latency of the calls that finished inside the window.

    Examples:
        >>> rec = Calls([0.0, 0.5, 1.0, 1.5], [0.4, 0.9, 1.4, 2.6], ["OK", "OK", "OK", "OK"])
        >>> s = summarize_point(rec, rows=10, warmup_s=0.5, duration_s=1.5, cpu_s=0.2)
        >>> (s["ok"], s["requests_per_s"], s["rows_per_s"], s["errors"])
        (2, 1.333, 13.3, {})
    """
    done = np.asarray(record.done)
    started = np.asarray(record.started)
    codes = np.asarray(record.code, dtype=object)
    inside = (done >= warmup_s) & (done < warmup_s + duration_s)
    ok = inside & (codes == "OK")
    errors: dict[str, int] = {}
    for code in codes[inside & (codes != "OK")].tolist():
        errors[code] = errors.get(code, 0) + 1
    n_ok = int(ok.sum())
    wall = max(float(done.max()) if len(done) else 0.0, warmup_s + duration_s)
    return {
        "calls": len(done),
        "ok": n_ok,
        "errors": errors,
        "requests_per_s": round(n_ok / duration_s, 3),
        "rows_per_s": round(n_ok * rows / duration_s, 1),
        "latency": latency_summary((done - started)[ok].tolist()),
        "client_cores": round(cpu_s / wall, 3) if wall > 0 else None,
    }


# --- the run -------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


async def wait_ready(
    channel: grpc.aio.Channel, model: str, timeout_s: float, server_pid: int | None
) -> float:
    """Wait for health SERVING and the model ready; seconds waited.

    Raises:
        TimeoutError: not ready in time.
        RuntimeError: ``server_pid`` exited meanwhile.
    """
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    oip = pb_grpc.GRPCInferenceServiceStub(channel)
    t0 = time.monotonic()
    last = "no answer"
    while True:
        if server_pid is not None:
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                raise RuntimeError(f"server process {server_pid} exited") from None
        try:
            status = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            ready = await oip.ModelReady(pb.ModelReadyRequest(name=model), timeout=1)
            if status.status == health_pb2.HealthCheckResponse.SERVING and ready.ready:
                return round(time.monotonic() - t0, 2)
            last = f"health {status.status}, model ready {ready.ready}"
        except grpc.aio.AioRpcError as exc:
            last = exc.code().name
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"not ready after {timeout_s} s ({last})")
        await asyncio.sleep(0.25)


async def auth_check(
    oip: pb_grpc.GRPCInferenceServiceStub, model: str, metadata: tuple[tuple[str, str], ...]
) -> tuple[dict[str, str], pb.ModelMetadataResponse]:
    """ModelMetadata without a token (must be refused), then with it."""
    request = pb.ModelMetadataRequest(name=model)
    try:
        await oip.ModelMetadata(request, timeout=5)
        anonymous = "OK"
    except grpc.aio.AioRpcError as exc:
        anonymous = exc.code().name
    meta = await oip.ModelMetadata(request, timeout=5, metadata=metadata)
    return {"without_token": anonymous, "with_token": "OK"}, meta


async def probe(
    oip: pb_grpc.GRPCInferenceServiceStub,
    request: pb.ModelInferRequest,
    metadata: tuple[tuple[str, str], ...],
    deadline_s: float,
) -> tuple[npt.NDArray[np.float32], float, str]:
    """One call: its scores, latency (s) and answering version; the shape is checked.

    Raises:
        ValueError: the answer is not one FP32 score per row.
    """
    n = request.inputs[0].shape[0]
    t = time.perf_counter()
    reply = await oip.ModelInfer(request, timeout=deadline_s, metadata=metadata)
    took = time.perf_counter() - t
    if len(reply.outputs) != 1 or list(reply.outputs[0].shape) != [n, 1]:
        raise ValueError(f"{n} rows: answer shape {[list(o.shape) for o in reply.outputs]}")
    scores = np.frombuffer(reply.raw_output_contents[0], dtype="<f4")
    if scores.size != n or not np.isfinite(scores).all():
        raise ValueError(f"{n} rows: {scores.size} scores, finite: {np.isfinite(scores).all()}")
    return scores, took, reply.model_version


def point_budget(
    remaining_s: float, points_left: int, warmup_s: float, duration_s: float, min_duration_s: float
) -> float | None:
    """The measured seconds this point gets, or None when not even a short one fits.

    The points left share the time left equally (each also pays its warm-up and
    ~0.25 s of drain), but none gets less than ``min_duration_s``: late points
    shrink first, and are skipped only once a minimal point no longer fits.

    Examples:
        >>> point_budget(30.0, 4, 0.5, 2.5, 0.5), point_budget(6.0, 4, 0.5, 2.5, 0.5)
        (2.5, 0.75)
        >>> point_budget(3.0, 4, 0.5, 2.5, 0.5), point_budget(1.0, 4, 0.5, 2.5, 0.5)
        (0.5, None)
    """
    if remaining_s < warmup_s + min_duration_s + 0.25:
        return None
    share = remaining_s / max(points_left, 1) - warmup_s - 0.25  # the drain
    return round(max(min_duration_s, min(duration_s, share)), 3)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Checks, probes and the grid; the result as a JSON-able dict."""
    token = args.token or read_token(args.token_file, args.role)
    metadata = bearer_metadata(token)
    options = [("grpc.max_receive_message_length", 64 << 20)]
    channels = open_aio_channels(args.target, args.channels, options=options)
    result: dict[str, Any] = {
        "target": args.target,
        "model": args.model,
        "percentile_method": PERCENTILE_METHOD,
        "client": {
            "python": platform.python_version(),
            "grpc": grpc.__version__,
            "channels": args.channels,
            "host_cpus": os.cpu_count(),
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "points": [],
        "skipped": [],
        "complete": False,
    }

    def save() -> None:  # after every point: a run cut short keeps what it measured
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=1) + "\n")

    try:
        main = channels[0]
        if args.wait_ready_s > 0:
            result["waited_ready_s"] = await wait_ready(
                main, args.model, args.wait_ready_s, args.server_pid
            )
        oip = pb_grpc.GRPCInferenceServiceStub(main)
        result["auth"], meta = await auth_check(oip, args.model, metadata)
        input_name, width = meta.inputs[0].name, int(meta.inputs[0].shape[1])
        result["metadata"] = {"versions": list(meta.versions), "input": input_name, "width": width}
        if args.rows_file is not None:
            rows = np.load(args.rows_file).astype(np.float32)
            if rows.ndim != 2 or rows.shape[1] != width:
                raise SystemExit(f"{args.rows_file}: shape {rows.shape}, the model takes {width}")
        else:
            rows = seeded_rows(width)
        result["rows_source"] = str(args.rows_file or "seeded")
        sizes, concurrencies = _ints(args.rows_per_request), _ints(args.concurrency)
        payloads: dict[int, list[bytes]] = {}
        single_s: dict[int, float] = {}
        for n in sizes:
            requests = [
                infer_request(args.model, input_name, request_rows(rows, n, v))
                for v in range(VARIANTS)
            ]
            try:
                scores, _, version = await probe(oip, requests[0], metadata, args.deadline_s)
                took = [
                    (await probe(oip, requests[0], metadata, args.deadline_s))[1] for _ in range(3)
                ]
            except (grpc.aio.AioRpcError, ValueError) as exc:
                detail = (
                    f"{exc.code().name}: {exc.details()}"
                    if isinstance(exc, grpc.aio.AioRpcError)
                    else str(exc)
                )
                result["skipped"].append({"rows_per_request": n, "reason": f"probe: {detail}"})
                continue
            single_s[n] = float(np.median(took))
            result.setdefault("probes", {})[str(n)] = {
                "version": version,
                "single_call_ms": round(single_s[n] * 1000, 3),
                "score_mean": float(scores.mean()),
            }
            if args.scores_dir is not None:
                args.scores_dir.mkdir(parents=True, exist_ok=True)
                np.save(args.scores_dir / f"scores_rows{n}.npy", scores)
            payloads[n] = [r.SerializeToString() for r in requests]
        calls = [
            c.unary_unary(MODEL_INFER, request_serializer=None, response_deserializer=None)
            for c in channels
        ]
        save()
        grid = [(c, n) for n in sizes if n in payloads for c in concurrencies]
        t_grid = time.monotonic()
        for index, (concurrency, n) in enumerate(grid):
            point: dict[str, Any] = {"concurrency": concurrency, "rows_per_request": n}
            window = args.duration_s
            if args.budget_s is not None:
                remaining = args.budget_s - (time.monotonic() - t_grid)
                window = point_budget(
                    remaining, len(grid) - index, args.warmup_s, args.duration_s,
                    args.min_duration_s,
                )  # fmt: skip
                if window is None:
                    result["skipped"].append({**point, "reason": "time budget spent"})
                    continue
            if single_s[n] * concurrency > window:
                reason = (
                    f"one call of {n} rows takes {single_s[n] * 1000:.1f} ms: "
                    f"{concurrency} of them exceed the {window} s window"
                )
                result["skipped"].append({**point, "reason": reason})
                continue
            before = scrape_totals(args.metrics_url) if args.metrics_url else None
            record, cpu_s = await closed_loop(
                calls,
                payloads[n],
                concurrency=concurrency,
                metadata=metadata,
                warmup_s=args.warmup_s,
                duration_s=window,
                deadline_s=args.deadline_s,
            )
            after = scrape_totals(args.metrics_url) if args.metrics_url else None
            summary = summarize_point(
                record, rows=n, warmup_s=args.warmup_s, duration_s=window, cpu_s=cpu_s
            )
            point |= {"window_s": window, **summary}
            if before is not None and after is not None:
                point["server"] = server_view(before, after)
            result["points"].append(point)
            save()
            lat = summary["latency"]
            print(
                f"c={concurrency:<3} rows={n:<5} {summary['requests_per_s']:>10,.1f} req/s "
                f"{summary['rows_per_s']:>13,.0f} rows/s  p50 {lat.get('p50_ms', math.nan):8.3f} "
                f"p99 {lat.get('p99_ms', math.nan):8.3f} p99.9 {lat.get('p999_ms', math.nan):8.3f}"
                f" ms  errors {summary['errors'] or 0}  client {summary['client_cores']} cores",
                flush=True,
            )
        result["complete"] = True
    finally:
        await asyncio.gather(*(c.close() for c in channels))
        save()
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m loadtests.oip_infer_load``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="HOST:PORT (plaintext)")
    parser.add_argument("--token-file", type=Path, help='{"score": TOKEN, ...} (the scorer\'s)')
    parser.add_argument("--token", help="the bearer token itself (instead of --token-file)")
    parser.add_argument("--role", default="score", help="role whose token to read")
    parser.add_argument("--model", default="fraud-xgb")
    parser.add_argument("--rows-file", type=Path, help=".npy float32 [N, width] (default: seeded)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated callers")
    parser.add_argument("--rows-per-request", default="1,64,1024,4096", help="comma-separated")
    parser.add_argument("--warmup-s", type=float, default=0.5)
    parser.add_argument("--duration-s", type=float, default=2.5, help="measured s per point")
    parser.add_argument("--min-duration-s", type=float, default=0.5)
    parser.add_argument("--budget-s", type=float, help="the whole grid's seconds (points shrink)")
    parser.add_argument("--deadline-s", type=float, default=10.0, help="per call")
    parser.add_argument("--channels", type=int, default=1, help="connections (round robin)")
    parser.add_argument("--metrics-url", help="the scorer's Prometheus endpoint")
    parser.add_argument("--scores-dir", type=Path, help="keep each probe's scores (.npy)")
    parser.add_argument("--wait-ready-s", type=float, default=0.0, help="wait for SERVING first")
    parser.add_argument("--server-pid", type=int, help="stop waiting if this process exits")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    if args.token is None and args.token_file is None:
        parser.error("give --token-file or --token")
    if args.channels < 1:
        parser.error("--channels must be >= 1")
    result = asyncio.run(run(args))
    if args.json is None:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
