"""perf_analyzer: the command line the harness runs and what it reads back.

Kernel: builds argument lists and parses perf_analyzer's CSV and verbose output; it
runs nothing. perf_analyzer 2.51.0 (from ``tritonclient[all]==2.51.0``) facts relied on:

- ``-f out.csv`` writes a header line and one line per concurrency; the columns vary
  with what the server reports (Triton adds server-side queue/compute columns, other
  servers do not), so columns are read by name; latencies are in microseconds.
- ``-H KEY:VALUE`` *is* sent as gRPC metadata, although ``--help`` says "ignored for
  GRPC requests".
- When no three consecutive windows agree within ``--stability-percentage``, it exits
  non-zero *without* a CSV ("Failed to obtain stable measurement"). ``-v`` prints each
  window ("Pass [n] throughput: X infer/sec. Avg latency: Y usec"), which the harness
  uses to size a fallback run with ``--request-count`` (no stability check).
- With an explicit range end (``--concurrency-range C:C``) synchronous mode uses one
  thread per concurrent request; with ``C`` alone it would stop at ``--max-threads``
  (16).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UNSTABLE_MARK = "Failed to obtain stable measurement"
_PASS = re.compile(r"Pass \[\d+\] throughput: ([0-9.]+) infer/sec\. Avg latency: (\d+) usec")
_SECRET_HEADERS = ("authorization", "triton-grpc-protocol-triton-access-token")


@dataclass(frozen=True)
class Measurement:
    """One perf_analyzer measurement (one server, one concurrency).

    Attributes:
        concurrency: concurrent requests in flight.
        throughput: inferences per second (= requests per second with ``-b 1``).
        p50_us, p90_us, p95_us, p99_us: client-side latency percentiles, microseconds.
        extra: every other CSV column, by header (server-side stats when reported).
    """

    concurrency: int
    throughput: float
    p50_us: float
    p90_us: float
    p95_us: float
    p99_us: float
    extra: Mapping[str, str]


def parse_csv(text: str) -> list[Measurement]:
    """perf_analyzer's ``-f`` CSV, one :class:`Measurement` per data row.

    Raises:
        ValueError: a required column is missing or the file has no data row.

    Examples:
        >>> text = (
        ...     "Concurrency,Inferences/Second,Client Send,Client Recv,"
        ...     "p50 latency,p90 latency,p95 latency,p99 latency\\n"
        ...     "8,324.23,7,2,22797,36889,40458,45575\\n"
        ... )
        >>> m = parse_csv(text)[0]
        >>> (m.concurrency, m.throughput, m.p50_us, m.p99_us, m.extra["Client Send"])
        (8, 324.23, 22797.0, 45575.0, '7')
    """
    # The file may be followed by blank lines or, with --collect-metrics, a second table.
    table = text.strip().split("\n\n", 1)[0]
    rows = list(csv.DictReader(io.StringIO(table)))
    if not rows:
        raise ValueError("perf_analyzer CSV has no data row")
    named = {
        "concurrency": "Concurrency",
        "throughput": "Inferences/Second",
        "p50_us": "p50 latency",
        "p90_us": "p90 latency",
        "p95_us": "p95 latency",
        "p99_us": "p99 latency",
    }
    missing = [col for col in named.values() if col not in rows[0]]
    if missing:
        raise ValueError(f"perf_analyzer CSV lacks {', '.join(missing)}")
    out = []
    for row in rows:
        out.append(
            Measurement(
                concurrency=int(row["Concurrency"]),
                throughput=float(row["Inferences/Second"]),
                p50_us=float(row["p50 latency"]),
                p90_us=float(row["p90 latency"]),
                p95_us=float(row["p95 latency"]),
                p99_us=float(row["p99 latency"]),
                extra={k: v for k, v in row.items() if k not in named.values()},
            )
        )
    return out


def passes(verbose_output: str) -> list[tuple[float, int]]:
    """``(throughput, avg latency us)`` of every measurement window ``-v`` printed."""
    return [(float(t), int(lat)) for t, lat in _PASS.findall(verbose_output)]


def fallback_request_count(verbose_output: str, interval_ms: int, windows: int = 3) -> int | None:
    """Requests for a ``--request-count`` run of about ``windows`` measurement windows.

    Returns:
        None when the output shows no completed window to size it from.

    Examples:
        >>> out = "Pass [1] throughput: 100.5 infer/sec. Avg latency: 9000 usec (std 1 usec)."
        >>> fallback_request_count(out, interval_ms=5000)
        1507
    """
    seen = passes(verbose_output)
    if not seen:
        return None
    # The slowest window: on a shared machine throughput can halve between windows.
    slowest = min(t for t, _ in seen)
    return max(50, int(slowest * windows * interval_ms / 1000))


def _dims(values: Sequence[Any]) -> list[int]:
    return [int(v) for v in values]


def shape_args(config: Mapping[str, Any], width: int, only_input: str | None = None) -> list[str]:
    """``--shape`` arguments for one-row requests (``-b 1``) to a model with this config.

    With ``max_batch_size`` > 0 the dims exclude the batch dimension (perf_analyzer adds
    it); with 0 the first variable dimension is the batch (1 row). Any other variable
    dimension is the feature count ``width``. Inputs with fixed dims need no flag.

    Args:
        config: ``ModelConfig`` as tritonclient's ``as_json`` prints it (dims may be
            strings; ``max_batch_size`` absent means 0; may be wrapped in ``config``).
        width: features per row.
        only_input: give a shape only for this input.

    Examples:
        >>> shape_args({"input": [{"name": "input", "dims": ["-1", "24"]}]}, 24)
        ['--shape', 'input:1,24']
        >>> shape_args({"max_batch_size": 32, "input": [{"name": "x", "dims": ["24"]}]}, 24)
        []
        >>> shape_args({"max_batch_size": 8, "input": [{"name": "x", "dims": [-1]}]}, 30)
        ['--shape', 'x:30']
    """
    config = config.get("config", config)
    batched = int(config.get("max_batch_size", 0)) > 0
    out: list[str] = []
    for tensor in config.get("input", ()):
        if only_input is not None and tensor["name"] != only_input:
            continue
        dims = _dims(tensor.get("dims", ()))
        if all(d >= 0 for d in dims):
            continue
        shape, batch_pending = [], not batched
        for d in dims:
            if d >= 0:
                shape.append(d)
            elif batch_pending:
                shape.append(1)
                batch_pending = False
            else:
                shape.append(width)
        out += ["--shape", f"{tensor['name']}:{','.join(map(str, shape))}"]
    return out


def command(
    binary: str,
    *,
    url: str,
    model: str,
    concurrency: int,
    interval_ms: int,
    stability_pct: int,
    max_trials: int,
    csv_path: str,
    shapes: Sequence[str] = (),
    headers: Sequence[str] = (),
    request_count: int | None = None,
) -> list[str]:
    """The perf_analyzer argument list for one server at one concurrency.

    Examples:
        >>> command("pa", url="127.0.0.1:1", model="m", concurrency=8, interval_ms=5000,
        ...         stability_pct=25, max_trials=5, csv_path="o.csv")[:8]
        ['pa', '-i', 'grpc', '-u', '127.0.0.1:1', '-m', 'm', '-b']
    """
    cmd = [binary, "-i", "grpc", "-u", url, "-m", model, "-b", "1"]
    cmd += ["--concurrency-range", f"{concurrency}:{concurrency}"]
    cmd += ["--max-threads", str(max(16, concurrency))]
    cmd += ["--measurement-interval", str(interval_ms)]
    cmd += ["--stability-percentage", str(stability_pct), "--max-trials", str(max_trials)]
    if request_count is not None:
        cmd += ["--request-count", str(request_count)]
    cmd += ["--input-data", "random", *shapes]
    for header in headers:
        cmd += ["-H", header]
    cmd += ["-v", "-f", csv_path]
    return cmd


def redact(cmd: Sequence[str]) -> list[str]:
    """``cmd`` with the values of secret headers (bearer tokens, access tokens) hidden.

    Examples:
        >>> redact(["pa", "-H", "authorization:Bearer s3cret", "-H", "x:1"])
        ['pa', '-H', 'authorization:***', '-H', 'x:1']
    """
    out = list(cmd)
    for i, arg in enumerate(out):
        if i and out[i - 1] == "-H":
            key = arg.partition(":")[0]
            if key.strip().lower() in _SECRET_HEADERS:
                out[i] = f"{key}:***"
    return out
