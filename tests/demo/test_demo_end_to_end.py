"""The full loop on the real components: drift → retrain request → retrain → canary → promotion.

``riskstream demo`` runs as a subprocess on its own private stack (own state
directory and ports: the shared stack is untouched): real Kafka, Redis, Prometheus,
the PyFlink feature job, the offline writer, the scorer, the controller, the drift
monitor when the stack has one, and the trainer's retrain consumer. The test
shrinks the retrain's gap to keep the stream short; everything else is the demo
as a newcomer runs it. On an idle 2-core machine this is the demo's ~10 minutes; on a
shared, loaded one (load 12-18 while it was written) the feature job and the
retrain's Feast retrieval run 2-3x slower, hence the generous timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.stack import load_stack_config
from services.stack.components import all_components

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HAS_DRIFT_MONITOR = "drift" in {c.name for c in all_components(load_stack_config({}))}


@pytest.mark.timeout(2400)
def test_drift_retrain_canary_promotion_and_the_new_model_is_better_after_the_drift(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RISKSTREAM_", "XDG_CACHE"))}
    env |= {
        "RISKSTREAM_DEMO_RETRAIN_GAP_DAYS": "2",
        "RISKSTREAM_DEMO_TIMEOUT_S": "2200",
        "RISKSTREAM_DEMO_AFTER_PROMOTION_REQUESTS": "200",
    }
    report, result_file = tmp_path / "report.html", tmp_path / "result.json"
    home = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", "--report", str(report),
         "--json", str(result_file), "--home", str(home)],
        env=env, capture_output=True, text=True, timeout=2350, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    result = json.loads(result_file.read_text())
    steps = [what for _, what in result["milestones"]]

    # Drift → a retrain request, after the drift began, from the monitor when there is one.
    assert result["detected_day"] is not None and result["detected_day"] >= result["drift_day"]
    if HAS_DRIFT_MONITOR:
        assert "riskstream demo" not in result["drift_source"], result["drift_source"]
        assert result["evidence"], "the monitor's request names its evidence"
    # → the trainer's canary → the controller's promotion, in that order.
    prefixes = ("drift injected", "retrain requested", "labels now cover", "canary ",
                "controller promoted")  # fmt: skip
    order = [next(i for i, s in enumerate(steps) if s.startswith(p)) for p in prefixes]
    assert order == sorted(order), steps
    assert result["promoted"] is True
    # The new model is better than the old one on the same post-drift rows ...
    comparison = result["comparison"]
    assert comparison["new_ap"] > comparison["old_ap"], comparison
    # ... and the client saw both: the old model before and after the drift, the new after.
    versions = {v["version"]: v for v in result["summary"]["versions"]}
    old, new = versions[comparison["old_version"]], versions[comparison["new_version"]]
    assert old["requests"]["pre-drift"] > 1000 and old["requests"]["post-drift"] > 1000
    assert new["requests"]["post-drift"] >= 200
    assert old["average_precision"]["post-drift"] < old["average_precision"]["pre-drift"]
    # The report is written and self-contained; the private stack is gone.
    html = report.read_text()
    assert html.count("<svg") == 4 and "controller promoted" in html
    assert "stack stopped" in out
    assert not list(home.rglob("*.pid")), "every process of the private stack is stopped"
