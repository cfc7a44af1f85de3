"""Settings of the transaction simulator.

One frozen class, :class:`SimulatorConfig`, validated on construction. Amounts are in
major units of ``currency`` (euros by default); distances are in units of the 100 x 100
map on which the Fraud Detection Handbook places customers and terminals; durations are
:class:`~datetime.timedelta` and instants are UTC :class:`~datetime.datetime`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.common.errors import ConfigError

_DAY = timedelta(days=1)
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_MCC = re.compile(r"[0-9]{4}")
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*(d|h|m|s)\s*")
_DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


@dataclasses.dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything that determines a simulated stream: same config, same stream.

    Defaults reproduce the Fraud Detection Handbook's dataset (chapter 3) plus card
    testing; drift is off unless ``drift_at`` is set.

    Attributes:
        seed: seed of every random draw (non-negative integer).
        n_customers: number of cards.
        n_terminals: number of terminals (one merchant each).
        start: first simulated instant; UTC midnight, the start of day 0.
        radius: a customer uses the terminals closer than this, in map units (the
            map is 100 x 100).
        label_delay: time from a transaction to its label.
        currency: ISO 4217 code of every amount.
        home_country: ISO 3166-1 alpha-2 code of the terminals that are not abroad.
        foreign_terminal_share: share of terminals located abroad, 0..1.
        ecommerce_terminal_share: share of terminals that are remote merchants
            (e-commerce, a few mail/telephone order), 0..1.
        contactless_share: probability that a card-present payment up to
            ``contactless_limit`` is contactless, 0..1.
        contactless_limit: largest contactless amount, in ``currency``.
        amount_threshold: scenario 1, every amount above it is fraud, in ``currency``;
            after the drift it is multiplied by ``drift_amount_multiplier`` like the
            amounts, so the scenario keeps its rate.
        compromised_terminals_per_day: scenario 2, terminals compromised each day.
        compromised_terminal_days: scenario 2, days a terminal stays compromised
            (every transaction on it is fraud), counting the day it is picked.
        leaked_cards_per_day: scenario 3, cards leaked each day.
        leaked_card_days: scenario 3, days a card stays leaked, counting the day
            it is picked.
        leaked_card_fraud_share: scenario 3, share of a leaked card's transactions
            that are fraud, 0..1.
        leaked_card_amount_multiplier: scenario 3, factor on the amount of a
            fraudulent transaction of a leaked card.
        card_testing_bursts_per_day: scenario 4, mean number of card-testing bursts
            a day (Poisson); 0 turns card testing off.
        card_testing_tx_per_burst: scenario 4, (min, max) transactions in a burst,
            drawn uniformly, inclusive.
        card_testing_max_duration: scenario 4, longest time from a burst's first
            to its last transaction.
        card_testing_amount_range: scenario 4, (min, max) amount of a card-testing
            transaction, uniform, in ``currency``.
        drift_at: offset from ``start`` at which the drift begins, or None for no drift.
        drift_amount_multiplier: after the drift, factor on every regular amount
            (customers spend this much more) and on ``amount_threshold``.
        drift_fraud_cards_per_day: after the drift, cards a day hit by the new
            fraud pattern (night-time e-commerce at a new kind of merchant abroad).
        drift_fraud_tx_per_card: (min, max) new-pattern transactions per hit card,
            uniform, inclusive.
        drift_fraud_amount_range: (min, max) amount of a new-pattern transaction,
            uniform, in ``currency``.
        drift_fraud_night_end: new-pattern transactions fall in [00:00, this) UTC.
        drift_fraud_mcc: merchant category (ISO 18245) of the new-pattern merchants.
        drift_fraud_country: country of the new-pattern merchants.
        drift_fraud_terminals: number of new-pattern merchants (terminals); their
            ids follow the regular terminals' ids.
    """

    seed: int = 0
    n_customers: int = 5000
    n_terminals: int = 10000
    start: datetime = datetime(2018, 4, 1, tzinfo=UTC)
    radius: float = 5.0
    label_delay: timedelta = timedelta(days=7)
    currency: str = "EUR"
    home_country: str = "BE"
    foreign_terminal_share: float = 0.05
    ecommerce_terminal_share: float = 0.10
    contactless_share: float = 0.6
    contactless_limit: float = 50.0
    amount_threshold: float = 220.0
    compromised_terminals_per_day: int = 2
    compromised_terminal_days: int = 28
    leaked_cards_per_day: int = 3
    leaked_card_days: int = 14
    leaked_card_fraud_share: float = 1 / 3
    leaked_card_amount_multiplier: float = 5.0
    card_testing_bursts_per_day: float = 1.0
    card_testing_tx_per_burst: tuple[int, int] = (5, 20)
    card_testing_max_duration: timedelta = timedelta(minutes=5)
    card_testing_amount_range: tuple[float, float] = (0.5, 5.0)
    drift_at: timedelta | None = None
    drift_amount_multiplier: float = 1.6
    drift_fraud_cards_per_day: int = 5
    drift_fraud_tx_per_card: tuple[int, int] = (1, 4)
    drift_fraud_amount_range: tuple[float, float] = (20.0, 200.0)
    drift_fraud_night_end: timedelta = timedelta(hours=6)
    drift_fraud_mcc: str = "7995"
    drift_fraud_country: str = "MT"
    drift_fraud_terminals: int = 5

    def __post_init__(self) -> None:
        self._check_population()
        self._check_merchants()
        self._check_scenarios()
        self._check_drift()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SimulatorConfig:
        """Builds a config from a mapping (a parsed TOML table, CLI options).

        Durations may be given as :class:`~datetime.timedelta`, a number of seconds or
        a string such as ``"7d"``, ``"36h"``, ``"5m"``, ``"30s"``; ``start`` as a
        :class:`~datetime.datetime` or an ISO 8601 string; pairs as any two-item
        sequence.

        Args:
            values: field name to value; omitted fields keep their defaults.

        Returns:
            The validated config.

        Raises:
            ConfigError: on an unknown key or an invalid value; the message names
                the field.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown simulator setting(s): {', '.join(unknown)}")
        kwargs = {
            name: _coerce(name, str(fields[name].type), value) for name, value in values.items()
        }
        return cls(**kwargs)

    @property
    def drift_start(self) -> datetime | None:
        """The instant the drift begins, or None without drift."""
        return None if self.drift_at is None else self.start + self.drift_at

    # Validation, one group of fields at a time.

    def _check_population(self) -> None:
        _int_at_least(self, "seed", 0)
        _int_at_least(self, "n_customers", 1)
        _int_at_least(self, "n_terminals", 1)
        if not isinstance(self.start, datetime) or self.start.utcoffset() != timedelta(0):
            raise ConfigError("start: must be a timezone-aware UTC datetime")
        if (self.start.hour, self.start.minute, self.start.second, self.start.microsecond) != (
            0,
            0,
            0,
            0,
        ):
            raise ConfigError("start: must be midnight UTC (the start of day 0)")
        _number_in(self, "radius", 0.0, math.inf, low_open=True)
        _duration_at_least(self, "label_delay", timedelta(0))

    def _check_merchants(self) -> None:
        _code(self, "currency", _CURRENCY, "an ISO 4217 code such as EUR")
        _code(self, "home_country", _COUNTRY, "an ISO 3166-1 alpha-2 code such as BE")
        for name in ("foreign_terminal_share", "ecommerce_terminal_share", "contactless_share"):
            _number_in(self, name, 0.0, 1.0)
        _number_in(self, "contactless_limit", 0.0, math.inf)

    def _check_scenarios(self) -> None:
        _number_in(self, "amount_threshold", 0.0, math.inf, low_open=True)
        _int_at_least(self, "compromised_terminals_per_day", 0)
        if self.compromised_terminals_per_day > self.n_terminals:
            raise ConfigError("compromised_terminals_per_day: larger than n_terminals")
        _int_at_least(self, "compromised_terminal_days", 1)
        _int_at_least(self, "leaked_cards_per_day", 0)
        if self.leaked_cards_per_day > self.n_customers:
            raise ConfigError("leaked_cards_per_day: larger than n_customers")
        _int_at_least(self, "leaked_card_days", 1)
        _number_in(self, "leaked_card_fraud_share", 0.0, 1.0)
        _number_in(self, "leaked_card_amount_multiplier", 0.0, math.inf, low_open=True)
        _number_in(self, "card_testing_bursts_per_day", 0.0, math.inf)
        _int_range(self, "card_testing_tx_per_burst", 1)
        _duration_at_least(self, "card_testing_max_duration", timedelta(seconds=1))
        if self.card_testing_max_duration >= _DAY:
            raise ConfigError("card_testing_max_duration: must be shorter than a day")
        _amount_range(self, "card_testing_amount_range")
        remote = round(self.ecommerce_terminal_share * self.n_terminals)
        if self.card_testing_bursts_per_day > 0 and remote == 0:
            raise ConfigError(
                "card_testing_bursts_per_day: card testing needs e-commerce terminals; "
                "raise ecommerce_terminal_share or set this to 0"
            )

    def _check_drift(self) -> None:
        if self.drift_at is not None:
            _duration_at_least(self, "drift_at", timedelta(0))
        _number_in(self, "drift_amount_multiplier", 0.0, math.inf, low_open=True)
        _int_at_least(self, "drift_fraud_cards_per_day", 0)
        if self.drift_fraud_cards_per_day > self.n_customers:
            raise ConfigError("drift_fraud_cards_per_day: larger than n_customers")
        _int_range(self, "drift_fraud_tx_per_card", 1)
        _amount_range(self, "drift_fraud_amount_range")
        _duration_at_least(self, "drift_fraud_night_end", timedelta(seconds=1))
        if self.drift_fraud_night_end > _DAY:
            raise ConfigError("drift_fraud_night_end: must be at most 24 hours")
        _code(self, "drift_fraud_mcc", _MCC, "a four-digit ISO 18245 merchant category")
        _code(self, "drift_fraud_country", _COUNTRY, "an ISO 3166-1 alpha-2 code")
        _int_at_least(self, "drift_fraud_terminals", 1)


def _int_at_least(config: SimulatorConfig, name: str, low: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"{name}: must be >= {low}, got {value}")


def _number_in(
    config: SimulatorConfig, name: str, low: float, high: float, *, low_open: bool = False
) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{name}: must be a number, got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or value > high or math.isinf(value):
        bound = f"> {low}" if low_open else f">= {low}"
        upper = "" if math.isinf(high) else f" and <= {high}"
        raise ConfigError(f"{name}: must be finite, {bound}{upper}, got {value}")


def _duration_at_least(config: SimulatorConfig, name: str, low: timedelta) -> None:
    value = getattr(config, name)
    if not isinstance(value, timedelta):
        raise ConfigError(f"{name}: must be a timedelta, got {value!r}")
    if value < low:
        raise ConfigError(f"{name}: must be >= {low}, got {value}")


def _int_range(config: SimulatorConfig, name: str, low: int) -> None:
    value = getattr(config, name)
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
    ):
        raise ConfigError(f"{name}: must be a (min, max) pair of integers, got {value!r}")
    if not low <= value[0] <= value[1]:
        raise ConfigError(f"{name}: need {low} <= min <= max, got {value}")


def _amount_range(config: SimulatorConfig, name: str) -> None:
    value = getattr(config, name)
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)
    ):
        raise ConfigError(f"{name}: must be a (min, max) pair of amounts, got {value!r}")
    if not (math.isfinite(value[0]) and math.isfinite(value[1]) and 0 <= value[0] <= value[1]):
        raise ConfigError(f"{name}: need finite 0 <= min <= max, got {value}")


def _code(config: SimulatorConfig, name: str, pattern: re.Pattern[str], what: str) -> None:
    value = getattr(config, name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"{name}: must be {what}, got {value!r}")


def _coerce(name: str, annotation: str, value: Any) -> Any:
    """Converts a mapping value to the field's type; validation comes afterwards."""
    if "timedelta" in annotation:
        if value is None and "None" in annotation:
            return None
        return _parse_duration(name, value)
    if annotation == "datetime" and isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{name}: not an ISO 8601 datetime: {value!r}") from None
    if annotation.startswith("tuple") and isinstance(value, list | tuple):
        return tuple(value)
    return value


def _parse_duration(name: str, value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match:
            return timedelta(**{_DURATION_UNITS[match.group(2)]: float(match.group(1))})
    raise ConfigError(f"{name}: not a duration (timedelta, seconds, or e.g. '7d'): {value!r}")


#: Where ``../shared/data/fdh`` is expected beside the repository, then the
#: machine-wide copy these machines mount.
_FDH_CANDIDATES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fdh" / "transactions.csv.gz",
    Path("/work/shared/data/fdh/transactions.csv.gz"),
)


def handbook_dataset_path(env: Mapping[str, str] | None = None) -> Path:
    """The Fraud Detection Handbook's transactions CSV (1.75M rows).

    ``$RISKSTREAM_FDH_PATH`` wins; otherwise ``../shared/data/fdh/transactions.csv.gz``
    beside the repository, else the machine-wide ``/work/shared`` copy (the first that
    exists; the first candidate when none does, so errors name the expected place).
    """
    env = os.environ if env is None else env
    if "RISKSTREAM_FDH_PATH" in env:
        return Path(env["RISKSTREAM_FDH_PATH"])
    return next((p for p in _FDH_CANDIDATES if p.is_file()), _FDH_CANDIDATES[0])
