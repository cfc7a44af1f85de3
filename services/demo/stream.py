"""The demo's traffic: the simulator into Kafka while a built-in client calls Score.

Each transaction of a scored day is scored first and published after, the order of
a card payment (the application asks, then the payment is recorded): the scorer
folds the transaction into the card's stored state itself. Labels go out at their
label time. The pace follows the phase: as fast as the feature job takes events
while its windows fill, slower while scoring (the job must stay current or the
features the scorer reads lag by simulated hours), slowest while the retrain runs
(event time must not run far ahead of the trainer).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta

import grpc

from riskstream.v1 import events_pb2, scoring_pb2, scoring_pb2_grpc
from services.demo.config import DemoConfig
from services.demo.report import Evidence, HoldoutComparison
from services.demo.summary import DemoSummary, ScoredRequest
from services.demo.timeline import Timeline
from services.producer.__main__ import publisher_for
from services.producer.config import SimulatorConfig
from services.producer.events import LabelledTransaction, SimulatedEvent, merge_labels
from services.producer.publisher import KafkaEventPublisher
from services.producer.simulator import TransactionSimulator
from services.scoring.client import bearer_metadata
from services.stack.config import StackConfig, local_kafka_settings
from services.stack.flink import DEFAULT_GROUP_ID as FLINK_GROUP
from services.stack.groups import consumer_lag

_MIN_SLEEP_S = 0.005
#: Score calls in flight at once (transactions are published once all are answered).
IN_FLIGHT = 16


class GrpcScoreClient:
    """Score calls with several in flight, as a busy payment application makes them.

    Args:
        target: the scorer's ``host:port``.
        token: a ``score`` bearer token.
    """

    def __init__(self, target: str, token: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = scoring_pb2_grpc.FraudScoringStub(self._channel)
        self._metadata = bearer_metadata(token)

    def score_all(
        self, transactions: list[events_pb2.Transaction], timeout_s: float = 5.0
    ) -> list[tuple[scoring_pb2.ScoreResponse | None, float]]:
        """Score every transaction concurrently; (response or None on error, latency ms)."""
        started = time.perf_counter()
        done_at: dict[int, float] = {}
        futures = []
        for i, tx in enumerate(transactions):
            request = scoring_pb2.ScoreRequest(transaction=tx, request_id=uuid.uuid4().hex)
            future = self._stub.Score.future(request, metadata=self._metadata, timeout=timeout_s)
            future.add_done_callback(lambda _f, i=i: done_at.setdefault(i, time.perf_counter()))
            futures.append(future)
        results: list[tuple[scoring_pb2.ScoreResponse | None, float]] = []
        for i, future in enumerate(futures):
            try:
                response = future.result()
            except grpc.RpcError:
                response = None
            finished = done_at.get(i, time.perf_counter())
            results.append((response, (finished - started) * 1000.0))
        return results

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


@dataclass
class StreamState:
    """What the demo has seen of the loop so far (shared by the stream and the watcher).

    Attributes:
        champion: the first model's version.
        canary: the retrained version once published as canary.
        promoted_version: the canary once the controller promoted it.
        rejected: the reason, when the retrain or the canary was rejected.
        detected_day: simulated day the retrain request was seen.
        drift_source: who asked for the retrain.
        evidence: the request's drift evidence.
        comparison: old vs new model on the retrain's holdout.
        trainer_started: whether the trainer component was started.
        manual_request: whether the demo asked for the retrain itself.
        drift_seen_at: monotonic time the stream crossed the drift.
        after_promotion: Score calls since the promotion.
        score_errors: Score calls that failed.
        timed_out: the demo's deadline passed.
    """

    champion: str
    canary: str | None = None
    promoted_version: str | None = None
    rejected: str | None = None
    detected_day: float | None = None
    drift_source: str = "nobody"
    evidence: list[Evidence] = field(default_factory=list)
    comparison: HoldoutComparison | None = None
    trainer_started: bool = False
    manual_request: bool = False
    drift_seen_at: float | None = None
    after_promotion: int = 0
    score_errors: int = 0
    timed_out: bool = False


class DemoStream:
    """Streams the plan's days and scores the scored ones.

    Args:
        config: the demo settings.
        timeline: the event-time plan.
        stack: the private stack (broker, scorer tokens).
        summary: receives every Score call.
        state: the loop's state (read to pick the pace and to stop).
        progress: one line per status report.
        milestone: one line per step of the loop.
    """

    def __init__(
        self,
        config: DemoConfig,
        timeline: Timeline,
        stack: StackConfig,
        summary: DemoSummary,
        state: StreamState,
        *,
        progress: Callable[[str], None],
        milestone: Callable[[str], None],
    ) -> None:
        self.config = config
        self.timeline = timeline
        self.stack = stack
        self.summary = summary
        self.state = state
        self.progress = progress
        self.milestone = milestone
        self.truth: dict[str, bool] = {}
        self.lag = 0

    def _labelled(self) -> Iterator[LabelledTransaction]:
        sim = TransactionSimulator(
            SimulatorConfig(
                seed=self.config.seed,
                n_customers=self.config.n_customers,
                n_terminals=self.config.n_terminals,
                start=self.timeline.start,
                label_delay=timedelta(days=self.config.label_delay_days),
                drift_at=self.timeline.drift_start - self.timeline.start,
            )
        )
        for items in sim.iter_days(0, self.timeline.horizon_day):
            for item in items:
                self.truth[item.transaction.transaction_id] = item.is_fraud
                yield item

    def _rate(self, day: float) -> float:
        state = self.state
        if day < self.timeline.scored_from_day:
            return self.config.warmup_rate
        if state.canary is not None:
            return self.config.scored_rate
        if day >= self.timeline.retrain_ready_day:
            return self.config.live_rate
        return self.config.scored_rate

    def _finished(self) -> bool:
        state = self.state
        return state.rejected is not None or (
            state.promoted_version is not None
            and state.after_promotion >= self.config.after_promotion_requests
        )

    def _flink_lag(self) -> int:
        lag = consumer_lag(
            self.stack.kafka.bootstrap_servers, FLINK_GROUP, ("transactions", "labels")
        )
        return lag.total

    def _wait_for_flink(self, below: int, deadline: float) -> None:
        """Hold the stream while the feature job's committed lag is at or above ``below``."""
        while (lag := self._flink_lag()) >= below and time.monotonic() < deadline:
            self.lag = lag
            time.sleep(0.5)
        self.lag = lag

    def run(self, *, tick: Callable[[float], None], deadline: float) -> None:
        """Stream until the promotion is shown, a rejection, the horizon or the deadline."""
        from services.scoring.client import read_token
        from services.scoring.config import ScoringConfig

        scoring = ScoringConfig.from_env()
        assert scoring.tokens_file is not None  # the stack's scorer always has one
        client = GrpcScoreClient(
            f"127.0.0.1:{scoring.port}", read_token(scoring.tokens_file, "score")
        )
        publisher = publisher_for(local_kafka_settings("riskstream-demo-producer"))
        now = time.monotonic()
        next_slot, next_tick, next_report = now, now + 1.0, now + 10.0
        scoring_started = drift_announced = False
        day = 0.0
        # Events wait here until the transactions among them are scored: scored first,
        # published after, in stream order.
        held: list[SimulatedEvent] = []
        to_score: list[events_pb2.Transaction] = []
        try:
            for event in merge_labels(self._labelled()):
                if not isinstance(event, SimulatedEvent):
                    continue
                now = time.monotonic()
                if now >= next_tick:
                    self._release(client, publisher, held, to_score)
                    tick(day)
                    self._wait_for_flink(self.config.max_flink_lag, deadline)
                    next_tick = time.monotonic() + 1.0
                    if self._finished():
                        break
                    if now > deadline:
                        self.state.timed_out = True
                        self.milestone("the demo's time budget ran out")
                        break
                if now >= next_report:
                    next_report = now + 10.0
                    self._report(day)
                day = self.timeline.day_of(event.emit_at)
                next_slot = max(next_slot, now) + 1.0 / self._rate(day)
                if next_slot - now > _MIN_SLEEP_S:
                    time.sleep(next_slot - now)
                tx = event.transaction
                if tx is not None and self.timeline.scored(event.emit_at):
                    if not scoring_started:
                        scoring_started = True
                        publisher.flush()
                        self._wait_for_flink(200, deadline)
                        self.milestone(
                            f"feature job caught up on {day:.0f} simulated days: the client "
                            "now calls Score for every transaction"
                        )
                    if not drift_announced and day >= self.timeline.drift_day:
                        drift_announced = True
                        self.milestone(
                            f"drift injected on day {self.timeline.drift_day}: spend x1.6, "
                            "night-time e-commerce fraud at new merchants abroad"
                        )
                    to_score.append(tx)
                held.append(event)
                if len(to_score) >= IN_FLIGHT or (not to_score and len(held) >= 1):
                    self._release(client, publisher, held, to_score)
            self._release(client, publisher, held, to_score)
            publisher.flush()
        finally:
            client.close()

    def _release(
        self,
        client: GrpcScoreClient,
        publisher: KafkaEventPublisher,
        held: list[SimulatedEvent],
        to_score: list[events_pb2.Transaction],
    ) -> None:
        """Score the held transactions together, then publish every held event in order."""
        if to_score:
            for tx, (response, latency_ms) in zip(
                to_score, client.score_all(to_score), strict=True
            ):
                self._record(tx, response, latency_ms)
        for event in held:
            publisher.publish(event)
        held.clear()
        to_score.clear()

    def _record(
        self, tx: events_pb2.Transaction, response: scoring_pb2.ScoreResponse | None, ms: float
    ) -> None:
        if response is None:
            self.state.score_errors += 1
            return
        day = self.timeline.day_of(tx.event_time.ToDatetime(tzinfo=UTC))
        self.summary.update(
            ScoredRequest(
                day=day,
                phase=self.timeline.phase(self.timeline.at(day)),
                model_version=response.model_version,
                route=events_pb2.Route.Name(response.route).removeprefix("ROUTE_").lower(),
                decision=events_pb2.Decision.Name(response.decision)
                .removeprefix("DECISION_")
                .lower(),
                score=response.score,
                latency_ms=ms,
                amount=tx.amount,
                is_fraud=self.truth.get(tx.transaction_id, False),
            )
        )
        if self.state.promoted_version is not None:
            self.state.after_promotion += 1

    def _report(self, day: float) -> None:
        s, state = self.summary.result(), self.state
        versions = state.champion + (f", canary {state.canary}" if state.canary else "")
        self.progress(
            f"        day {day:5.1f} {self.timeline.phase(self.timeline.at(day)):<10} "
            f"scored {s.requests:>7,}  p99 {s.latency_p99_ms:6.2f} ms  "
            f"feature-job lag {self.lag:>6,}  models: {versions}"
        )
