"""Settings of the drift monitor (``RISKSTREAM_DRIFT_*``), read once in ``__main__``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from services.common.errors import ConfigError
from services.common.settings import LOOPBACK, BindHost, env_settings
from services.drift.monitor import MonitorSettings, column_names
from services.feature_store.definitions import CARD_FEATURES, REQUEST_FEATURES, TERMINAL_FEATURES
from services.registry.reference import SCORE_KEY
from services.stack.config import load_stack_config

#: Columns a reference can hold: every feature of the feature set, and the score.
KNOWN_COLUMNS = frozenset((*REQUEST_FEATURES, *CARD_FEATURES, *TERMINAL_FEATURES, SCORE_KEY))

ENV_PREFIX = "RISKSTREAM_DRIFT_"


@dataclass(frozen=True)
class DriftConfig:
    """What the drift monitor watches and when it asks for a retrain.

    Attributes:
        model_name: the model whose champion is monitored.
        window_rows: rows that close a window (and bound its memory).
        window_s: seconds after a window's first row that close it.
        min_window_rows: rows a window needs to be judged.
        false_alarm_rate: confirmed drifts per window accepted on a stationary
            stream (0..1); the per-window test level follows from it.
        persistence_k: flagged windows among the last ``persistence_m`` that confirm.
        persistence_m: windows remembered by the persistence rule.
        cooldown_s: least time between two retrain requests, seconds.
        score_adwin_delta: ADWIN's bound on the score stream.
        error_adwin_delta: ADWIN's bound on the error stream.
        ph_threshold: Page-Hinkley's threshold (both streams).
        ph_delta: Page-Hinkley's tolerated drift per value.
        max_pending_labels: decisions kept while awaiting their label (count).
        min_labels: labels joined before an error alarm counts as decay.
        min_error_increase: relative rise of the mean error an ADWIN alarm must show.
        max_model_age_s: champion age (since created_at) that asks for a retrain,
            seconds; 0 turns it off.
        max_data_age_s: newest event time minus the end of the champion's train
            window that asks for a retrain, seconds; 0 turns it off.
        min_psi: least PSI a column with a significant test needs to count as
            drifted; 0 judges by p-values alone. 0.05 is half the usual "moderate
            shift" of 0.1 and about three times the largest a stationary simulator
            window showed (0.017, docs/DRIFT.md).
        ignore_features: comma-separated columns never tested. The calendar flags
            are functions of when a window is, not of the data: a window of a
            Tuesday afternoon has no weekend and no night rows, whatever the stream.
        report_only_features: comma-separated columns tested and reported that do
            not flag a window by themselves. The score is one by default: the model
            reads the calendar flags, so a window's score mix follows the hour and
            the weekday (PSI up to 0.10 on a stationary simulator stream).
        scores_topic: the scorers' decisions.
        labels_topic: the verdicts.
        model_updates_topic: the registry's event log.
        retrain_topic: where requests go.
        group_id: the consumer group (and the faust app id).
        offset_reset: where a new group starts, ``latest`` or ``earliest``.
        report_dir: where window reports go ("" = ``<state>/drift/reports``).
        keep_reports: newest reports kept per model (count).
        tick_interval_s: how often the registry is followed and quiet windows close.
        public_key_file: ed25519 key artifacts must be signed with ("" = sha256 only).
        metrics_host: Prometheus endpoint bind address (loopback by default; 0.0.0.0
            in a container).
        metrics_port: Prometheus endpoint port (0: none).
    """

    model_name: str = "fraud-xgb"
    window_rows: int = 10_000
    window_s: float = 60.0
    min_window_rows: int = 1_000
    false_alarm_rate: float = 0.001
    persistence_k: int = 2
    persistence_m: int = 3
    cooldown_s: float = 3_600.0
    score_adwin_delta: float = 1e-5
    error_adwin_delta: float = 1e-5
    ph_threshold: float = 50.0
    ph_delta: float = 0.005
    max_pending_labels: int = 200_000
    min_labels: int = 500
    min_error_increase: float = 0.2
    max_model_age_s: float = 30 * 86_400.0
    max_data_age_s: float = 60 * 86_400.0
    min_psi: float = 0.05
    ignore_features: str = "tx_is_weekend,tx_is_night"
    report_only_features: str = "__score__"
    scores_topic: str = "scores"
    labels_topic: str = "labels"
    model_updates_topic: str = "model-updates"
    retrain_topic: str = "retrain-requests"
    group_id: str = "riskstream-drift"
    offset_reset: str = "latest"
    report_dir: str = ""
    keep_reports: int = 1_000
    tick_interval_s: float = 2.0
    public_key_file: str = ""
    metrics_host: BindHost = LOOPBACK
    metrics_port: int = 9104

    def __post_init__(self) -> None:
        positive = (
            "window_rows", "window_s", "min_window_rows", "cooldown_s", "score_adwin_delta",
            "error_adwin_delta", "ph_threshold", "max_pending_labels", "keep_reports",
            "tick_interval_s",
        )  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must be positive")
        for name in ("ph_delta", "min_labels", "min_error_increase", "max_model_age_s",
                     "max_data_age_s", "metrics_port", "min_psi"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must not be negative")
        if self.window_rows < 2 or self.min_window_rows > self.window_rows:
            raise ConfigError(f"{ENV_PREFIX}MIN_WINDOW_ROWS must be <= WINDOW_ROWS (>= 2)")
        if not 0.0 < self.false_alarm_rate < 1.0:
            raise ConfigError(f"{ENV_PREFIX}FALSE_ALARM_RATE: must be in (0, 1)")
        if not 1 <= self.persistence_k <= self.persistence_m:
            raise ConfigError(f"{ENV_PREFIX}PERSISTENCE_K: need 1 <= K <= PERSISTENCE_M")
        if self.offset_reset not in ("latest", "earliest"):
            raise ConfigError(f"{ENV_PREFIX}OFFSET_RESET: latest or earliest")
        if not self.model_name or not self.group_id:
            raise ConfigError(f"{ENV_PREFIX}MODEL_NAME and GROUP_ID must not be empty")
        # A misspelt column would silently test (or mute) the wrong thing.
        lists = {name: column_names(getattr(self, name))
                 for name in ("ignore_features", "report_only_features")}  # fmt: skip
        for name, columns in lists.items():
            unknown = sorted(columns - KNOWN_COLUMNS)
            if unknown:
                raise ConfigError(
                    f"{ENV_PREFIX}{name.upper()}: {unknown} are not features of the feature "
                    f"set nor {SCORE_KEY!r}"
                )
        both = sorted(lists["ignore_features"] & lists["report_only_features"])
        if both:
            raise ConfigError(
                f"{ENV_PREFIX}IGNORE_FEATURES and REPORT_ONLY_FEATURES both name {both}"
            )

    @property
    def monitor(self) -> MonitorSettings:
        """The monitor's thresholds."""
        names = {f.name for f in fields(MonitorSettings)}
        return MonitorSettings(**{n: getattr(self, n) for n in names})

    @property
    def window_level(self) -> float:
        """The Benjamini-Hochberg level each window is judged at."""
        return self.monitor.window_level

    def reports_path(self, state_dir: Path) -> Path:
        """Where reports go (``report_dir``, else under the stack's state directory)."""
        return Path(self.report_dir) if self.report_dir else state_dir / "drift" / "reports"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DriftConfig:
        """Read ``RISKSTREAM_DRIFT_*`` over the stack's metrics port for ``drift``.

        Raises:
            ConfigError: an unknown key, or a value of the wrong type or range.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "metrics_port": load_stack_config(env).metrics_ports.get("drift", 9104)
        }
        values |= env_settings(cls, ENV_PREFIX, env)
        return cls(**values)  # type: ignore[arg-type]
