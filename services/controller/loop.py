"""The control loop: registry records and decisions in, transitions out.

One thread, one step at a time: apply what arrived on ``model-updates``; when the
champion/canary pair changes, start a new comparison and read ``scores`` and
``labels`` from the canary's start; feed what arrived; every
``evaluate_interval_s`` decide (:func:`services.controller.policy.decide`) and act.
A new canary's own holdout behaviour (:class:`~services.controller.baseline.Baseline`)
is loaded once, when its comparison starts. Acting publishes the canary's full
record moved to CHAMPION (promote) or REJECTED (rollback; the champion stays, as
the registry's fold defines) and applies it here at once, so the same canary is
never acted on twice; the record that comes back from the log changes nothing. A
publish the broker does not acknowledge is logged and tried again at the next
evaluation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from riskstream.v1 import events_pb2
from services.common.errors import KafkaDeliveryError
from services.controller.baseline import Baseline
from services.controller.comparison import Comparison, Rollout, Scored
from services.controller.config import ControllerConfig
from services.controller.policy import CanaryPlan, Decision, Verdict, decide
from services.controller.precision import Labelled
from services.controller.roles import VersionRoles
from services.controller.telemetry import ControllerTelemetry
from services.registry.transitions import ModelVersionPublisher, transition

log = logging.getLogger(__name__)


class RegistryLog(Protocol):
    """The registry's event log, read from its beginning."""

    @property
    def caught_up(self) -> bool:
        """Whether the records present at start have all been returned."""

    def poll(self, timeout_s: float) -> list[events_pb2.ModelVersion]:
        """Records that arrived, in log order."""


class DecisionStream(Protocol):
    """Score events and labels from a point in time."""

    def start_at(self, at_ms: int) -> None:
        """Read from the first record at or after ``at_ms``."""

    def stop(self) -> None:
        """Stop reading."""

    def poll(self, timeout_s: float) -> list[Scored | Labelled]:
        """What arrived since the last poll."""


class BaselineLoader(Protocol):
    """A version's holdout behaviour, from its registry record."""

    def load(self, record: events_pb2.ModelVersion) -> Baseline:
        """The baseline; its missing parts named in ``missing`` (never raises)."""


class Controller:
    """Promotes or rolls back the canary of one model.

    Args:
        config: the settings.
        registry: the ``model-updates`` reader.
        stream: the ``scores`` / ``labels`` reader.
        publisher: where transitions go (``model-updates``).
        baselines: reads a canary's holdout behaviour (its artifact's reference).
        telemetry: metrics hooks.
        clock: wall clock, seconds since the epoch (windows end at its "now").
    """

    def __init__(
        self,
        config: ControllerConfig,
        *,
        registry: RegistryLog,
        stream: DecisionStream,
        publisher: ModelVersionPublisher,
        baselines: BaselineLoader,
        telemetry: ControllerTelemetry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._bounds = config.bounds
        self._registry = registry
        self._stream = stream
        self._publisher = publisher
        self._baselines = baselines
        self.baseline: Baseline | None = None
        self._telemetry = telemetry
        self._clock = clock
        self.roles = VersionRoles(config.model_name)
        self.comparison: Comparison | None = None
        self._next_evaluation = 0.0
        self._announced: set[str] = set()

    def run(self, should_stop: Callable[[], bool]) -> None:
        """Step until ``should_stop()``."""
        log.info("controller started for model %s", self._config.model_name)
        while not should_stop():
            self.step()
        log.info("controller stopped")

    def step(self) -> Decision | None:
        """One turn of the loop; returns the decision when one was taken."""
        self._telemetry.on_step()
        for record in self._registry.poll(0.05 if self.comparison else 0.5):
            self.roles.update(record)
        if not self._registry.caught_up:
            return None
        self._follow(self.roles.rollout())
        if self.comparison is None:
            return None
        for item in self._stream.poll(0.2):
            self.comparison.update(item)
        now = self._clock()
        if now < self._next_evaluation:
            return None
        self._next_evaluation = now + self._config.evaluate_interval_s
        return self._evaluate(self.comparison, now)

    def _follow(self, rollout: Rollout | None) -> None:
        current = self.comparison.rollout if self.comparison else None
        if rollout == current:
            return
        self._telemetry.on_rollout(rollout)
        if rollout is None:
            self.comparison = None
            self._stream.stop()
            return
        log.info(
            "comparing canary %s (%.0f %% of cards) with champion %s",
            rollout.canary, rollout.canary_weight * 100, rollout.champion,
        )  # fmt: skip
        self.comparison = Comparison(
            rollout, window_s=self._config.window_s, max_pending=self._config.max_pending_labels
        )
        self.baseline = self._load_baseline(rollout.canary)
        # Older than one window cannot count; reading it would only cost time.
        window_start_ms = int((self._clock() - self._config.window_s) * 1000)
        self._stream.start_at(max(rollout.started_ms, window_start_ms))
        self._next_evaluation = self._clock() + self._config.evaluate_interval_s

    def _load_baseline(self, version: str) -> Baseline | None:
        record = self.roles.record(version)
        if record is None:
            return None
        if self.baseline is not None and self.baseline.version == version:
            return self.baseline  # the same canary, a new weight: its holdout did not change
        baseline = self._baselines.load(record)
        if baseline.missing:
            log.info(
                "canary %s: %s; compared with the champion alone there", version, baseline.missing
            )
        else:
            log.info(
                "canary %s judged against its own holdout (%.0f rows, decline rate %.4f)",
                version, baseline.score_rows, baseline.decline_rate or 0.0,
            )  # fmt: skip
        return baseline

    def _evaluate(self, comparison: Comparison, now: float) -> Decision:
        rollout = comparison.rollout
        record = self.roles.record(rollout.canary)
        assert record is not None  # the fold named it from its record
        canary, champion = comparison.stats(int(now * 1000))
        decision = decide(canary, champion, CanaryPlan.of(record), self._bounds, self.baseline)
        self._telemetry.on_decision(decision, canary, champion)
        if decision.awaiting_approval and rollout.canary not in self._announced:
            self._announced.add(rollout.canary)
            log.info("canary %s %s", rollout.canary, decision.reason)
        if decision.verdict is Verdict.PROMOTE:
            self._publish(transition(record, events_pb2.MODEL_STATUS_CHAMPION, decision.reason))
        elif decision.verdict is Verdict.ROLLBACK:
            reasons = [str(b) for b in decision.breaches]
            self._publish(
                transition(
                    record, events_pb2.MODEL_STATUS_REJECTED, decision.reason,
                    rejection_reasons=reasons,
                )
            )  # fmt: skip
        return decision

    def _publish(self, event: events_pb2.ModelVersion) -> None:
        status = events_pb2.ModelStatus.Name(event.status).removeprefix("MODEL_STATUS_")
        try:
            self._publisher.publish(event)
        except KafkaDeliveryError as exc:
            log.warning("%s -> %s not published (%s); will retry", event.version, status, exc)
            return
        self.roles.update(event)
        self._follow(self.roles.rollout())
        self._telemetry.on_transition(event.version, status.lower())
        log.info("%s -> %s: %s", event.version, status, event.transition_reason)
