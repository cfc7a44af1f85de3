"""The demo's event-time plan: a retrain window wholly after the drift, nothing in the future."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import ConfigError
from services.demo.config import DemoConfig
from services.demo.timeline import SIMULATOR_EPOCH, plan_timeline

TODAY = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "config",
    [DemoConfig(), DemoConfig(retrain_gap_days=2, baseline_days=40, baseline_holdout_days=6)],
)
def test_retrain_window_lies_after_the_drift_and_the_stream_in_the_past(
    config: DemoConfig,
) -> None:
    plan = plan_timeline(config, today=TODAY)
    # At retrain_ready_day the newest label is a label delay old; the retrain reads
    # retrain_days before it: all of them after the drift.
    newest_label = plan.retrain_ready_day - config.label_delay_days
    assert newest_label - config.retrain_days > plan.drift_day
    assert plan.at(plan.horizon_day) <= TODAY
    assert plan.start.weekday() == SIMULATOR_EPOCH.weekday()
    assert plan.start.time() == datetime.min.time()
    # The scored pre-drift days are the first model's holdout days.
    assert plan.drift_day - plan.scored_from_day == config.baseline_holdout_days


def test_phases() -> None:
    plan = plan_timeline(DemoConfig(), today=TODAY)
    assert plan.phase(plan.start) == "warm-up" and not plan.scored(plan.start)
    assert plan.phase(plan.drift_start - timedelta(seconds=1)) == "pre-drift"
    assert plan.phase(plan.drift_start) == "post-drift"
    assert plan.day_of(plan.at(12.5)) == 12.5


def test_config_from_env_rejects_unknown_keys_and_bad_values() -> None:
    assert DemoConfig.from_env({"RISKSTREAM_DEMO_TREES": "50"}).trees == 50
    with pytest.raises(ConfigError, match="unknown setting"):
        DemoConfig.from_env({"RISKSTREAM_DEMO_TREEZ": "50"})
    with pytest.raises(ConfigError, match="not a int"):
        DemoConfig.from_env({"RISKSTREAM_DEMO_TREES": "many"})
    with pytest.raises(ConfigError, match="BASELINE_DAYS"):
        DemoConfig(baseline_days=15)
    with pytest.raises(ConfigError, match="CANARY_WEIGHT"):
        DemoConfig(canary_weight=0.0)
