"""Grafana provisioning and dashboards: valid, consistent, and every panel answered live.

No Grafana binary runs here, so the dashboards are JSON checked by these tests. The
live check brings up the system with a Prometheus that loads the checked-in rules,
drives load through every service, and asks Prometheus for every panel query.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from riskstream.v1 import events_pb2
from services.common.kafka import EventProducer, KafkaClientSettings
from services.demo.private_stack import free_ports, render_toml
from services.drift.testing import SyntheticStream, reference_of, store_reference_artifact
from services.registry.publish import KafkaModelVersionPublisher
from services.registry.store import LocalArtifactStore
from services.scoring.client import ScoringClient
from services.scoring.testing import TEST_FEATURES, ScorerProcess
from services.stack.components import PrometheusComponent
from services.stack.config import DEFAULT_CONFIG_PATH, REPO_ROOT, StackConfig
from services.stack.process import wait_until

GRAFANA = REPO_ROOT / "infra" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
#: Grafana's built-in interval variables, replaced as Grafana would for a 1 h view
#: at the 5 s scrape interval (``$__rate_interval`` is at least four scrapes).
BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in DASHBOARDS}


def _substitute(expr: str, dashboard: dict[str, Any]) -> str:
    """The query Grafana would send: built-ins, then each variable's "All" value."""
    for name, value in BUILTINS.items():
        expr = expr.replace(name, value)
    for variable in dashboard.get("templating", {}).get("list", []):
        value = variable.get("allValue") or ".*"
        expr = re.sub(rf"\$(\{{{variable['name']}\}}|{variable['name']}\b)", value, expr)
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) for every target of every panel."""
    queries = []
    for name, dashboard in _dashboards().items():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                queries.append((name, panel["title"], _substitute(target["expr"], dashboard)))
    return queries


# --- static checks -----------------------------------------------------------------


def test_the_four_dashboards_exist_with_unique_uids_and_panel_ids() -> None:
    dashboards = _dashboards()
    assert set(dashboards) == {"overview", "features", "models", "drift"}
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in dashboards.items():
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(set(ids)) == len(ids), name
        for panel in dashboard["panels"]:
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            assert panel["datasource"]["uid"] == "prometheus"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "prometheus"
                assert target["expr"].strip()


def test_each_dashboard_covers_what_the_issue_asks() -> None:
    exprs = {
        name: " ".join(t["expr"] for p in d["panels"] for t in p["targets"])
        for name, d in _dashboards().items()
    }
    needs = {
        "overview": ["scoring_rpc", "p50", "p99", "decisions", "fallbacks", "errors"],
        "features": ["features_out", "events_in", "records_lag", "late_events"],
        "models": ["model_loaded", "canary_weight", "decision_seconds_bucket",
                   "riskstream_scoring_score_bucket", "controller_decisions_total"],
        "drift": ["feature_statistic", "feature_psi", "retrain_requests_total"],
    }  # fmt: skip
    for name, words in needs.items():
        for word in words:
            assert word in exprs[name], f"{name} dashboard has no {word} query"


def test_provisioning_points_at_the_dashboards_and_the_prometheus_datasource() -> None:
    (source,) = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    assert source["url"] == "${PROMETHEUS_URL}"
    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/riskstream.yml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (as a recording rule) after variable substitution."""
    rules = {
        "groups": [
            {
                "name": "panels",
                "rules": [
                    {"record": f"panel:query_{i}", "expr": expr}
                    for i, (_, _, expr) in enumerate(panel_queries())
                ],
            }
        ]
    }
    path = tmp_path / "panels.yml"
    path.write_text(json.dumps(rules))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    run = subprocess.run([promtool, "check", "rules", str(path)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


# --- the live check -----------------------------------------------------------------


def _query(port: int, promql: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:  # a bad query answers 400 with an error body
        return json.load(exc)


def _spawn(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", module], env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _transaction(i: int) -> events_pb2.Transaction:
    tx = events_pb2.Transaction(
        transaction_id=f"dash-{uuid.uuid4().hex[:12]}", card_id=f"card-{i % 300}",
        terminal_id=f"term-{i % 97}", amount=float(5 + (i * 37) % 400), currency="EUR",
    )  # fmt: skip
    tx.event_time.GetCurrentTime()
    return tx


@pytest.fixture
def system(
    running_stack: StackConfig,
    kafka_settings: KafkaClientSettings,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    """The shared stack's Kafka, Redis, feature job and trainer, plus a champion with a
    drift reference served by a scorer, watched by a drift monitor and a rollout
    controller (private topics and ports: the shared services keep their own), all
    scraped by a Prometheus that loads infra/prometheus/rules."""
    topics = {
        "updates": make_topic("model-updates", partitions=1, dlq=False),
        "scores": make_topic("scores", partitions=3, dlq=False),
        "labels": make_topic("labels", partitions=1, dlq=False),
        "retrain": make_topic("retrain-requests", partitions=1, dlq=False),
    }
    home = tmp_path / "home"
    record = store_reference_artifact(
        LocalArtifactStore(home / "models"), reference_of(SyntheticStream(TEST_FEATURES))
    )
    KafkaModelVersionPublisher(EventProducer(kafka_settings), topic=topics["updates"]).publish(
        record
    )
    prom_port, producer_port, scoring_port, drift_port, controller_port = free_ports(5)
    bootstrap = {"RISKSTREAM_KAFKA_BOOTSTRAP": running_stack.kafka.bootstrap_servers}
    score, admin = "score-" + uuid.uuid4().hex, "admin-" + uuid.uuid4().hex
    (tmp_path / "tokens.json").write_text(json.dumps({"score": score, "admin": admin}))

    # The Prometheus that `riskstream up` would render, on private ports: the feature
    # job and the trainer are the shared stack's; the rest run here.
    ports = {**running_stack.metrics_ports, "producer": producer_port, "scoring": scoring_port,
             "drift": drift_port, "controller": controller_port}  # fmt: skip
    prom_config = dataclasses.replace(
        running_stack,
        state_dir=tmp_path / "state",
        prometheus=dataclasses.replace(running_stack.prometheus, port=prom_port),
        metrics_ports=ports,
    )
    prometheus = PrometheusComponent(prom_config)
    prometheus.process.spawn(prometheus.prepare())
    processes: list[subprocess.Popen[bytes]] = []
    scorer = None
    try:
        assert wait_until(lambda: prometheus.health().ok, timeout_s=30), prometheus.health()
        processes.append(_spawn("services.drift", {
            **bootstrap,
            "RISKSTREAM_HOME": str(home),
            "RISKSTREAM_DRIFT_MODEL_UPDATES_TOPIC": topics["updates"],
            "RISKSTREAM_DRIFT_SCORES_TOPIC": topics["scores"],
            "RISKSTREAM_DRIFT_LABELS_TOPIC": topics["labels"],
            "RISKSTREAM_DRIFT_RETRAIN_TOPIC": topics["retrain"],
            "RISKSTREAM_DRIFT_GROUP_ID": f"test-dash-{uuid.uuid4().hex[:8]}",
            "RISKSTREAM_DRIFT_OFFSET_RESET": "earliest",
            "RISKSTREAM_DRIFT_METRICS_PORT": str(drift_port),
            "RISKSTREAM_DRIFT_WINDOW_ROWS": "300",
            "RISKSTREAM_DRIFT_MIN_WINDOW_ROWS": "100",
            "RISKSTREAM_DRIFT_WINDOW_S": "10",
            "RISKSTREAM_DRIFT_TICK_INTERVAL_S": "0.5",
        }, tmp_path / "drift.log"))  # fmt: skip
        processes.append(_spawn("services.controller", {
            **bootstrap,
            "RISKSTREAM_CONTROLLER_SCORES_TOPIC": topics["scores"],
            "RISKSTREAM_CONTROLLER_LABELS_TOPIC": topics["labels"],
            "RISKSTREAM_CONTROLLER_MODEL_UPDATES_TOPIC": topics["updates"],
            "RISKSTREAM_CONTROLLER_METRICS_PORT": str(controller_port),
        }, tmp_path / "controller.log"))  # fmt: skip
        scorer = ScorerProcess({
            **bootstrap,
            "RISKSTREAM_SCORING_REDIS_URL": f"redis://127.0.0.1:{running_stack.redis.port}/0",
            "RISKSTREAM_SCORING_MODEL_UPDATES_TOPIC": topics["updates"],
            "RISKSTREAM_SCORING_SCORES_TOPIC": topics["scores"],
            "RISKSTREAM_SCORING_STATE_DIR": str(home),
            "RISKSTREAM_SCORING_TOKENS_FILE": str(tmp_path / "tokens.json"),
            "RISKSTREAM_SCORING_CARD_HASH_KEY_FILE": str(tmp_path / "card.key"),
            "RISKSTREAM_SCORING_METRICS_PORT": str(scoring_port),
        }, tmp_path / "scorer.log")  # fmt: skip
        # The producer reads its metrics port from the stack file: a copy with its own.
        stack_file = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
        stack_file["metrics_ports"]["producer"] = producer_port
        (tmp_path / "stack.toml").write_text(render_toml(stack_file))
        yield {
            "prometheus": prom_port, "scorer": scorer, "token": score, "tmp": tmp_path,
            "producer_env": {"RISKSTREAM_STACK_CONFIG": str(tmp_path / "stack.toml")},
            "processes": processes,
        }  # fmt: skip
    finally:
        if scorer is not None:
            scorer.stop()
        for process in processes:
            _stop(process)
        prometheus.process.stop(timeout_s=10)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_every_dashboard_query_returns_series_on_the_running_system(
    system: dict[str, Any],
) -> None:
    started = time.monotonic()
    tmp: Path = system["tmp"]
    # Simulated transactions through Kafka → the shared feature job (150/s, until the
    # queries are answered: a rate needs recent samples) ...
    producer_log = (tmp / "producer.log").open("ab")
    producer = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "produce", "--rate", "150", "--duration", "240",
         "--customers", "300", "--terminals", "600", "--seed", "11"],
        env={**os.environ, **system["producer_env"]},
        stdout=producer_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    # ... while requests go to the scorer (its score events feed the drift monitor and
    # the controller), with one invalid request: the error panels need an error.
    client = ScoringClient(f"127.0.0.1:{system['scorer'].port}", system["token"])
    try:
        with pytest.raises(grpc.RpcError) as invalid:
            client.score(events_pb2.Transaction())
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        deadline = time.monotonic() + 25
        i = 0
        while time.monotonic() < deadline:
            client.score(_transaction(i))
            i += 1
    finally:
        client.close()
    for process in (producer, *system["processes"]):
        assert process.poll() is None, "a process under test exited; see its log in " + str(tmp)

    queries = panel_queries()
    failures: dict[tuple[str, str, str], str] = {}

    def all_answered() -> bool:
        failures.clear()
        for dashboard, title, expr in queries:
            body = _query(system["prometheus"], expr)
            if body.get("status") != "success":
                failures[(dashboard, title, expr)] = f"error: {body.get('error')}"
            elif not body["data"]["result"]:
                failures[(dashboard, title, expr)] = "no series"
        return not failures

    # Rates need two scrapes in their window, recording rules an evaluation, drift
    # statistics a closed window: poll for up to a minute.
    try:
        answered = wait_until(all_answered, timeout_s=60, interval_s=5)
    finally:
        _stop(producer)
        producer_log.close()
    report = "\n".join(f"{d} / {t}: {why}\n    {e}" for (d, t, e), why in failures.items())
    assert answered, f"{len(failures)} of {len(queries)} panel queries failed:\n{report}"
    print(f"{len(queries)} panel queries answered in {time.monotonic() - started:.0f} s "
          f"({i} score requests)")  # fmt: skip
