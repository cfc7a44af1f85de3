"""The controller's metrics: domain-named hooks and their Prometheus adapter."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from services.controller.comparison import Rollout
from services.controller.policy import Decision, Verdict
from services.controller.windows import WindowStats

log = logging.getLogger(__name__)


class ControllerTelemetry(Protocol):
    """What the controller reports."""

    def on_step(self) -> None: ...
    def on_invalid(self, topic: str) -> None: ...
    def on_rollout(self, rollout: Rollout | None) -> None: ...
    def on_decision(
        self, decision: Decision, canary: WindowStats, champion: WindowStats
    ) -> None: ...
    def on_transition(self, version: str, status: str) -> None: ...


class NullControllerTelemetry:
    """Reports nothing (tests)."""

    def on_step(self) -> None:
        """Ignore."""

    def on_invalid(self, topic: str) -> None:
        """Ignore."""

    def on_rollout(self, rollout: Rollout | None) -> None:
        """Ignore."""

    def on_decision(self, decision: Decision, canary: WindowStats, champion: WindowStats) -> None:
        """Ignore."""

    def on_transition(self, version: str, status: str) -> None:
        """Ignore."""


class PrometheusControllerTelemetry:
    """prometheus-client metrics, served on the controller's metrics port.

    Args:
        port: the endpoint's port (None or 0: no endpoint).
        host: the address it listens on (``ControllerConfig.metrics_host``).
    """

    def __init__(self, port: int | None, *, host: str) -> None:
        from prometheus_client import Counter, Gauge, start_http_server

        self._decisions = Counter(
            "riskstream_controller_decisions_total",
            "Canary evaluations by outcome (promote, rollback, wait, awaiting_approval)",
            ["outcome"],
        )
        self._transitions = Counter(
            "riskstream_controller_transitions_total",
            "Transitions published to model-updates, by new status",
            ["status"],
        )
        # Outcomes and statuses start at 0: a rollback alert and a dashboard see the
        # series before the first canary.
        for outcome in (*(v.value for v in Verdict), "awaiting_approval"):
            self._decisions.labels(outcome)
        for status in ("champion", "rejected"):
            self._transitions.labels(status)
        self._invalid = Counter(
            "riskstream_controller_invalid_records_total",
            "Records skipped because they did not decode, by topic",
            ["topic"],
        )
        self._last_step = Gauge(
            "riskstream_controller_last_step_timestamp_seconds",
            "When the control loop last ran (a stalled loop stops moving it)",
        )
        self._canary = Gauge(
            "riskstream_controller_canary",
            "1 for the canary under evaluation, labelled with its champion and last verdict",
            ["champion", "canary", "verdict"],
        )
        self._awaiting = Gauge(
            "riskstream_controller_awaiting_approval",
            "1 while a high-impact canary has passed every check but has no approval",
            ["version"],
        )
        labels = ["role", "model_version"]
        self._requests = Gauge(
            "riskstream_controller_window_requests", "Requests in the window", labels
        )
        self._error_rate = Gauge(
            "riskstream_controller_window_error_rate", "Model errors per request", labels
        )
        self._p99 = Gauge(
            "riskstream_controller_window_p99_latency_ms", "p99 decision latency, ms", labels
        )
        self._decline_rate = Gauge(
            "riskstream_controller_window_decline_rate", "Declines per model decision", labels
        )
        self._precision = Gauge(
            "riskstream_controller_flag_precision",
            "Fraud share of labelled REVIEW/DECLINE decisions since the canary started",
            labels,
        )
        self._psi = Gauge(
            "riskstream_controller_score_psi",
            "PSI of the canary's scores against its own holdout's (the champion's when it "
            "has no reference), in the window",
            ["model_version"],
        )
        self._gauges = (
            self._canary, self._awaiting, self._requests, self._error_rate, self._p99,
            self._decline_rate, self._precision, self._psi,
        )  # fmt: skip
        if port:
            start_http_server(port, addr=host)

    def on_step(self) -> None:
        """The loop ran."""
        self._last_step.set(time.time())

    def on_invalid(self, topic: str) -> None:
        """Count one undecodable record."""
        self._invalid.labels(topic).inc()

    def on_rollout(self, rollout: Rollout | None) -> None:
        """A new comparison started (or none runs): forget the previous versions' gauges."""
        for gauge in self._gauges:
            gauge.clear()
        if rollout is not None:
            self._canary.labels(rollout.champion, rollout.canary, "wait").set(1)

    def on_decision(self, decision: Decision, canary: WindowStats, champion: WindowStats) -> None:
        """Count the outcome and publish both windows."""
        outcome = "awaiting_approval" if decision.awaiting_approval else decision.verdict.value
        self._decisions.labels(outcome).inc()
        self._canary.clear()
        self._canary.labels(champion.version, canary.version, outcome).set(1)
        self._awaiting.clear()
        if decision.awaiting_approval:
            self._awaiting.labels(canary.version).set(1)
        for role, stats in (("canary", canary), ("champion", champion)):
            self._requests.labels(role, stats.version).set(stats.requests)
            self._error_rate.labels(role, stats.version).set(stats.error_rate)
            self._p99.labels(role, stats.version).set(stats.p99_latency_ms)
            self._decline_rate.labels(role, stats.version).set(stats.decline_rate)
            if stats.precision is not None:
                self._precision.labels(role, stats.version).set(stats.precision)
        if decision.score_psi is not None:
            self._psi.labels(canary.version).set(decision.score_psi)

    def on_transition(self, version: str, status: str) -> None:
        """Count one published transition."""
        self._transitions.labels(status).inc()


def prometheus_or_null(port: int, *, host: str) -> ControllerTelemetry:
    """Prometheus metrics on ``host:port`` (none when the port is 0), or none when the
    port is taken (logged)."""
    if not port:
        return NullControllerTelemetry()
    try:
        return PrometheusControllerTelemetry(port, host=host)
    except OSError as exc:
        log.warning("metrics port %d unavailable (%s); controller metrics disabled", port, exc)
        return NullControllerTelemetry()
