"""The drift monitor's metrics: domain-named hooks and their Prometheus adapter."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from services.drift.monitor import Champion
from services.drift.performance import DetectorAlarm
from services.drift.policy import (
    FEATURE_DRIFT,
    PERFORMANCE_DECAY,
    STALENESS,
    RetrainDecision,
    Trigger,
)
from services.drift.window_report import WindowReport

log = logging.getLogger(__name__)


class DriftTelemetry(Protocol):
    """What the drift monitor reports."""

    def on_tick(self) -> None: ...
    def on_invalid(self, topic: str) -> None: ...
    def on_champion(self, champion: Champion | None) -> None: ...
    def on_window(self, report: WindowReport, seconds: float) -> None: ...
    def on_confirmed(self) -> None: ...
    def on_alarm(self, alarm: DetectorAlarm) -> None: ...
    def on_labels(self, joined: int, pending: int) -> None: ...
    def on_retrain(self, decision: RetrainDecision) -> None: ...
    def on_held(self, trigger: Trigger) -> None: ...


class NullDriftTelemetry:
    """Reports nothing (tests)."""

    def on_tick(self) -> None:
        """Ignore."""

    def on_invalid(self, topic: str) -> None:
        """Ignore."""

    def on_champion(self, champion: Champion | None) -> None:
        """Ignore."""

    def on_window(self, report: WindowReport, seconds: float) -> None:
        """Ignore."""

    def on_confirmed(self) -> None:
        """Ignore."""

    def on_alarm(self, alarm: DetectorAlarm) -> None:
        """Ignore."""

    def on_labels(self, joined: int, pending: int) -> None:
        """Ignore."""

    def on_retrain(self, decision: RetrainDecision) -> None:
        """Ignore."""

    def on_held(self, trigger: Trigger) -> None:
        """Ignore."""


class PrometheusDriftTelemetry:
    """prometheus-client metrics, served on the drift monitor's metrics port.

    Args:
        port: the endpoint's port (None or 0: no endpoint).
        host: the address it listens on (``DriftConfig.metrics_host``).
    """

    def __init__(self, port: int | None, *, host: str) -> None:
        from prometheus_client import Counter, Gauge, Histogram, start_http_server

        column = ["feature", "test"]
        self._statistic = Gauge(
            "riskstream_drift_feature_statistic",
            "Latest window's test statistic per column (KS D or chi-square)", column,
        )  # fmt: skip
        self._p = Gauge(
            "riskstream_drift_feature_p_value", "Latest window's p-value per column", column
        )
        self._adjusted = Gauge(
            "riskstream_drift_feature_adjusted_p_value",
            "Latest window's Benjamini-Hochberg adjusted p-value per column", column,
        )  # fmt: skip
        self._psi = Gauge(
            "riskstream_drift_feature_psi", "Latest window's PSI per column", ["feature"]
        )
        self._drifted = Gauge(
            "riskstream_drift_feature_drifted",
            "1 when the column drifted in the latest window (after the correction)",
            ["feature"],
        )
        self._windows = Counter(
            "riskstream_drift_windows_total",
            "Windows closed, by outcome (flagged, clean, too_small)", ["outcome"],
        )  # fmt: skip
        self._rows = Gauge("riskstream_drift_window_rows", "Rows in the latest window")
        self._cost = Histogram(
            "riskstream_drift_window_seconds", "Time to judge one window",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        self._confirmed = Counter(
            "riskstream_drift_confirmed_total", "Drifts confirmed by the persistence rule"
        )
        self._alarms = Counter(
            "riskstream_drift_detector_alarms_total",
            "Change-detector alarms by stream (score, error) and detector", ["stream", "detector"],
        )  # fmt: skip
        self._requests = Counter(
            "riskstream_drift_retrain_requests_total", "Retrain requests sent, by reason",
            ["reason"],
        )  # fmt: skip
        self._held = Counter(
            "riskstream_drift_retrain_held_total",
            "Triggers held back (cool-down, canary running), by reason", ["reason"],
        )  # fmt: skip
        # Every trigger reason starts at 0: a dashboard and an alert see the series
        # before the first request.
        for reason in (FEATURE_DRIFT, PERFORMANCE_DECAY, STALENESS):
            self._requests.labels(reason)
            self._held.labels(reason)
        self._invalid = Counter(
            "riskstream_drift_invalid_records_total",
            "Records skipped because they did not decode, by topic", ["topic"],
        )  # fmt: skip
        self._labels = Gauge(
            "riskstream_drift_labels_joined", "Labels joined with their decision so far"
        )
        self._pending = Gauge(
            "riskstream_drift_pending_decisions", "Decisions held while awaiting a label"
        )
        self._champion = Gauge(
            "riskstream_drift_champion", "1 for the champion being monitored", ["version"]
        )
        self._last_tick = Gauge(
            "riskstream_drift_last_tick_timestamp_seconds",
            "When the monitor's timer last ran (a stalled app stops moving it)",
        )
        self._per_column = (self._statistic, self._p, self._adjusted, self._psi, self._drifted)
        if port:
            start_http_server(port, addr=host)

    def on_tick(self) -> None:
        """The timer ran."""
        self._last_tick.set(time.time())

    def on_invalid(self, topic: str) -> None:
        """Count one undecodable record."""
        self._invalid.labels(topic).inc()

    def on_champion(self, champion: Champion | None) -> None:
        """A new champion (or none): forget the previous one's gauges."""
        self._champion.clear()
        for gauge in self._per_column:
            gauge.clear()
        if champion is not None:
            self._champion.labels(champion.version).set(1)

    def on_window(self, report: WindowReport, seconds: float) -> None:
        """Publish every statistic of one window."""
        outcome = "too_small" if not report.evaluated else "flagged" if report.flagged else "clean"
        self._windows.labels(outcome).inc()
        self._rows.set(report.rows)
        self._cost.observe(seconds)
        for r in report.results:
            self._statistic.labels(r.column, r.test).set(r.statistic)
            self._p.labels(r.column, r.test).set(r.p_value)
            self._adjusted.labels(r.column, r.test).set(r.adjusted_p_value)
            self._psi.labels(r.column).set(r.psi)
            self._drifted.labels(r.column).set(1.0 if r.drifted else 0.0)

    def on_confirmed(self) -> None:
        """Count one confirmed drift."""
        self._confirmed.inc()

    def on_alarm(self, alarm: DetectorAlarm) -> None:
        """Count one detector alarm."""
        self._alarms.labels(alarm.stream, alarm.detector).inc()

    def on_labels(self, joined: int, pending: int) -> None:
        """The label join's state."""
        self._labels.set(joined)
        self._pending.set(pending)

    def on_retrain(self, decision: RetrainDecision) -> None:
        """Count one request sent."""
        self._requests.labels(decision.reason).inc()

    def on_held(self, trigger: Trigger) -> None:
        """Count one trigger held back."""
        self._held.labels(trigger.reason).inc()


def prometheus_or_null(port: int, *, host: str) -> DriftTelemetry:
    """Prometheus metrics on ``host:port`` (none when the port is 0), or none when the
    port is taken (logged)."""
    if not port:
        return NullDriftTelemetry()
    try:
        return PrometheusDriftTelemetry(port, host=host)
    except OSError as exc:
        log.warning("metrics port %d unavailable (%s); drift metrics disabled", port, exc)
        return NullDriftTelemetry()
