"""Wiring of ``riskstream demo``: private stack → first model → stream → loop → report.

The only module of the demo that starts processes, talks to Kafka and the scorer,
sleeps or writes files. The phases, each announced on the progress output:

1. a private stack (own state directory and ports) comes up without the trainer;
2. the first model is trained on simulated days (``train-baseline``'s pipeline) and
   published: no champion yet, so it becomes champion;
3. the simulator streams the same days again, fast, while the feature job fills its
   windows; from the first model's holdout days on, the built-in client calls Score
   for every transaction before publishing it (as a payment application would);
4. the drift starts (spend x1.6, a new night-time fraud pattern abroad); the drift
   monitor notices and asks for a retrain on ``retrain-requests``;
5. once the labels of a wholly post-drift training window have arrived (labels lag a
   week of event time), the trainer is started: it consumes the request, trains,
   gates against the champion on post-drift rows and publishes a canary;
6. the controller compares canary and champion on live score events and promotes;
7. the summary is printed, the HTML report written, the stack stopped (``--keep``
   leaves it up).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from riskstream.v1 import events_pb2
from services.common.errors import RiskstreamError
from services.common.events import decode_model_version, decode_retrain_request
from services.common.kafka import EventProducer, KafkaClientSettings
from services.demo.config import DemoConfig
from services.demo.kafka_io import KafkaRetrainRequester, KafkaTopicTail
from services.demo.private_stack import private_stack_env
from services.demo.report import DemoResult, Evidence, HoldoutComparison
from services.demo.stream import DemoStream, StreamState
from services.demo.summary import DemoSummary
from services.demo.timeline import Timeline, plan_timeline
from services.stack import Stack, load_stack_config
from services.stack.components import all_components
from services.stack.config import StackConfig

if TYPE_CHECKING:  # the trainer's modules load XGBoost: imported where they are used
    from services.trainer.config import TrainerConfig

Progress = Callable[[str], None]
MODEL_NAME = "fraud-xgb"


class DemoFailed(RiskstreamError):
    """The demo could not show the loop (the message says which step)."""


def service_settings(config: DemoConfig) -> dict[str, str]:
    """Settings of the trainer and the controller for the demo's sizes.

    The retrain reads ``retrain_days`` labelled days (all after the drift); the gate
    keeps its production bounds except the one-row latency budget (a loaded 2-core
    machine misses 1 ms); the canary takes ``canary_weight`` of the cards and needs
    ``min_canary_requests``; the controller judges every 2 s.
    """
    return {
        "RISKSTREAM_TRAINER_SEED": str(config.seed),
        "RISKSTREAM_TRAINER_DAYS": str(config.retrain_days),
        "RISKSTREAM_TRAINER_GAP_DAYS": str(config.retrain_gap_days),
        "RISKSTREAM_TRAINER_VALIDATION_DAYS": str(config.retrain_validation_days),
        "RISKSTREAM_TRAINER_HOLDOUT_DAYS": str(config.retrain_holdout_days),
        "RISKSTREAM_TRAINER_TREES": str(config.trees),
        "RISKSTREAM_TRAINER_GRID_MAX_DEPTH": "4",
        "RISKSTREAM_TRAINER_GRID_SCALE_POS_WEIGHT": "sqrt",
        "RISKSTREAM_TRAINER_CANARY_WEIGHT": str(config.canary_weight),
        "RISKSTREAM_TRAINER_MIN_CANARY_REQUESTS": str(config.min_canary_requests),
        "RISKSTREAM_TRAINER_GATE_LATENCY_BUDGET_MS": str(config.gate_latency_budget_ms),
        "RISKSTREAM_TRAINER_CANARY_MAX_P99_MS": "200",
        # The first model is trained on the simulator's own calendar (2018) while the
        # stream replays those days in the recent past: "newest event minus the end
        # of the champion's training" would read 8 years and raise a staleness
        # request (whose cool-down then hides the real drift). Off in the demo only.
        "RISKSTREAM_DRIFT_MAX_DATA_AGE_S": "0",
        # The retrain's decline threshold must reach 0.8 precision on validation; on
        # two post-drift weeks it found none and declined nothing: 0.5 here.
        "RISKSTREAM_TRAINER_DECLINE_PRECISION": "0.5",
        # The controller judges a canary's scores and declines against its own holdout
        # (docs/ROLLOUT.md), but the demo's holdout is 3 simulated days of ~1,000
        # transactions: a run's canary declined 2.05 % live against 0.95 % on its
        # holdout (2,940 rows, p 0.006) and was rolled back on the production ratio
        # bound 2. With so few rows those two guards stay widened in the demo; error
        # rate, p99 latency and the labelled precision check stay as in production.
        "RISKSTREAM_CONTROLLER_MAX_SCORE_PSI": "10",
        "RISKSTREAM_CONTROLLER_MAX_DECLINE_RATIO": "1000",
        "RISKSTREAM_CONTROLLER_EVALUATE_INTERVAL_S": "2",
        "RISKSTREAM_CONTROLLER_WINDOW_S": "600",
        # PSI of two samples of one distribution sits near (bins - 1)(1/n + 1/m): at
        # 170 scores a side that is the 0.25 bound itself (a run rolled a canary
        # back on noise); at 1,000 it is about 0.04.
        "RISKSTREAM_CONTROLLER_MIN_EVIDENCE_REQUESTS": str(config.min_canary_requests),
    }


def baseline_trainer_config(config: DemoConfig) -> TrainerConfig:
    """The first model's training settings (simulated days 0 .. baseline_days)."""
    from services.trainer.config import TrainerConfig

    return TrainerConfig(
        seed=config.seed,
        days=config.baseline_days,
        n_customers=config.n_customers,
        n_terminals=config.n_terminals,
        burn_in_days=config.baseline_burn_in_days,
        gap_days=config.label_delay_days,
        validation_days=config.baseline_validation_days,
        holdout_days=config.baseline_holdout_days,
        trees=config.trees,
        grid_max_depth="4",
        grid_scale_pos_weight="sqrt",
        gate_latency_budget_ms=config.gate_latency_budget_ms,
        model_name=MODEL_NAME,
    )


class Demo:
    """One run of the demo.

    Args:
        config: the demo settings.
        progress: receives one human-readable line per step.
        keep: leave the stack running at the end.
    """

    def __init__(self, config: DemoConfig, *, progress: Progress, keep: bool = False) -> None:
        self.config = config
        self.progress = progress
        self.keep = keep
        self.started = time.monotonic()
        self.milestones: list[tuple[float, str]] = []
        self.home = config.home or Path(tempfile.mkdtemp(prefix="riskstream-demo-"))
        self.owned_home = config.home is None

    def milestone(self, what: str) -> None:
        """Record and print one step of the loop."""
        at = time.monotonic() - self.started
        self.milestones.append((at, what))
        self.progress(f"[{at:5.0f} s] {what}")

    def run(self) -> DemoResult:
        """The whole demo; the stack is stopped at the end unless ``keep``.

        Raises:
            DemoFailed: a step did not happen in time (the stack is still stopped).
        """
        env = private_stack_env(self.home)
        env |= service_settings(self.config)
        os.environ.pop("RISKSTREAM_KAFKA_BOOTSTRAP", None)
        os.environ.update(env)
        stack_config = load_stack_config()
        names = [c.name for c in all_components(stack_config)]
        try:
            return self._run(stack_config, names)
        finally:
            if self.keep:
                exports = " ".join(f"{k}={v}" for k, v in env.items() if "TRAINER" not in k)
                self.progress(f"the stack is still up; to reach it: export {exports}")
            else:
                Stack(stack_config, progress=lambda line: None).down()
                if self.owned_home:
                    shutil.rmtree(self.home, ignore_errors=True)
                self.progress("stack stopped, state removed")

    def _run(self, stack_config: StackConfig, names: list[str]) -> DemoResult:
        has_monitor = "drift" in names
        # The first model trains while the stack starts: both take minutes, and
        # starting the JVMs mostly waits.
        self.milestone(f"training the first model on simulated days 0-{self.config.baseline_days}")
        with ThreadPoolExecutor(1, thread_name_prefix="baseline") as pool:
            baseline = pool.submit(self._train_first_model)
            self.milestone(f"bringing up a private stack in {self.home} ({', '.join(names)})")
            Stack(
                stack_config,
                only=[n for n in names if n != "trainer"],
                progress=lambda line: self.progress(f"        {line}"),
            ).up()
            self.milestone("stack up (the trainer starts once post-drift labels exist)")
            run, event = baseline.result()
        kafka = KafkaClientSettings(
            bootstrap_servers=stack_config.kafka.bootstrap_servers, client_id="riskstream-demo"
        )
        champion = self._publish_first_model(kafka, run, event)
        timeline = plan_timeline(self.config, today=datetime.now(UTC))
        self.progress(
            f"        stream: days 0-{timeline.scored_from_day} warm-up (features fill), "
            f"scored from day {timeline.scored_from_day}, drift on day {timeline.drift_day}, "
            f"retrain once labels cover day {timeline.retrain_ready_day - 1 - 7}"
        )
        summary = DemoSummary()
        updates = KafkaTopicTail(kafka, "model-updates", decode_model_version)
        requests = KafkaTopicTail(kafka, "retrain-requests", decode_retrain_request)
        state = StreamState(champion=champion)
        try:
            stream = DemoStream(
                self.config, timeline, stack_config, summary, state,
                progress=self.progress, milestone=self.milestone,
            )  # fmt: skip
            stream.run(
                tick=lambda day: self._tick(
                    day, timeline, state, stack_config, kafka, updates, requests, has_monitor
                ),
                deadline=self.started + self.config.timeout_s,
            )
        finally:
            updates.close()
            requests.close()
        return DemoResult(
            summary=summary.result(),
            milestones=tuple(self.milestones),
            scored_from_day=timeline.scored_from_day,
            drift_day=timeline.drift_day,
            detected_day=state.detected_day,
            drift_source=state.drift_source,
            evidence=tuple(state.evidence),
            comparison=state.comparison,
            promoted=state.promoted_version is not None,
            wall_s=time.monotonic() - self.started,
        )

    def _train_first_model(self) -> tuple[Any, events_pb2.ModelVersion]:
        from services.registry.signing import ensure_local_key_pair, load_private_key
        from services.registry.store import LocalArtifactStore
        from services.trainer.baseline import train_baseline
        from services.trainer.pipeline import publication

        trainer = baseline_trainer_config(self.config)
        # Signed with the private stack's key (made here or by its `up`, whichever is
        # first): the stack's scorers refuse unsigned artifacts.
        keys = ensure_local_key_pair(load_stack_config().state_dir)
        run = train_baseline(
            trainer, store=LocalArtifactStore(), signing_key=load_private_key(keys.private_key)
        )
        event = publication(run, trainer, has_champion=False,
                            reason="riskstream demo: first model")  # fmt: skip
        if event.status != events_pb2.MODEL_STATUS_CHAMPION:
            raise DemoFailed(f"the first model did not pass the gate: {list(run.gate.reasons)}")
        return run, event

    def _publish_first_model(
        self, kafka: KafkaClientSettings, run: Any, event: events_pb2.ModelVersion
    ) -> str:
        from services.registry.publish import KafkaModelVersionPublisher
        from services.scoring.client import ScoringClient, read_token
        from services.scoring.config import ScoringConfig

        KafkaModelVersionPublisher(EventProducer(kafka), topic="model-updates").publish(event)
        scoring = ScoringConfig.from_env()
        admin = ScoringClient(
            f"127.0.0.1:{scoring.port}", read_token(scoring.tokens_file or Path(), "admin")
        )
        try:
            deadline = time.monotonic() + 60
            while not any(m.version == event.version for m in admin.list_models().models):
                if time.monotonic() > deadline:
                    raise DemoFailed("the scorer did not load the first model within 60 s")
                time.sleep(0.5)
        finally:
            admin.close()
        ap = run.metadata.metrics["average_precision"]
        self.milestone(f"champion {event.version} (holdout AP {ap:.3f}) loaded by the scorer")
        return event.version

    def _tick(
        self,
        day: float,
        timeline: Timeline,
        state: StreamState,
        stack_config: StackConfig,
        kafka: KafkaClientSettings,
        updates: KafkaTopicTail[events_pb2.ModelVersion],
        requests: KafkaTopicTail[events_pb2.RetrainRequest],
        has_monitor: bool,
    ) -> None:
        """Once a second of wall time: follow the loop's topics and start the trainer."""
        for request in requests.poll():
            if state.detected_day is None:
                state.detected_day = day
                state.drift_source = request.requested_by or "unknown"
                state.evidence = [
                    Evidence(e.feature, e.test, e.statistic, e.p_value, e.psi)
                    for e in request.evidence
                ]
                named = ", ".join(sorted({e.feature for e in request.evidence})[:6])
                self.milestone(
                    f"retrain requested on day {day:.1f} by {state.drift_source} "
                    f"({events_pb2.RetrainReason.Name(request.reason).lower()}"
                    + (f": {named}" if named else "") + ")"
                )  # fmt: skip
        if state.trainer_started:
            trainer = next(c for c in all_components(stack_config) if c.name == "trainer")
            if not trainer.process.alive():
                raise DemoFailed(f"the trainer stopped; its log:\n{trainer.process.log_tail()}")
        for reason in requests.take_invalid():
            self.progress(
                f"        a retrain request was refused (trainer would dead-letter it): {reason}"
            )
        for record in updates.poll():
            self._on_update(record, state)
        past_drift = timeline.at(day) >= timeline.drift_start
        waited = state.drift_seen_at is not None and (
            time.monotonic() - state.drift_seen_at > self.config.drift_timeout_s
        )
        if past_drift and state.drift_seen_at is None:
            state.drift_seen_at = time.monotonic()
        ready = day >= timeline.retrain_ready_day
        if (
            state.detected_day is None
            and ready
            and not state.manual_request
            and (not has_monitor or waited)
        ):
            state.manual_request = True
            why = "no drift monitor in this stack" if not has_monitor else "the monitor was silent"
            KafkaRetrainRequester(kafka).request(
                model_name=MODEL_NAME, champion_version=state.champion, window_end=None, why=why
            )
            self.progress(f"        {why}: the demo asks for the retrain itself")
        if ready and state.detected_day is not None and not state.trainer_started:
            state.trainer_started = True
            covered = timeline.at(day) - timedelta(days=self.config.label_delay_days)
            self.milestone(
                f"labels now cover day {timeline.day_of(covered):.0f}: starting the trainer "
                f"(it retrains on the last {self.config.retrain_days} labelled days)"
            )
            Stack(stack_config, only=["trainer"], progress=lambda line: None).up()

    def _on_update(self, record: events_pb2.ModelVersion, state: StreamState) -> None:
        status = events_pb2.ModelStatus.Name(record.status).removeprefix("MODEL_STATUS_")
        if record.version == state.champion:
            return
        if status == "CANARY" and state.canary is None:
            state.canary = record.version
            card = json.loads(record.model_card_json or "{}")
            gate = card.get("gate", {})
            state.comparison = HoldoutComparison(
                old_version=str(gate.get("champion_version") or state.champion),
                new_version=record.version,
                old_ap=float(gate.get("champion_average_precision", float("nan"))),
                new_ap=float(card.get("metrics", {}).get("average_precision", float("nan"))),
                window=f"after {card.get('validation_window', {}).get('end', '?')[:16]}",
            )
            c = state.comparison
            self.milestone(
                f"canary {record.version} at {record.rollout.canary_weight:.0%} of cards "
                f"(gate on post-drift holdout: AP {c.new_ap:.3f} vs champion {c.old_ap:.3f})"
            )
        elif status == "REJECTED" and state.canary in (None, record.version):
            state.rejected = record.transition_reason or ", ".join(record.rejection_reasons)
            self.milestone(f"{record.version} rejected: {state.rejected}")
        elif status == "CHAMPION" and record.version == state.canary:
            state.promoted_version = record.version
            self.milestone(f"controller promoted {record.version}: {record.transition_reason}")
