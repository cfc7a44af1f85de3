"""The request path: from a validated transaction to a decision, never an unhandled error.

validate (done by the server) → admission (bounded in-flight) → features from Redis
in one round trip → route (champion or sticky canary) → the row in the model's order
→ micro-batched ONNX Runtime → calibrated score → decision → reasons when asked →
score event queued → shadows scored off the hot path. Any failure on the model path
(no model, model error, Redis down or slow, caller deadline too short) ends in the
documented rules (:mod:`services.scoring.rules`) with route = fallback and a reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from riskstream.v1 import events_pb2
from services.feature_store.aggregation import TxEvent as Transaction
from services.feature_store.definitions import FEATURE_SET_VERSION
from services.feature_store.online import OnlineFeatures
from services.feature_store.redis_layout import (
    FeatureLayoutError,
    FeatureVector,
    OnlineStoreError,
)
from services.scoring.decision import decide
from services.scoring.errors import Overloaded
from services.scoring.model_loader import ServedModel
from services.scoring.pool import ModelPool
from services.scoring.reasons import Reason, top_reasons
from services.scoring.routing import CardHasher, bucket_of, takes_canary
from services.scoring.rules import FallbackRules
from services.scoring.score_events import ScoreRecord
from services.scoring.telemetry import ScoringTelemetry
from services.scoring.vectorize import EMPTY, Request, Stored

log = logging.getLogger(__name__)

CHAMPION = events_pb2.ROUTE_CHAMPION
CANARY = events_pb2.ROUTE_CANARY
SHADOW = events_pb2.ROUTE_SHADOW
FALLBACK = events_pb2.ROUTE_FALLBACK
ROUTE_NAMES = {
    v.number: v.name.removeprefix("ROUTE_").lower() for v in events_pb2.Route.DESCRIPTOR.values
}
DECISION_NAMES = {
    v.number: v.name.removeprefix("DECISION_").lower()
    for v in events_pb2.Decision.DESCRIPTOR.values
}


@dataclass(frozen=True, slots=True)
class Decided:
    """The outcome of one request."""

    transaction_id: str
    score: float
    decision: int
    reasons: tuple[Reason, ...]
    model_name: str
    model_version: str
    route: int
    card_age_ms: float
    terminal_age_ms: float
    card_found: bool
    terminal_found: bool
    feature_set_version: str
    fallback_reason: str
    latency_ms: float
    server_time_ms: int


class ScorePublisher(Protocol):
    """Where score records go (the Kafka adapter, or a list in tests)."""

    def publish(self, record: ScoreRecord) -> None:
        """Queue one record without blocking."""


class FeatureReader(Protocol):
    """The online store: both vectors of a request in one round trip."""

    async def read(self, card_id: str, terminal_id: str) -> OnlineFeatures:
        """Raises OnlineStoreError / FeatureLayoutError."""


class Scorer:
    """Decides one transaction at a time, any number concurrently.

    Args:
        pool: the loaded models and their rollout.
        reader: the online feature reader (one round trip).
        publisher: receives every decision (and every shadow score).
        hasher: keyed card hash (routing bucket, pseudonym in score events).
        telemetry: metrics hooks.
        rules: the fallback rules.
        max_in_flight: admission bound; beyond it :class:`Overloaded`.
        min_deadline_ms: a shorter remaining deadline goes straight to rules.
    """

    def __init__(
        self,
        *,
        pool: ModelPool,
        reader: FeatureReader,
        publisher: ScorePublisher,
        hasher: CardHasher,
        telemetry: ScoringTelemetry,
        rules: FallbackRules | None = None,
        max_in_flight: int = 1024,
        min_deadline_ms: float = 3.0,
    ) -> None:
        self._pool = pool
        self._reader = reader
        self._publisher = publisher
        self._hasher = hasher
        self._telemetry = telemetry
        self._rules = rules or FallbackRules()
        self._max_in_flight = max_in_flight
        self._min_deadline_s = min_deadline_ms / 1000.0
        self.in_flight = 0
        self._background: set[asyncio.Future[float]] = set()
        self._failures: dict[str, int] = {}

    async def score(
        self, tx: Transaction, *, explain: bool = False, time_remaining_s: float | None = None
    ) -> Decided:
        """Decide one transaction.

        Raises:
            Overloaded: more than ``max_in_flight`` requests are being handled.
        """
        if self.in_flight >= self._max_in_flight:
            raise Overloaded(in_flight=self.in_flight, limit=self._max_in_flight)
        self.in_flight += 1
        try:
            return await self._score(tx, explain, time_remaining_s)
        finally:
            self.in_flight -= 1

    async def _score(self, tx: Transaction, explain: bool, remaining: float | None) -> Decided:
        started = time.perf_counter()
        now_ms = time.time_ns() // 1_000_000
        digest = self._hasher.digest(tx.card_id)
        pseudonym = digest.hex()
        snap = self._pool.snapshot
        if remaining is not None and remaining < self._min_deadline_s:
            return self._fallback(tx, "deadline", None, started, now_ms, pseudonym)
        try:
            fetched = time.perf_counter()
            features = await self._reader.read(tx.card_id, tx.terminal_id)
            self._telemetry.on_features(time.perf_counter() - fetched)
        except (OnlineStoreError, FeatureLayoutError) as exc:
            self._warn("features unavailable", exc)
            return self._fallback(tx, "features_unavailable", None, started, now_ms, pseudonym)
        if snap.champion is None:
            return self._fallback(tx, "no_model", features, started, now_ms, pseudonym)
        model, route = snap.champion, CHAMPION
        if snap.canary is not None and takes_canary(bucket_of(digest), snap.canary_weight):
            model, route = snap.canary, CANARY
        card = _stored(features.card)
        terminal = _stored(features.terminal)
        request = Request(tx.amount, tx.event_time_ms)
        row = model.layout.build(request, card, terminal)
        try:
            score = await model.batcher.submit(row)
        except Exception as exc:  # noqa: BLE001 (a model error must end in rules, not an error)
            self._warn(f"model {model.version} failed", exc)
            return self._fallback(
                tx, "model_error", features, started, now_ms, pseudonym, failed=model.version
            )
        decision = decide(score, model.metadata.thresholds)
        reasons: tuple[Reason, ...] = ()
        if explain:
            reasons = await self._explain(model, row)
        latency_ms = (time.perf_counter() - started) * 1000.0
        card_age = _age(features.card.event_time_ms, now_ms)
        self._publisher.publish(
            ScoreRecord(
                tx.transaction_id, pseudonym, tx.terminal_id, tx.event_time_ms, now_ms,
                tx.amount, model.layout.feature_names, row,
                model.metadata.feature_set_version, score, decision,
                model.metadata.model_name, model.version, route, reasons, latency_ms,
                card_age, "",
            )
        )  # fmt: skip
        for shadow in snap.shadows:
            self._shadow(shadow, tx, request, card, terminal, pseudonym, now_ms, card_age)
        self._telemetry.on_scored(
            ROUTE_NAMES[route], model.version, DECISION_NAMES[decision], latency_ms / 1000.0,
            score,
        )  # fmt: skip
        return Decided(
            tx.transaction_id, score, decision, reasons, model.metadata.model_name,
            model.version, route, card_age, _age(features.terminal.event_time_ms, now_ms),
            features.card.found, features.terminal.found, model.metadata.feature_set_version,
            "", latency_ms, now_ms,
        )  # fmt: skip

    def _warn(self, what: str, exc: Exception) -> None:
        """Log the first failure of a kind and then every 1,000th (metrics count them all)."""
        count = self._failures.get(what, 0) + 1
        self._failures[what] = count
        if count == 1 or count % 1_000 == 0:
            log.warning("%s (%d so far): %r; falling back to rules", what, count, exc)

    async def _explain(self, model: ServedModel, row: list[float]) -> tuple[Reason, ...]:
        loop = asyncio.get_running_loop()
        contributions = await loop.run_in_executor(None, model.explainer.contributions, row)
        return tuple(top_reasons(model.layout.feature_names, row, contributions.tolist()))

    def _shadow(
        self,
        model: ServedModel,
        tx: Transaction,
        request: Request,
        card: Stored,
        terminal: Stored,
        pseudonym: str,
        now_ms: int,
        card_age: float,
    ) -> None:
        """Score with a shadow version; its result goes only to the ``scores`` topic."""
        row = model.layout.build(request, card, terminal)
        future = model.batcher.submit(row)
        self._background.add(future)

        def done(f: asyncio.Future[float]) -> None:
            self._background.discard(f)
            if f.cancelled() or f.exception() is not None:
                return
            score = f.result()
            self._publisher.publish(
                ScoreRecord(
                    tx.transaction_id, pseudonym, tx.terminal_id, tx.event_time_ms, now_ms,
                    tx.amount, model.layout.feature_names, row,
                    model.metadata.feature_set_version, score,
                    decide(score, model.metadata.thresholds), model.metadata.model_name,
                    model.version, SHADOW, (), 0.0, card_age, "",
                )
            )  # fmt: skip

        future.add_done_callback(done)

    def _fallback(
        self,
        tx: Transaction,
        reason: str,
        features: OnlineFeatures | None,
        started: float,
        now_ms: int,
        pseudonym: str,
        *,
        failed: str = "",
    ) -> Decided:
        """Rules decide; the score event names the version that failed, if one did.

        The response's ``model_version`` stays empty (no model decided); the audit
        event carries ``failed`` so the rollout controller can count the error
        against the version that raised it.
        """
        card_values = features.card.values if features is not None and features.card.found else None
        outcome = self._rules.decide(tx.amount, card_values)
        rule_reasons = tuple(
            Reason(code, "", 0.0, "fallback rule " + code) for code in outcome.reasons
        )
        latency_ms = (time.perf_counter() - started) * 1000.0
        card_age = _age(features.card.event_time_ms, now_ms) if features else -1.0
        self._telemetry.on_fallback(reason)
        self._telemetry.on_scored(
            "fallback", "", DECISION_NAMES[outcome.decision], latency_ms / 1000.0, outcome.score
        )
        self._publisher.publish(
            ScoreRecord(
                tx.transaction_id, pseudonym, tx.terminal_id, tx.event_time_ms, now_ms,
                tx.amount, ("tx_amount",), [tx.amount], FEATURE_SET_VERSION, outcome.score,
                outcome.decision, self._pool.model_name, failed, FALLBACK, rule_reasons,
                latency_ms, card_age, reason,
            )
        )  # fmt: skip
        return Decided(
            tx.transaction_id, outcome.score, outcome.decision, rule_reasons,
            self._pool.model_name, "", FALLBACK, card_age,
            _age(features.terminal.event_time_ms, now_ms) if features else -1.0,
            bool(features and features.card.found), bool(features and features.terminal.found),
            FEATURE_SET_VERSION, reason, latency_ms, now_ms,
        )  # fmt: skip


def _stored(vector: FeatureVector) -> Stored:
    return Stored(vector.values, vector.event_time_ms) if vector.found else EMPTY


def _age(event_time_ms: int | None, now_ms: int) -> float:
    return float(now_ms - event_time_ms) if event_time_ms is not None else -1.0
