"""Results of a peer run: one row per server and concurrency, as JSON and Markdown.

Kernel: no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtests.peers.perf import Measurement


@dataclass(frozen=True)
class Row:
    """One server at one concurrency.

    Attributes:
        server: peer name (``mlserver``, ``pytriton``, ``kserve``, ``riskstream``).
        concurrency: concurrent requests perf_analyzer kept in flight.
        measurement: perf_analyzer's numbers; None when the run failed.
        stable: perf_analyzer reached its stability criterion (False: the numbers come
            from the ``--request-count`` fallback).
        error: why there are no numbers, if there are none.
        command: the perf_analyzer command, secrets redacted.
        round: which round of the run (``--rounds``), from 0.
    """

    server: str
    concurrency: int
    measurement: Measurement | None
    stable: bool = True
    error: str | None = None
    command: Sequence[str] = field(default_factory=tuple)
    round: int = 0

    def to_json(self) -> dict[str, Any]:
        """Flat JSON: throughput in requests/s, latencies in milliseconds."""
        out: dict[str, Any] = {
            "server": self.server,
            "concurrency": self.concurrency,
            "round": self.round,
            "stable": self.stable,
            "error": self.error,
            "command": list(self.command),
        }
        m = self.measurement
        if m is not None:
            out |= {
                "throughput_rps": round(m.throughput, 1),
                "p50_ms": round(m.p50_us / 1000, 3),
                "p90_ms": round(m.p90_us / 1000, 3),
                "p95_ms": round(m.p95_us / 1000, 3),
                "p99_ms": round(m.p99_us / 1000, 3),
                "perf_analyzer_csv": dict(m.extra),
            }
        return out


def row_from_json(data: Mapping[str, Any]) -> Row:
    """Inverse of :meth:`Row.to_json` (to merge a later run, e.g. riskstream's row)."""
    measurement = None
    if data.get("throughput_rps") is not None:
        measurement = Measurement(
            concurrency=int(data["concurrency"]),
            throughput=float(data["throughput_rps"]),
            p50_us=float(data["p50_ms"]) * 1000,
            p90_us=float(data["p90_ms"]) * 1000,
            p95_us=float(data["p95_ms"]) * 1000,
            p99_us=float(data["p99_ms"]) * 1000,
            extra=dict(data.get("perf_analyzer_csv", {})),
        )
    return Row(
        server=str(data["server"]),
        concurrency=int(data["concurrency"]),
        measurement=measurement,
        stable=bool(data.get("stable", True)),
        error=data.get("error"),
        command=tuple(data.get("command", ())),
        round=int(data.get("round", 0)),
    )


def _fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def markdown_table(rows: Iterable[Row]) -> str:
    """The results as a Markdown table, in the order given.

    Examples:
        >>> m = Measurement(8, 493.356, 15216, 22947, 26322, 31772, {})
        >>> print(markdown_table([Row("pytriton", 8, m), Row("kserve", 8, None, error="down")]))
        | server | concurrency | throughput (req/s) | p50 (ms) | p99 (ms) |
        |---|---:|---:|---:|---:|
        | pytriton | 8 | 493.4 | 15.22 | 31.77 |
        | kserve | 8 | failed: down | | |
    """
    lines = [
        "| server | concurrency | throughput (req/s) | p50 (ms) | p99 (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        m = row.measurement
        if m is None:
            lines.append(f"| {row.server} | {row.concurrency} | failed: {row.error} | | |")
            continue
        mark = "" if row.stable else " (unstable)"
        lines.append(
            f"| {row.server} | {row.concurrency} | {_fmt(m.throughput, 1)}{mark} "
            f"| {_fmt(m.p50_us / 1000, 2)} | {_fmt(m.p99_us / 1000, 2)} |"
        )
    return "\n".join(lines)


def median_table(rows: Iterable[Row]) -> str:
    """Medians over rounds per server and concurrency, with every round's throughput.

    Servers and concurrencies keep the order of their first row; rounds without numbers
    count in ``failed``; ``*`` marks a round measured by the unstable fallback.

    Examples:
        >>> def m(t, p50, p99):
        ...     return Measurement(1, t, p50 * 1000, 0, 0, p99 * 1000, {})
        >>> rows = [Row("kserve", 1, m(500, 1.5, 7.0)), Row("kserve", 1, m(700, 1.1, 4.1), False),
        ...         Row("kserve", 1, m(600, 1.2, 5.0)), Row("kserve", 1, None, error="x")]
        >>> print(median_table(rows).splitlines()[-1])
        | kserve | 1 | 600.0 | 1.20 | 5.00 | 500, 700*, 600 | 1 |
    """
    groups: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.server, row.concurrency), []).append(row)
    lines = [
        "| server | concurrency | throughput (req/s), median | p50 (ms), median "
        "| p99 (ms), median | throughput per round | failed |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for (server, concurrency), group in groups.items():
        done = [(r, r.measurement) for r in group if r.measurement is not None]
        failed = len(group) - len(done)
        if not done:
            lines.append(f"| {server} | {concurrency} | failed | | | | {failed} |")
            continue
        per_round = ", ".join(f"{m.throughput:,.0f}{'' if r.stable else '*'}" for r, m in done)
        lines.append(
            f"| {server} | {concurrency} "
            f"| {_fmt(statistics.median(m.throughput for _, m in done), 1)} "
            f"| {_fmt(statistics.median(m.p50_us for _, m in done) / 1000, 2)} "
            f"| {_fmt(statistics.median(m.p99_us for _, m in done) / 1000, 2)} "
            f"| {per_round} | {failed} |"
        )
    return "\n".join(lines)


def scores_disagree(
    scores: Mapping[str, Sequence[float]], tolerance: float = 1e-4
) -> dict[str, float]:
    """Servers whose probe scores differ from the first server's, with the largest gap.

    Examples:
        >>> scores_disagree({"a": [0.1, 0.2], "b": [0.1, 0.2000001], "c": [0.1, 0.3]})
        {'c': 0.1}
    """
    if not scores:
        return {}
    reference_name, reference = next(iter(scores.items()))
    out = {}
    for name, values in scores.items():
        if name == reference_name:
            continue
        if len(values) != len(reference):
            out[name] = float("inf")
            continue
        gap = max((abs(a - b) for a, b in zip(values, reference, strict=True)), default=0.0)
        if gap > tolerance:
            out[name] = round(gap, 6)
    return out


def rows_json(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Every row as :meth:`Row.to_json`."""
    return [row.to_json() for row in rows]
