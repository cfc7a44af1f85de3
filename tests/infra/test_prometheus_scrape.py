"""Prometheus, started by `riskstream up`, scrapes the services' metrics ports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from services.stack import StackConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _query(config: StackConfig, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{config.prometheus.port}/api/v1/query?" + urllib.parse.urlencode(
        {"query": promql}
    )
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_producer_metrics_reach_prometheus(running_stack: StackConfig) -> None:
    targets = _query(running_stack, 'up{job="riskstream-producer"}')
    assert targets, "the producer's metrics port must be in the scrape config"

    run = subprocess.run(
        [sys.executable, "-m", "services.cli", "produce", "--rate", "300", "--duration", "14",
         "--customers", "300", "--terminals", "600", "--seed", "3"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    deadline = time.monotonic() + 20
    result: list[dict] = []
    while time.monotonic() < deadline and not result:
        result = _query(
            running_stack,
            'max_over_time(riskstream_producer_events_total{topic="transactions"}[2m]) > 0',
        )
        time.sleep(1)
    assert result, "Prometheus never scraped a published-events counter from the producer"
    assert float(result[0]["value"][1]) > 0
