"""Settings of the trainer: one frozen class, read from ``RISKSTREAM_TRAINER_*``.

Every field is overridable from the environment (``RISKSTREAM_TRAINER_DAYS=20``)
and from the CLI; an unknown ``RISKSTREAM_TRAINER_*`` variable is an error, so a typo
never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.errors import ConfigError
from services.feature_store.definitions import DAY, LABEL_DELAY_S

ENV_PREFIX = "RISKSTREAM_TRAINER_"


@dataclass(frozen=True)
class TrainerConfig:
    """What a baseline training run does.

    The simulated days are split in time: ``burn_in_days`` (dropped: 30-day windows
    still filling) | train | a gap of ``gap_days`` (the label delay: labels of the
    last training days are known when validation starts) | ``validation_days``.

    Attributes:
        seed: simulator seed (same seed and settings, same data and model).
        days: simulated days in all.
        n_customers: simulated cards.
        n_terminals: simulated terminals.
        burn_in_days: first days left out of training, days.
        validation_days: last days, used for calibration, thresholds and metrics.
        gap_days: days between the training and the validation rows.
        trees: boosting rounds.
        max_depth: tree depth.
        learning_rate: XGBoost ``eta``.
        scale_pos_weight: XGBoost weight of fraud rows. 1 (unweighted) by default:
            on the simulator, weighting by the class ratio lowered validation AP
            (0.64 → 0.56) and calibration restores probabilities either way.
        nthread: XGBoost threads.
        review_rate: share of validation transactions the review threshold flags, 0..1.
        decline_precision: precision the decline threshold must reach on validation.
        decline_max_rate: largest share of validation transactions declined, 0..1.
        ece_bins: equal-width bins of the expected calibration error.
        parity_tolerance: largest |p_onnx - p_xgboost| accepted, probability units.
        onnx_opset: ONNX opset of the export (the ``ai.onnx.ml`` opset follows it).
        model_name: registry name of the model.
    """

    seed: int = 0
    days: int = 40
    n_customers: int = 5000
    n_terminals: int = 10000
    burn_in_days: int = 7
    validation_days: int = 8
    gap_days: int = LABEL_DELAY_S // DAY
    trees: int = 200
    max_depth: int = 6
    learning_rate: float = 0.1
    scale_pos_weight: float = 1.0
    nthread: int = 2
    review_rate: float = 0.02
    decline_precision: float = 0.8
    decline_max_rate: float = 0.005
    ece_bins: int = 15
    parity_tolerance: float = 1e-5
    onnx_opset: int = 15
    model_name: str = "fraud-xgb"

    def __post_init__(self) -> None:
        positive = ("days", "n_customers", "n_terminals", "validation_days", "trees")
        for name in (*positive, "max_depth", "nthread", "ece_bins", "onnx_opset"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer {name}={getattr(self, name)} must be >= 1")
        for name in ("burn_in_days", "gap_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"trainer {name}={getattr(self, name)} must be >= 0")
        for name in ("review_rate", "decline_precision", "decline_max_rate"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"trainer {name}={getattr(self, name)} must be in (0, 1]")
        if not (0.0 < self.learning_rate <= 1.0 and self.parity_tolerance > 0.0):
            raise ConfigError("trainer learning_rate must be in (0, 1], parity_tolerance > 0")
        if not self.scale_pos_weight > 0.0:
            raise ConfigError("trainer scale_pos_weight must be > 0")
        if self.train_days < 1:
            raise ConfigError(
                f"trainer: {self.days} days leave no training days after burn-in "
                f"{self.burn_in_days}, gap {self.gap_days} and validation {self.validation_days}"
            )
        if not self.model_name:
            raise ConfigError("trainer model_name must not be empty")

    @property
    def train_days(self) -> int:
        """Days of training rows."""
        return self.days - self.burn_in_days - self.gap_days - self.validation_days

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainerConfig:
        """Build from field name → value (strings are converted to the field's type).

        Raises:
            ConfigError: unknown key or unparseable value.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown trainer setting(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            kind = type(getattr(cls(), name)) if name != "model_name" else str
            try:
                kwargs[name] = kind(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"trainer {name}={value!r} is not a {kind.__name__}") from exc
        return cls(**kwargs)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> TrainerConfig:
        """``RISKSTREAM_TRAINER_<FIELD>`` variables, then ``overrides`` (None skipped)."""
        values: dict[str, Any] = {
            key.removeprefix(ENV_PREFIX).lower(): value
            for key, value in env.items()
            if key.startswith(ENV_PREFIX)
        }
        values |= {k: v for k, v in overrides.items() if v is not None}
        return cls.from_mapping(values)
