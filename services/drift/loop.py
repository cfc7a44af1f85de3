"""The monitor's loop: follows the registry, feeds the kernel, acts on its outcomes.

Synchronous and single-threaded; the stream app (:mod:`services.drift.app`) calls
:meth:`DriftLoop.update` for each decoded record and :meth:`DriftLoop.tick` from a
timer. Acting means: write and log each window report, publish the metrics, and
publish a retrain request when the policy lets one through. A request the broker
does not acknowledge is logged and the policy's cool-down is rolled back, so the
next confirmation tries again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from riskstream.v1 import events_pb2
from services.common.errors import KafkaDeliveryError
from services.controller.loop import RegistryLog
from services.drift.monitor import Champion, DriftMonitor, Labelled, Outcome, Scored, Tick
from services.drift.policy import RetrainDecision
from services.drift.telemetry import DriftTelemetry
from services.drift.window_report import WindowReport
from services.registry.errors import ReferenceUnavailable
from services.registry.rollout import RegistryView, VersionRecord

log = logging.getLogger(__name__)


class ReferenceLoader(Protocol):
    """Turns a champion's record into the monitored :class:`Champion`."""

    def load(self, record: events_pb2.ModelVersion, *, canary_running: bool) -> Champion:
        """Raises ReferenceUnavailable when the reference cannot be used."""


class RetrainPublisher(Protocol):
    """Where retrain requests go."""

    def publish(self, decision: RetrainDecision) -> None:
        """Raises KafkaDeliveryError when the broker does not acknowledge it."""


class ReportSink(Protocol):
    """Where window reports go."""

    def write(self, report: WindowReport) -> Path:
        """Store one report."""


class DriftLoop:
    """Runs one :class:`DriftMonitor` against the registry and the streams.

    Args:
        monitor: the kernel.
        registry: the ``model-updates`` follower.
        loader: reads a champion's reference.
        publisher: sends retrain requests.
        sink: stores window reports.
        telemetry: metrics hooks.
        clock: wall clock, seconds since the epoch.
    """

    def __init__(
        self,
        monitor: DriftMonitor,
        *,
        registry: RegistryLog,
        loader: ReferenceLoader,
        publisher: RetrainPublisher,
        sink: ReportSink,
        telemetry: DriftTelemetry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.monitor = monitor
        self._model = monitor.config.model_name
        self._registry = registry
        self._loader = loader
        self._publisher = publisher
        self._sink = sink
        self._telemetry = telemetry
        self._clock = clock
        self._view = RegistryView(self._model)
        self._failed: tuple[str, str] | None = None  # (version, sha256) that did not load
        self.requests: list[RetrainDecision] = []

    def tick(self) -> None:
        """Follow the registry, close a quiet window, check ages."""
        self._telemetry.on_tick()
        self._poll_registry(0.05)
        self._timed(Tick(int(self._clock() * 1000)))

    def update(self, item: Scored | Labelled) -> None:
        """Feed one decoded record (the first waits until the registry is read)."""
        if not self._registry.caught_up:
            self.catch_up()
        self._timed(item)
        if isinstance(item, Labelled):
            perf = self.monitor.performance
            self._telemetry.on_labels(perf.labelled, perf.pending)

    def catch_up(self, timeout_s: float = 30.0) -> None:
        """Read the registry log to its end, so no decision is judged without its champion."""
        deadline = time.monotonic() + timeout_s
        while not self._registry.caught_up and time.monotonic() < deadline:
            self._poll_registry(0.2)
        self._poll_registry(0.0)

    def _poll_registry(self, timeout_s: float) -> None:
        for record in self._registry.poll(timeout_s):
            self._view.apply([VersionRecord.from_event(record)])
        if self._registry.caught_up:
            self._follow()

    def _follow(self) -> None:
        state = self._view.state
        current = self.monitor.champion
        canary = state.canary is not None
        if state.champion is None:
            if current is not None:
                self.monitor.follow(None)
                self._telemetry.on_champion(None)
            return
        if current is not None and current.version == state.champion:
            if current.canary_running != canary:
                self.monitor.follow(dataclasses.replace(current, canary_running=canary))
            return
        record = self._view.records[state.champion].event
        if record is None or self._failed == (record.version, record.sha256):
            return
        try:
            champion = self._loader.load(record, canary_running=canary)
        except ReferenceUnavailable as exc:
            self._failed = (record.version, record.sha256)
            log.warning("champion %s not monitored: %s", record.version, exc)
            return
        self._failed = None
        self.monitor.follow(champion)
        self._telemetry.on_champion(champion)
        log.info(
            "monitoring %s champion %s (%d features, window level %.3g)",
            self._model, champion.version, len(champion.reference.features), self.monitor.level,
        )  # fmt: skip

    def _timed(self, item: Scored | Labelled | Tick) -> None:
        started = time.perf_counter()
        out = self.monitor.update(item)
        self._act(out, time.perf_counter() - started)

    def _act(self, out: Outcome, seconds: float) -> None:
        for report in out.reports:
            path = self._sink.write(report)
            self._telemetry.on_window(report, seconds)
            if report.flagged:
                names = ", ".join(
                    f"{r.column} ({r.test} {r.statistic:.3g}, p={r.p_value:.2g})"
                    for r in report.drifted
                )
                log.info("window of %d rows drifted: %s; report %s", report.rows, names, path)
        for alarm in out.alarms:
            self._telemetry.on_alarm(alarm)
        if out.confirmed:
            self._telemetry.on_confirmed()
        for trigger in out.held:
            self._telemetry.on_held(trigger)
        if out.request is not None:
            self._publish(out.request)

    def _publish(self, decision: RetrainDecision) -> None:
        try:
            self._publisher.publish(decision)
        except KafkaDeliveryError as exc:
            log.warning("retrain request %s not published (%s)", decision.request_id, exc)
            self.monitor.policy.last_sent_ms = None  # let the next confirmation try again
            return
        self.requests.append(decision)
        self._telemetry.on_retrain(decision)
        log.info(
            "retrain requested for %s (%s, champion %s): %s", decision.model_name,
            decision.reason, decision.champion_version,
            ", ".join(f"{e.feature} {e.test}" for e in decision.evidence),
        )  # fmt: skip
