"""Trainer settings: environment prefix, unknown keys, day arithmetic."""

from __future__ import annotations

import pytest

from services.common.errors import ConfigError
from services.trainer.config import TrainerConfig


def test_defaults_split_forty_five_days() -> None:
    config = TrainerConfig()
    assert (config.days, config.gap_days, config.train_days) == (45, 7, 17)
    assert (config.max_depths(), config.pos_weight_rules()) == ((4, 6), ("1", "sqrt"))


def test_booleans_parse_strictly() -> None:
    assert TrainerConfig.from_env({"RISKSTREAM_TRAINER_HIGH_IMPACT": "true"}).high_impact
    assert not TrainerConfig.from_env({"RISKSTREAM_TRAINER_HIGH_IMPACT": "0"}).high_impact
    with pytest.raises(ConfigError):
        TrainerConfig.from_env({"RISKSTREAM_TRAINER_HIGH_IMPACT": "maybe"})


def test_environment_then_overrides() -> None:
    env = {"RISKSTREAM_TRAINER_DAYS": "30", "RISKSTREAM_TRAINER_LEARNING_RATE": "0.2", "X": "1"}
    config = TrainerConfig.from_env(env, trees=10, seed=None)
    assert (config.days, config.learning_rate, config.trees, config.seed) == (30, 0.2, 10, 0)


@pytest.mark.parametrize(
    "env",
    [
        {"RISKSTREAM_TRAINER_DAYZ": "30"},
        {"RISKSTREAM_TRAINER_DAYS": "many"},
        {"RISKSTREAM_TRAINER_DAYS": "20"},  # nothing left to train on
        {"RISKSTREAM_TRAINER_REVIEW_RATE": "0"},
        {"RISKSTREAM_TRAINER_TREES": "0"},
        {"RISKSTREAM_TRAINER_MODEL_NAME": ""},
        {"RISKSTREAM_TRAINER_GRID_MAX_DEPTH": "4,x"},
        {"RISKSTREAM_TRAINER_GRID_SCALE_POS_WEIGHT": "-1"},
        {"RISKSTREAM_TRAINER_CALIBRATION": "magic"},
        {"RISKSTREAM_TRAINER_GATE_MAX_ECE": "2"},
    ],
)
def test_bad_settings_are_rejected(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        TrainerConfig.from_env(env)
