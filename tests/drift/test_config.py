"""RISKSTREAM_DRIFT_*: typed, unknown keys and bad ranges are errors, the level follows."""

from __future__ import annotations

import pytest

from services.common.errors import ConfigError
from services.drift.config import DriftConfig


def test_settings_from_the_environment() -> None:
    config = DriftConfig.from_env({"RISKSTREAM_DRIFT_WINDOW_ROWS": "500",
                                   "RISKSTREAM_DRIFT_MIN_WINDOW_ROWS": "100"})  # fmt: skip
    assert (config.window_rows, config.min_window_rows) == (500, 100)
    assert config.metrics_port == 9104  # infra/local/stack.toml
    assert config.window_level == pytest.approx((0.001 / 2) ** 0.5)


@pytest.mark.parametrize(
    "env",
    [
        {"RISKSTREAM_DRIFT_WINDOWROWS": "5"},
        {"RISKSTREAM_DRIFT_WINDOW_ROWS": "x"},
        {"RISKSTREAM_DRIFT_PERSISTENCE_K": "4"},
        {"RISKSTREAM_DRIFT_FALSE_ALARM_RATE": "1.5"},
        {"RISKSTREAM_DRIFT_OFFSET_RESET": "middle"},
        {"RISKSTREAM_DRIFT_IGNORE_FEATURES": "tx_is_weekend,tx_is_nite"},
        {"RISKSTREAM_DRIFT_REPORT_ONLY_FEATURES": "__scores__"},
        {"RISKSTREAM_DRIFT_REPORT_ONLY_FEATURES": "__score__,tx_is_night"},
    ],
)
def test_bad_settings_are_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        DriftConfig.from_env(env)


def test_column_lists_take_feature_names_and_the_score() -> None:
    config = DriftConfig.from_env({"RISKSTREAM_DRIFT_IGNORE_FEATURES": "",
                                   "RISKSTREAM_DRIFT_REPORT_ONLY_FEATURES":
                                   "__score__, card_tx_count_1d"})  # fmt: skip
    assert config.report_only_features == "__score__, card_tx_count_1d"
    with pytest.raises(ConfigError, match=r"\['tx_is_nite'\] are not features"):
        DriftConfig.from_env({"RISKSTREAM_DRIFT_IGNORE_FEATURES": "tx_is_nite"})
