"""The checked-in Prometheus configuration, recording rules and alerts, checked by promtool.

``promtool`` is Debian's ``prometheus`` package (``.ci/run`` installs it). Every alert
has unit tests in ``infra/prometheus/tests/`` that see it fire and stay quiet; the
checked-in ``prometheus.yml`` scrapes what ``infra/local/stack.toml`` lists, exactly as
the configuration ``riskstream up`` renders.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from services.stack import load_stack_config
from services.stack.components import PrometheusComponent
from services.stack.config import REPO_ROOT

PROMETHEUS = REPO_ROOT / "infra" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_rule_files_and_tests_exist() -> None:
    assert {p.name for p in RULE_FILES} == {"recording.yml", "alerts.yml"}
    assert RULE_TESTS, "no promtool unit tests in infra/prometheus/tests"


def test_promtool_check_config_of_the_checked_in_file() -> None:
    run = _promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(RULE_FILES)} rule files found" in run.stdout


def test_promtool_check_config_of_the_rendered_file(tmp_path: Path) -> None:
    config = dataclasses.replace(load_stack_config({}), state_dir=tmp_path)
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(PrometheusComponent(config).scrape_config())
    run = _promtool("check", "config", str(rendered))
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_check_rules() -> None:
    run = _promtool("check", "rules", *map(str, RULE_FILES))
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    run = _promtool("test", "rules", *map(str, RULE_TESTS))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(RULE_TESTS), run.stdout


def test_a_broken_rule_test_fails_promtool(tmp_path: Path) -> None:
    """The wiring above can fail: an alert expected where none fires is reported."""
    (tmp_path / "rules").mkdir()
    for rule_file in RULE_FILES:
        shutil.copy(rule_file, tmp_path / "rules" / rule_file.name)
    broken = {
        "rule_files": ["rules/alerts.yml", "rules/recording.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": "riskstream_drift_confirmed_total", "values": "0x5"}],
                "alert_rule_test": [
                    {
                        "eval_time": "4m",
                        "alertname": "FeatureDriftConfirmed",
                        "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "broken.yml").write_text(json.dumps(broken))
    run = _promtool("test", "rules", str(tmp_path / "broken.yml"))
    assert run.returncode != 0 and "FAILED" in run.stdout + run.stderr


def _alerts() -> set[str]:
    return {
        rule["alert"]
        for group in _load(PROMETHEUS / "rules" / "alerts.yml")["groups"]
        for rule in group["rules"]
    }


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for group in _load(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = _alerts()
    assert len(alerts) >= 9
    assert alerts - firing == set(), "alerts never seen firing in a unit test"
    assert alerts - quiet == set(), "alerts never seen staying quiet in a unit test"
    assert (firing | quiet) - alerts == set(), "unit tests for alerts that do not exist"


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for group in _load(PROMETHEUS / "rules" / "alerts.yml")["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"page", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]


def _targets(doc: dict[str, Any]) -> dict[str, tuple[list[str], dict[str, str]]]:
    jobs = {}
    for job in doc["scrape_configs"]:
        (static,) = job["static_configs"]
        jobs[job["job_name"]] = (static["targets"], static.get("labels", {}))
    return jobs


def test_checked_in_targets_are_the_ports_of_stack_toml() -> None:
    config = load_stack_config({})
    jobs = _targets(_load(PROMETHEUS / "prometheus.yml"))
    expected = {
        f"riskstream-{service}": ([f"127.0.0.1:{port}"], {"service": service})
        for service, port in config.metrics_ports.items()
    }
    expected["prometheus"] = ([f"127.0.0.1:{config.prometheus.port}"], {})
    assert jobs == expected
    assert set(config.metrics_ports) == {
        "producer", "scoring", "feature_job", "drift", "trainer", "controller",
    }  # fmt: skip


def test_checked_in_config_agrees_with_the_rendered_one(tmp_path: Path) -> None:
    config = dataclasses.replace(load_stack_config({}), state_dir=tmp_path)
    rendered = json.loads(PrometheusComponent(config).scrape_config())
    checked_in = _load(PROMETHEUS / "prometheus.yml")
    assert _targets(rendered) == _targets(checked_in)
    assert rendered["global"] == checked_in["global"]
    # The rendered file names the rule files by absolute path; the checked-in one by glob.
    assert rendered["rule_files"] == [str(p) for p in RULE_FILES]
    assert checked_in["rule_files"] == ["rules/*.yml"]
