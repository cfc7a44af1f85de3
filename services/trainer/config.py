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
from services.common.settings import LOOPBACK, BindHost, RedisUrl, env_settings
from services.feature_store.definitions import DAY, LABEL_DELAY_S

ENV_PREFIX = "RISKSTREAM_TRAINER_"
CALIBRATIONS = ("auto", "platt", "isotonic", "identity")


@dataclass(frozen=True)
class TrainerConfig:
    """What a training run does.

    Rows are split in event time, newest last: (burn-in) | train | a gap of
    ``gap_days`` (the label delay: labels of the last training days are known when
    validation starts) | ``validation_days`` | ``holdout_days``. Validation rows choose
    the hyper-parameters (a small grid), the calibration map and the thresholds;
    the holdout rows are touched once, by the candidate and the champion alike, for
    the validation gate and the model card. Simulated data (``riskstream
    train-baseline``) spans ``days`` days and drops the first ``burn_in_days``
    (30-day windows still filling); offline-store data (``riskstream train``) ends
    where its labels end and starts ``train_days`` before the gap.

    Attributes:
        seed: simulator and XGBoost seed (same seed and settings, same model).
        days: simulated days in all (simulated source only).
        n_customers: simulated cards.
        n_terminals: simulated terminals.
        burn_in_days: first simulated days left out of training.
        validation_days: days choosing hyper-parameters, calibration and thresholds.
        holdout_days: last days, scored once by candidate and champion for the gate.
        gap_days: days between the training and the validation rows.
        trees: boosting rounds.
        learning_rate: XGBoost ``eta``.
        grid_max_depth: tree depths tried, comma-separated ("4,6").
        grid_scale_pos_weight: weights of fraud rows tried: numbers, or ``sqrt``
            (square root of genuine/fraud rows; class imbalance handled without the
            full ratio, which over-weights on the simulator: AP 0.64 → 0.56).
        calibration: ``auto`` (Platt or isotonic, lower held-out ECE on validation),
            ``platt``, ``isotonic`` or ``identity`` (no map: only for tests of the gate).
        nthread: XGBoost threads.
        review_rate: share of validation transactions the review threshold flags, 0..1.
        decline_precision: precision the decline threshold must reach on validation.
        decline_max_rate: largest share of validation transactions declined, 0..1.
        ece_bins: equal-width bins of the expected calibration error.
        parity_tolerance: largest |p_onnx - p_xgboost| accepted, probability units.
        onnx_opset: ONNX opset of the export (the ``ai.onnx.ml`` opset follows it).
        model_name: registry name of the model.
        owner: the team answerable for the model (model card).
        gate_max_ap_drop: largest holdout AP drop below the champion's that passes.
        gate_max_ece: largest holdout ECE (calibrated score) that passes.
        gate_max_disparity: largest gap between segments' false-positive rates
            (genuine transactions flagged) within one segment dimension.
        gate_min_segment_rows: segments with fewer genuine holdout rows are reported
            but left out of the disparity (too noisy to judge).
        gate_latency_budget_ms: largest p99 of one-row ONNX Runtime inference.
        canary_weight: share of cards a passing candidate gets as canary.
        min_canary_requests: canary requests before the controller may promote.
        canary_max_p99_ms: canary end-to-end p99 above which the controller rolls back.
        high_impact: the version needs ``riskstream approve`` before promotion.
        features: the feature set of ``riskstream train`` and retrains
            (``baseline``, ``handbook`` or ``full``; see ``dataset.FEATURE_SETS``).
        signing_key_file: ed25519 private key (PEM) signing artifacts ("" = unsigned).
        public_key_file: ed25519 public key (PEM) verifying the champion ("" = none).
        metrics_host: bind address of the retrain consumer's Prometheus endpoint
            (loopback by default; 0.0.0.0 in a container).
        metrics_port: Prometheus port of the retrain consumer (0 = the stack's
            ``metrics_ports.trainer``).
        redis_url: the online store Feast's configuration names ("" = the local
            stack's, ``StackConfig.redis.url``, filled in by the entry points: the
            trainer's kernels import this module, not the stack's).
    """

    seed: int = 0
    days: int = 45
    n_customers: int = 5000
    n_terminals: int = 10000
    burn_in_days: int = 7
    validation_days: int = 7
    holdout_days: int = 7
    gap_days: int = LABEL_DELAY_S // DAY
    trees: int = 200
    learning_rate: float = 0.1
    grid_max_depth: str = "4,6"
    grid_scale_pos_weight: str = "1,sqrt"
    calibration: str = "auto"
    nthread: int = 2
    review_rate: float = 0.02
    decline_precision: float = 0.8
    decline_max_rate: float = 0.005
    ece_bins: int = 15
    parity_tolerance: float = 1e-5
    onnx_opset: int = 15
    model_name: str = "fraud-xgb"
    owner: str = "risk-ml"
    gate_max_ap_drop: float = 0.01
    gate_max_ece: float = 0.02
    gate_max_disparity: float = 0.05
    gate_min_segment_rows: int = 500
    gate_latency_budget_ms: float = 1.0
    canary_weight: float = 0.1
    min_canary_requests: int = 200
    canary_max_p99_ms: float = 25.0
    high_impact: bool = False
    features: str = "baseline"
    signing_key_file: str = ""
    public_key_file: str = ""
    metrics_host: BindHost = LOOPBACK
    metrics_port: int = 0
    redis_url: RedisUrl = ""

    def __post_init__(self) -> None:
        positive = ("days", "n_customers", "n_terminals", "validation_days", "holdout_days")
        for name in (*positive, "trees", "nthread", "ece_bins", "onnx_opset"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer {name}={getattr(self, name)} must be >= 1")
        for name in ("burn_in_days", "gap_days", "min_canary_requests", "gate_min_segment_rows"):
            if getattr(self, name) < 0:
                raise ConfigError(f"trainer {name}={getattr(self, name)} must be >= 0")
        for name in ("review_rate", "decline_precision", "decline_max_rate", "canary_weight"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"trainer {name}={getattr(self, name)} must be in (0, 1]")
        if not (0.0 < self.learning_rate <= 1.0 and self.parity_tolerance > 0.0):
            raise ConfigError("trainer learning_rate must be in (0, 1], parity_tolerance > 0")
        for name in ("gate_max_ap_drop", "gate_max_ece", "gate_max_disparity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"trainer {name}={getattr(self, name)} must be in [0, 1]")
        if not (self.gate_latency_budget_ms > 0.0 and self.canary_max_p99_ms > 0.0):
            raise ConfigError("trainer latency budgets must be > 0")
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(
                f"trainer calibration={self.calibration!r} is not one of {', '.join(CALIBRATIONS)}"
            )
        self.max_depths()  # raise early on a bad grid
        self.pos_weight_rules()
        if self.train_days < 1:
            raise ConfigError(
                f"trainer: {self.days} days leave no training days after burn-in "
                f"{self.burn_in_days}, gap {self.gap_days}, validation {self.validation_days} "
                f"and holdout {self.holdout_days}"
            )
        if self.features not in ("baseline", "handbook", "full"):
            raise ConfigError(f"trainer features={self.features!r} is not baseline|handbook|full")
        if not self.model_name or not self.owner:
            raise ConfigError("trainer model_name and owner must not be empty")

    @property
    def train_days(self) -> int:
        """Days of training rows (simulated source)."""
        return (
            self.days - self.burn_in_days - self.gap_days - self.validation_days - self.holdout_days
        )

    def max_depths(self) -> tuple[int, ...]:
        """``grid_max_depth`` parsed.

        Raises:
            ConfigError: not a comma-separated list of integers >= 1.
        """
        try:
            depths = tuple(int(v) for v in self.grid_max_depth.split(",") if v.strip())
        except ValueError as exc:
            raise ConfigError(f"trainer grid_max_depth={self.grid_max_depth!r}: {exc}") from exc
        if not depths or min(depths) < 1:
            raise ConfigError(f"trainer grid_max_depth={self.grid_max_depth!r} needs depths >= 1")
        return depths

    def pos_weight_rules(self) -> tuple[str, ...]:
        """``grid_scale_pos_weight`` parsed: positive numbers (as text) or ``sqrt``.

        Raises:
            ConfigError: an entry is neither.
        """
        rules = tuple(v.strip() for v in self.grid_scale_pos_weight.split(",") if v.strip())
        for rule in rules:
            if rule == "sqrt":
                continue
            try:
                ok = float(rule) > 0.0
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(
                    f"trainer grid_scale_pos_weight entry {rule!r} is not > 0 nor 'sqrt'"
                )
        if not rules:
            raise ConfigError("trainer grid_scale_pos_weight is empty")
        return rules

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> TrainerConfig:
        """``RISKSTREAM_TRAINER_<FIELD>`` variables, then ``overrides`` (None skipped).

        Raises:
            ConfigError: an unknown variable, a bad value, or settings out of range.
        """
        values = env_settings(cls, ENV_PREFIX, env)
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown trainer setting(s): {', '.join(unknown)}")
        values |= {k: v for k, v in overrides.items() if v is not None}
        return cls(**values)  # type: ignore[arg-type]
