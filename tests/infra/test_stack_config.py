"""The stack configuration: one file, unknown keys rejected, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import ConfigError
from services.stack import load_stack_config
from services.stack.config import DEFAULT_CONFIG_PATH


def test_every_architecture_topic_is_configured_with_its_policy() -> None:
    config = load_stack_config({})
    names = {t.name for t in config.topics}
    assert names == {
        "transactions", "transactions.dlq", "labels", "labels.dlq", "features", "scores",
        "retrain-requests", "retrain-requests.dlq", "model-updates",
    }  # fmt: skip
    assert config.topic("model-updates").cleanup_policy == "compact"
    assert config.topic("transactions").cleanup_policy == "delete"
    assert config.topic("transactions.dlq").partitions == config.topic("transactions").partitions


def test_environment_overrides_ports_and_state_dir(tmp_path: Path) -> None:
    config = load_stack_config(
        {"RISKSTREAM_HOME": str(tmp_path), "RISKSTREAM_KAFKA_PORT": "19092",
         "RISKSTREAM_REDIS_PORT": "16379"}
    )  # fmt: skip
    assert config.state_dir == tmp_path
    assert config.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert config.redis.port == 16379


def test_unknown_keys_and_bad_values_are_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "stack.toml"
    bad.write_text(
        DEFAULT_CONFIG_PATH.read_text().replace("heap_mb = 512", "heap_mb = 512\nheep = 1")
    )
    with pytest.raises(ConfigError, match="heep"):
        load_stack_config({"RISKSTREAM_STACK_CONFIG": str(bad)})
    with pytest.raises(ConfigError, match="RISKSTREAM_KAFKA_PORT"):
        load_stack_config({"RISKSTREAM_KAFKA_PORT": "ninety"})
