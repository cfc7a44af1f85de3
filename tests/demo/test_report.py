"""The demo's report kernel: summary lines and a self-contained HTML file with four plots."""

from __future__ import annotations

import re
from xml.etree import ElementTree

from services.demo.report import DemoResult, Evidence, HoldoutComparison, render_html, summary_lines
from services.demo.summary import DemoSummary, ScoredRequest


def _result() -> DemoResult:
    summary = DemoSummary()
    for i in range(300):
        version, phase = (
            ("v1", "pre-drift")
            if i < 100
            else (("v1", "post-drift") if i < 200 else ("v2", "post-drift"))
        )
        fraud = i % 10 == 0
        summary.update(ScoredRequest(
            day=26 + i / 20, phase=phase, model_version=version,
            route="canary" if version == "v2" else "champion",
            decision="decline" if fraud else "approve", score=0.8 if fraud else 0.02,
            latency_ms=1.0 + i % 5, amount=50.0 + i, is_fraud=fraud,
        ))  # fmt: skip
    return DemoResult(
        summary=summary.result(),
        milestones=((0.0, "stack up"), (95.0, "retrain requested"), (240.0, "promoted v2")),
        scored_from_day=26, drift_day=30, detected_day=31.5, drift_source="drift-monitor",
        evidence=(Evidence("amount", "ks", 0.41, 1e-30, 0.8),),
        comparison=HoldoutComparison("v1", "v2", 0.41, 0.77, "after 2026-10-20T00:00"),
        promoted=True, wall_s=301.0,
    )  # fmt: skip


def test_summary_names_versions_their_ap_and_the_holdout_comparison() -> None:
    lines = summary_lines(_result())
    assert lines[0].startswith("requests 300, latency p50 ")
    assert "decline 30" in lines[1] and "canary 100" in lines[1]
    v1 = next(line for line in lines if line.startswith("model v1"))
    assert "pre-drift AP 1.000 (100 requests, 10 frauds)" in v1 and "post-drift AP" in v1
    assert any("old v1 AP 0.410 → new v2 AP 0.770" in line for line in lines)
    assert lines[-1].startswith("drift injected on day 30, retrain requested on day 31.5 by")
    assert "promoted; wall time 301 s" in lines[-1]


def test_html_is_self_contained_with_four_plots_and_the_evidence() -> None:
    html = render_html(_result())
    assert html.count("<svg") == 4
    assert not re.search(r"""(src|href)=["']https?://""", html)  # nothing fetched
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        ElementTree.fromstring(svg)  # each plot is well-formed XML
    for title in ("Score latency", "Score distribution by model version",
                  "Drift statistics by simulated day", "Rollout timeline"):  # fmt: skip
        assert title in html
    assert "<td>amount</td><td>ks</td>" in html
    assert "promoted v2 (240 s)" in html


def test_html_escapes_what_it_did_not_write() -> None:
    result = _result()
    hostile = DemoResult(**{**result.__dict__, "milestones": ((1.0, "<script>x</script>"),)})
    assert "<script>" not in render_html(hostile)
