"""The demo's closing summary (terminal text) and its self-contained HTML report.

A pure kernel: numbers in, text out. The HTML holds every plot as inline SVG
(:mod:`services.demo.charts`), so the file can be mailed or opened offline.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from services.demo.charts import bar_chart, line_chart, timeline_chart
from services.demo.summary import PHASES, SCORE_BINS, Summary


@dataclass(frozen=True)
class Evidence:
    """One line of the drift monitor's evidence (from the RetrainRequest)."""

    feature: str
    test: str
    statistic: float
    p_value: float
    psi: float


@dataclass(frozen=True)
class HoldoutComparison:
    """Old and new model on the same post-drift rows: the retrain's holdout.

    Attributes:
        old_version: the champion before the retrain.
        new_version: the retrained version.
        old_ap: the old model's average precision on those rows.
        new_ap: the new model's.
        window: the holdout's event-time window, as the model card states it.
    """

    old_version: str
    new_version: str
    old_ap: float
    new_ap: float
    window: str


@dataclass(frozen=True)
class DemoResult:
    """Everything the demo reports.

    Attributes:
        summary: the built-in client's numbers.
        milestones: (seconds since start, what happened), in order.
        scored_from_day: first scored simulated day.
        drift_day: the drift's first simulated day.
        detected_day: simulated day the retrain request came in (None: never).
        drift_source: who asked for the retrain (the drift monitor, or the demo).
        evidence: the request's drift evidence.
        comparison: old vs new model on the retrain's holdout (None: no retrain).
        promoted: whether the controller promoted the new model.
        wall_s: the demo's wall time, seconds.
    """

    summary: Summary
    milestones: tuple[tuple[float, str], ...]
    scored_from_day: int
    drift_day: int
    detected_day: float | None
    drift_source: str
    evidence: tuple[Evidence, ...]
    comparison: HoldoutComparison | None
    promoted: bool
    wall_s: float


def _ap(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def summary_lines(result: DemoResult) -> list[str]:
    """The closing summary, one line per fact (printed by the CLI).

    Examples:
        >>> from services.demo.summary import DemoSummary
        >>> empty = DemoResult(DemoSummary().result(), (), 26, 30, None, "none", (), None,
        ...                    False, 1.0)
        >>> summary_lines(empty)[0]
        'requests 0, latency p50 0.00 ms, p99 0.00 ms (client side)'
    """
    s = result.summary
    lines = [
        f"requests {s.requests:,}, latency p50 {s.latency_p50_ms:.2f} ms, "
        f"p99 {s.latency_p99_ms:.2f} ms (client side)",
        "decisions "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(s.decisions.items()))
        + "; routes "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(s.routes.items())),
    ]
    for v in s.versions:
        parts = [
            f"{phase} AP {_ap(v.average_precision[phase])} "
            f"({v.requests[phase]:,} requests, {v.frauds[phase]:,} frauds)"
            for phase in PHASES
            if v.requests[phase]
        ]
        lines.append(f"model {v.version}: live " + "; ".join(parts))
    c = result.comparison
    if c is not None:
        lines.append(
            f"post-drift holdout ({c.window}): old {c.old_version} AP {_ap(c.old_ap)} → "
            f"new {c.new_version} AP {_ap(c.new_ap)}"
        )
    detected = (
        "not detected"
        if result.detected_day is None
        else f"retrain requested on day {result.detected_day:.1f} by {result.drift_source}"
    )
    lines.append(
        f"drift injected on day {result.drift_day}, {detected}; "
        f"{'promoted' if result.promoted else 'NOT promoted'}; wall time {result.wall_s:.0f} s"
    )
    return lines


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def result_json(result: DemoResult) -> str:
    """The result as JSON (NaN as null), for scripts and the end-to-end test.

    Examples:
        >>> from services.demo.summary import DemoSummary
        >>> empty = DemoResult(DemoSummary().result(), (), 26, 30, None, "none", (), None,
        ...                    False, 1.0)
        >>> json.loads(result_json(empty))["summary"]["requests"]
        0
    """
    return json.dumps(_jsonable(dataclasses.asdict(result)), indent=2)


def render_html(result: DemoResult) -> str:
    """The report: the summary, four plots and the drift evidence, in one HTML file."""
    s = result.summary
    latency = bar_chart(
        "Score latency (client side)",
        [f"{edge:.2g}" for edge, _ in s.latency_histogram],
        {"requests": [count for _, count in s.latency_histogram]},
        "requests per bucket (upper edge, ms)",
    )
    bins = [f"<{edge:g}" for edge in SCORE_BINS[1:]]
    scores = bar_chart(
        "Score distribution by model version",
        bins,
        {
            v.version: [count / max(sum(v.score_histogram), 1) for count in v.score_histogram]
            for v in s.versions
        },
        "share of the version's requests",
    )
    markers: dict[str, float] = {"drift injected": float(result.drift_day)}
    if result.detected_day is not None:
        markers["retrain requested"] = result.detected_day
    days = [float(p.day) for p in s.daily]
    drift = line_chart(
        "Drift statistics by simulated day",
        days,
        {
            "amount KS vs first day": [p.amount_ks for p in s.daily],
            "flag rate": [p.flag_rate for p in s.daily],
            "fraud rate": [p.fraud_rate for p in s.daily],
        },
        "statistic",
        "simulated day",
        markers,
    )
    timeline = timeline_chart("Rollout timeline", result.milestones)
    rows = "".join(f"<li>{escape(line)}</li>" for line in summary_lines(result))
    evidence = _evidence_table(result.evidence)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<title>riskstream demo report</title>"
        "<style>body{font-family:sans-serif;max-width:720px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "</style></head><body><h1>riskstream demo</h1>"
        f"<h2>Summary</h2><ul>{rows}</ul>"
        f"<h2>Latency</h2>{latency}<h2>Scores</h2>{scores}"
        f"<h2>Drift</h2>{drift}{evidence}<h2>Rollout</h2>{timeline}"
        "</body></html>\n"
    )


def _evidence_table(evidence: Sequence[Evidence]) -> str:
    if not evidence:
        return "<p>No drift evidence was attached to the retrain request.</p>"
    rows = "".join(
        f"<tr><td>{escape(e.feature)}</td><td>{escape(e.test)}</td>"
        f"<td>{e.statistic:.4g}</td><td>{e.p_value:.3g}</td><td>{e.psi:.3g}</td></tr>"
        for e in evidence
    )
    return (
        "<table><tr><th>feature</th><th>test</th><th>statistic</th><th>p-value</th>"
        f"<th>PSI</th></tr>{rows}</table>"
    )
