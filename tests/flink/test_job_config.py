"""The feature job's flags: parsed, checked, and what Flink is told (no JVM)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from services.stack.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))  # flink_jobs is a directory of the repository, not installed
from flink_jobs.config import FeatureJobConfig, parse_args
from flink_jobs.feature_job import flink_configuration

REQUIRED = ["--bootstrap-servers", "kafka:29092", "--redis-port", "6379", "--state-dir",
            "/var/lib/riskstream/flink", "--jars", "/opt/k.jar", "--metrics-port", "0"]  # fmt: skip


def test_parallelism_defaults_to_one_slot() -> None:
    job = parse_args(REQUIRED, env={})
    assert job.parallelism == 1
    options = flink_configuration(job, restore_from=None)
    assert options["parallelism.default"] == "1"
    assert options["taskmanager.numberOfTaskSlots"] == "1"


def test_parallelism_flag_sets_flink_parallelism_and_local_slots() -> None:
    job = parse_args([*REQUIRED, "--parallelism", "4"], env={})
    assert job.parallelism == 4
    options = flink_configuration(job, restore_from=None)
    assert options["parallelism.default"] == "4"
    assert options["taskmanager.numberOfTaskSlots"] == "4"


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_parallelism_is_a_usage_error_naming_the_flag(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args([*REQUIRED, "--parallelism", value], env={})
    assert exit_.value.code == 2
    assert "parallelism" in capsys.readouterr().err


def test_config_refuses_a_parallelism_below_one() -> None:
    with pytest.raises(ValueError, match="parallelism"):
        FeatureJobConfig("k:1", 6379, Path("/tmp"), (), parallelism=0)


def test_online_repair_window_is_a_flag_and_zero_turns_the_repair_off() -> None:
    assert parse_args(REQUIRED, env={}).online_repair_window_s == 60
    off = parse_args([*REQUIRED, "--online-repair-window-s", "0"], env={})
    assert off.online_repair_window_s == 0
    with pytest.raises(ValueError, match="online_repair_window_s"):
        FeatureJobConfig("k:1", 6379, Path("/tmp"), (), online_repair_window_s=-1)
