"""Settings of the rollout controller (``RISKSTREAM_CONTROLLER_*``), read once in ``__main__``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.common.errors import ConfigError
from services.common.settings import LOOPBACK, BindHost, env_settings
from services.controller.policy import Bounds
from services.stack.config import load_stack_config

ENV_PREFIX = "RISKSTREAM_CONTROLLER_"


@dataclass(frozen=True)
class ControllerConfig:
    """What the controller watches and the gates it applies.

    Attributes:
        model_name: the model whose canary it drives.
        window_s: length of the comparison window, seconds.
        evaluate_interval_s: how often the canary is judged, seconds.
        min_canary_requests: canary requests in the window before a promotion,
            when the plan does not say (``rollout.min_canary_requests``).
        min_evidence_requests: requests each side needs before any rollback check.
        max_error_rate: model errors per canary request, 0..1.
        max_p99_latency_ms: p99 bound, milliseconds, when the plan does not say
            (``rollout.max_p99_latency_ms``).
        max_score_psi: PSI bound of the canary's live scores against its own holdout's
            (the ``__score__`` sketch of its artifact's ``reference.json``), confirmed
            against the champion's when the champion has enough scores; against the
            champion's alone when the artifact has no reference.
        max_decline_ratio: decline-rate ratio bound, both ways (> 1): canary against
            its own holdout decline rate (record ``metrics["decline_rate"]``), confirmed
            against the champion likewise; the champion alone when not recorded.
        max_precision_drop: precision drop bound, 0..1, when the plan does not say
            (``rollout.max_ap_drop``).
        min_labelled_flags: labelled flagged decisions per side before precision counts.
        significance: p-value bound for the decline-rate and precision checks.
        max_pending_labels: flagged decisions held while their labels are awaited.
        scores_topic: the scorers' decisions.
        labels_topic: the verdicts on transactions.
        model_updates_topic: the registry's event log (read and written).
        metrics_host: Prometheus endpoint bind address (loopback by default; 0.0.0.0
            in a container).
        metrics_port: Prometheus endpoint port (0: none).
        public_key_file: ed25519 key (PEM) the canary's artifact must be signed with
            to read its reference ("" = sha256 only), as the scorers and the drift
            monitor verify it.
    """

    model_name: str = "fraud-xgb"
    window_s: float = 900.0
    evaluate_interval_s: float = 5.0
    min_canary_requests: int = 1_000
    min_evidence_requests: int = 200
    max_error_rate: float = 0.01
    max_p99_latency_ms: float = 50.0
    max_score_psi: float = 0.25
    max_decline_ratio: float = 2.0
    max_precision_drop: float = 0.05
    min_labelled_flags: int = 30
    significance: float = 0.01
    max_pending_labels: int = 200_000
    scores_topic: str = "scores"
    labels_topic: str = "labels"
    model_updates_topic: str = "model-updates"
    metrics_host: BindHost = LOOPBACK
    metrics_port: int = 9106
    public_key_file: str = ""

    def __post_init__(self) -> None:
        positive = (
            "window_s", "evaluate_interval_s", "min_canary_requests", "min_evidence_requests",
            "max_p99_latency_ms", "max_score_psi", "min_labelled_flags", "max_pending_labels",
        )  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must be positive")
        for name in ("max_error_rate", "max_precision_drop", "significance"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must be in [0, 1]")
        if not self.max_decline_ratio > 1.0:
            raise ConfigError(f"{ENV_PREFIX}MAX_DECLINE_RATIO: must be above 1")
        if self.metrics_port < 0 or not self.model_name:
            raise ConfigError(f"{ENV_PREFIX}*: metrics_port >= 0 and a model_name are required")

    @property
    def bounds(self) -> Bounds:
        """The decision's gates."""
        return Bounds(
            min_canary_requests=self.min_canary_requests,
            min_evidence_requests=self.min_evidence_requests,
            max_error_rate=self.max_error_rate,
            max_p99_latency_ms=self.max_p99_latency_ms,
            max_score_psi=self.max_score_psi,
            max_decline_ratio=self.max_decline_ratio,
            max_precision_drop=self.max_precision_drop,
            min_labelled_flags=self.min_labelled_flags,
            significance=self.significance,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ControllerConfig:
        """Read ``RISKSTREAM_CONTROLLER_*`` over the stack's metrics port for ``controller``.

        Raises:
            ConfigError: an unknown key, or a value of the wrong type or range.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "metrics_port": load_stack_config(env).metrics_ports.get("controller", 9106)
        }
        values |= env_settings(cls, ENV_PREFIX, env)
        return cls(**values)  # type: ignore[arg-type]
