"""SimulatorConfig: validation names the field, from_mapping rejects unknown keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.common.errors import ConfigError
from services.producer import SimulatorConfig


def test_defaults_follow_the_handbook() -> None:
    config = SimulatorConfig()
    assert (config.n_customers, config.n_terminals, config.radius) == (5000, 10000, 5.0)
    assert config.label_delay == timedelta(days=7)
    assert (config.amount_threshold, config.compromised_terminals_per_day) == (220.0, 2)
    assert (config.compromised_terminal_days, config.leaked_cards_per_day) == (28, 3)
    assert (config.leaked_card_days, config.leaked_card_amount_multiplier) == (14, 5.0)
    assert config.leaked_card_fraud_share == pytest.approx(1 / 3)
    assert config.drift_at is None and config.drift_start is None
    assert config.currency == "EUR"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", -1),
        ("n_customers", 0),
        ("n_terminals", True),
        ("n_customers", 2.5),
        ("start", datetime(2018, 4, 1)),
        ("start", datetime(2018, 4, 1, 12, tzinfo=UTC)),
        ("start", datetime(2018, 4, 1, tzinfo=timezone(timedelta(hours=2)))),
        ("radius", 0.0),
        ("label_delay", timedelta(seconds=-1)),
        ("label_delay", 7),
        ("currency", "eur"),
        ("home_country", "BEL"),
        ("foreign_terminal_share", 1.5),
        ("ecommerce_terminal_share", float("nan")),
        ("contactless_limit", -1.0),
        ("amount_threshold", float("inf")),
        ("compromised_terminals_per_day", 10_001),
        ("compromised_terminal_days", 0),
        ("leaked_cards_per_day", 5001),
        ("leaked_card_fraud_share", -0.1),
        ("leaked_card_amount_multiplier", 0),
        ("card_testing_bursts_per_day", -1.0),
        ("card_testing_tx_per_burst", (20, 5)),
        ("card_testing_tx_per_burst", (0, 5)),
        ("card_testing_tx_per_burst", [5, 20]),
        ("card_testing_max_duration", timedelta(days=1)),
        ("card_testing_amount_range", (5.0, 0.5)),
        ("drift_at", timedelta(days=-1)),
        ("drift_amount_multiplier", 0.0),
        ("drift_fraud_tx_per_card", (1, 0)),
        ("drift_fraud_night_end", timedelta(hours=25)),
        ("drift_fraud_mcc", "79950"),
        ("drift_fraud_country", "Malta"),
        ("drift_fraud_terminals", 0),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        SimulatorConfig(**{field: value})  # type: ignore[arg-type]


def test_card_testing_needs_ecommerce_terminals() -> None:
    with pytest.raises(ConfigError, match=r"^card_testing_bursts_per_day: "):
        SimulatorConfig(ecommerce_terminal_share=0.0)
    SimulatorConfig(ecommerce_terminal_share=0.0, card_testing_bursts_per_day=0.0)


def test_from_mapping_coerces_durations_dates_and_pairs() -> None:
    config = SimulatorConfig.from_mapping(
        {
            "seed": 3,
            "start": "2024-01-01T00:00:00+00:00",
            "label_delay": "36h",
            "drift_at": "10d",
            "card_testing_max_duration": 120,
            "card_testing_tx_per_burst": [3, 9],
        }
    )
    assert config.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert config.label_delay == timedelta(hours=36)
    assert config.drift_start == datetime(2024, 1, 11, tzinfo=UTC)
    assert config.card_testing_max_duration == timedelta(minutes=2)
    assert config.card_testing_tx_per_burst == (3, 9)
    assert SimulatorConfig.from_mapping({"drift_at": None}).drift_at is None


def test_from_mapping_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ConfigError, match="n_cards, radius_km"):
        SimulatorConfig.from_mapping({"n_cards": 10, "radius_km": 5, "seed": 1})
    with pytest.raises(ConfigError, match=r"^label_delay: "):
        SimulatorConfig.from_mapping({"label_delay": "a week"})
    with pytest.raises(ConfigError, match=r"^start: "):
        SimulatorConfig.from_mapping({"start": "yesterday"})


def test_config_is_frozen() -> None:
    config = SimulatorConfig()
    with pytest.raises(AttributeError):
        config.seed = 1  # type: ignore[misc]
