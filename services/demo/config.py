"""Settings of ``riskstream demo`` (``RISKSTREAM_DEMO_*``), read once by the CLI.

The defaults are sized for a 2-core machine and a 10-minute run: few cards (event
time runs fast while the feature job keeps up), a short baseline, and a retrain
window that lies wholly after the drift.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import ConfigError

ENV_PREFIX = "RISKSTREAM_DEMO_"


@dataclass(frozen=True)
class DemoConfig:
    """What the demo simulates, how fast it streams and the loop's settings.

    Attributes:
        seed: simulator seed (the baseline and the stream share it: same cards).
        n_customers: simulated cards.
        n_terminals: simulated terminals.
        baseline_days: simulated days the first model is trained on; the drift
            starts the day after them (day ``baseline_days`` of the stream).
        baseline_burn_in_days: first baseline days left out (windows filling).
        baseline_validation_days: baseline validation days.
        baseline_holdout_days: baseline holdout days; the stream scores exactly these
            days before the drift, so the drift monitor's reference (the champion's
            holdout) and the live pre-drift traffic are the same days.
        retrain_train_days: training days of the retrain, all after the drift.
        retrain_gap_days: gap between the retrain's training and validation rows
            (production uses the label delay, 7; the demo 3, which shortens the
            stream by 4 simulated days and leaves the holdout comparison as fair).
        retrain_validation_days: the retrain's validation days.
        retrain_holdout_days: the retrain's holdout days (the post-drift rows on which
            old and new model are compared).
        label_delay_days: days from a transaction to its label (the feature job's
            terminal-risk delay is the same 7 days: changing it breaks features).
        trees: boosting rounds of both trainings.
        warmup_rate: events per second while the feature job's windows fill
            (no Score calls).
        scored_rate: events per second while the built-in client scores each
            transaction (slow enough for the feature job to stay current).
        live_rate: events per second while the retrain and the canary run.
        max_flink_lag: committed-offset lag of the feature job (records) above
            which the stream waits.
        canary_weight: share of cards the new model gets as canary, 0..1.
        min_canary_requests: canary requests before the controller may promote, and
            requests a side before it may roll back (the score PSI of smaller samples
            is mostly noise).
        after_promotion_requests: Score calls after the promotion (the new
            champion's live numbers).
        gate_latency_budget_ms: the trainer's one-row p99 bound, milliseconds (a
            loaded 2-core machine shared with other work misses the production 1 ms,
            and even 5 ms, on an unchanged model).
        timeout_s: the whole demo's budget, seconds; past it the demo fails.
        drift_timeout_s: how long to wait for the drift monitor's request after
            the drift, seconds.
        home: state directory of the demo's private stack (None: a fresh temporary
            directory).
    """

    seed: int = 42
    n_customers: int = 500
    n_terminals: int = 1000
    baseline_days: int = 22
    baseline_burn_in_days: int = 3
    baseline_validation_days: int = 3
    baseline_holdout_days: int = 3
    retrain_train_days: int = 5
    retrain_gap_days: int = 3
    retrain_validation_days: int = 3
    retrain_holdout_days: int = 3
    label_delay_days: int = 7
    trees: int = 100
    warmup_rate: float = 1500.0
    scored_rate: float = 400.0
    live_rate: float = 40.0
    max_flink_lag: int = 6000
    canary_weight: float = 0.5
    min_canary_requests: int = 1000
    after_promotion_requests: int = 600
    gate_latency_budget_ms: float = 25.0
    timeout_s: float = 1800.0
    drift_timeout_s: float = 240.0
    home: Path | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{ENV_PREFIX}{f.name.upper()}: must not be negative")
        for name in ("n_customers", "n_terminals", "trees", "retrain_train_days",
                     "retrain_validation_days", "retrain_holdout_days",
                     "baseline_validation_days", "baseline_holdout_days"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must be at least 1")
        for name in ("warmup_rate", "scored_rate", "live_rate", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must be positive")
        if not 0.0 < self.canary_weight <= 1.0:
            raise ConfigError(f"{ENV_PREFIX}CANARY_WEIGHT: must be in (0, 1]")
        used = (
            self.baseline_burn_in_days
            + self.label_delay_days
            + self.baseline_validation_days
            + self.baseline_holdout_days
        )
        if self.baseline_days <= used:
            raise ConfigError(
                f"{ENV_PREFIX}BASELINE_DAYS: {self.baseline_days} leaves no training days "
                f"after burn-in, the {self.label_delay_days}-day gap, validation and holdout"
            )

    @property
    def retrain_days(self) -> int:
        """Labelled days one retrain reads (train + gap + validation + holdout)."""
        return (
            self.retrain_train_days
            + self.retrain_gap_days
            + self.retrain_validation_days
            + self.retrain_holdout_days
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> DemoConfig:
        """``RISKSTREAM_DEMO_<FIELD>`` variables, then ``overrides`` (None skipped).

        Raises:
            ConfigError: an unknown key or a value of the wrong type.
        """
        env = os.environ if env is None else env
        parsers: dict[str, type[int] | type[float] | type[Path]] = {
            f.name: {"int": int, "float": float}.get(str(f.type), Path)
            for f in dataclasses.fields(cls)
        }
        values: dict[str, object] = {}
        for key, raw in env.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key.removeprefix(ENV_PREFIX).lower()
            if name not in parsers:
                raise ConfigError(f"unknown setting {key}")
            try:
                values[name] = parsers[name](raw)
            except ValueError as exc:
                raise ConfigError(f"{key}={raw!r} is not a {parsers[name].__name__}") from exc
        values |= {k: v for k, v in overrides.items() if v is not None}
        return cls(**values)  # type: ignore[arg-type]
