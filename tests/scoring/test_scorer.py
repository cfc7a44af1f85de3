"""The request path against fakes for Redis and Kafka (the real ones: test_server.py)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from riskstream.v1 import events_pb2
from services.registry.calibration import Calibration
from services.registry.store import LocalArtifactStore
from services.scoring.errors import Overloaded
from services.scoring.model_loader import ModelLoader
from services.scoring.pool import ModelPool
from services.scoring.routing import CardHasher
from services.scoring.scorer import CANARY, CHAMPION, FALLBACK, SHADOW, Scorer, Transaction
from services.scoring.telemetry import NullScoringTelemetry
from services.scoring.testing import (
    ListPublisher,
    StaticFeatureReader,
    TestArtifact,
    build_test_artifact,
)
from services.scoring.vectorize import Request, Stored

KEY = b"scorer-test-key-0123456789abcdef"
#: Transaction times of these tests (the scorer never compares them with its clock).
NOW_MS = time.time_ns() // 1_000_000
CARD = {
    "card_tx_count_1h": 3.0,
    "card_amount_sum_1h": 150.0,
    "card_tx_count_1d": 5.0,
    "card_amount_sum_1d": 400.0,
    "card_tx_count_30d": 20.0,
    "card_amount_sum_30d": 1_000.0,
}
TERMINAL = {"terminal_tx_count_1d": 40.0, "terminal_risk_7d": 0.05}


def make_scorer(
    pool: ModelPool, reader: StaticFeatureReader, publisher: ListPublisher, **kw: object
) -> Scorer:
    return Scorer(
        pool=pool, reader=reader, publisher=publisher, hasher=CardHasher(KEY),
        telemetry=NullScoringTelemetry(), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def tx(i: int = 0, amount: float = 120.0, card: str = "card-1") -> Transaction:
    return Transaction(f"tx-{i}", card, "term-1", amount, NOW_MS + i)


@pytest.fixture
def reader() -> StaticFeatureReader:
    return StaticFeatureReader(
        # Stored a minute ago by the wall clock: feature ages are measured against it.
        {"card-1": CARD},
        {"term-1": TERMINAL},
        event_time_ms=time.time_ns() // 1_000_000 - 60_000,
    )


def test_score_equals_xgboosts_own_probability_on_the_same_features(
    loader: ModelLoader, store: LocalArtifactStore, reader: StaticFeatureReader
) -> None:
    calibrated = build_test_artifact(
        store, version="cal", calibration=Calibration.platt(a=1.3, b=-0.2)
    )
    pool = ModelPool("fraud-xgb", loader.load)
    pool.apply([calibrated.record()])
    publisher = ListPublisher()
    scorer = make_scorer(pool, reader, publisher)

    async def run() -> list[float]:
        results = await asyncio.gather(*(scorer.score(tx(i, 20.0 + 37 * i)) for i in range(40)))
        return [r.score for r in results]

    scores = asyncio.run(run())
    layout = pool.snapshot.champion.layout  # type: ignore[union-attr]
    rows = np.array(
        [
            layout.build(
                Request(20.0 + 37 * i, NOW_MS + i),
                Stored(CARD, reader.event_time_ms),
                Stored(TERMINAL, reader.event_time_ms),
            )
            for i in range(40)
        ]
    )
    expected = calibrated.xgb_probability(rows)
    assert np.max(np.abs(np.array(scores) - expected)) <= 1e-5
    assert len(set(np.round(scores, 6))) > 5, "scores should vary with the amount"
    assert {r.model_version for r in publisher.records} == {"cal"}


def test_score_events_carry_the_card_pseudonym_never_the_card_id(
    loader: ModelLoader, v1: TestArtifact, reader: StaticFeatureReader
) -> None:
    pool = ModelPool("fraud-xgb", loader.load)
    pool.apply([v1.record()])
    publisher = ListPublisher()
    decided = asyncio.run(make_scorer(pool, reader, publisher).score(tx()))
    (record,) = publisher.records
    assert record.card_id_hash == CardHasher(KEY).pseudonym("card-1")
    assert "card-1" not in repr(record)
    assert record.route == CHAMPION == decided.route
    assert record.features["card_tx_count_1h"] == 4.0  # stored 3 + this transaction
    assert decided.card_found and 60_000.0 <= decided.card_age_ms < 120_000.0


@pytest.mark.parametrize("cause", ["redis_down", "no_model", "deadline", "model_error"])
def test_every_failure_of_the_model_path_falls_back_to_rules(
    loader: ModelLoader, v1: TestArtifact, reader: StaticFeatureReader, cause: str
) -> None:
    pool = ModelPool("fraud-xgb", loader.load)
    if cause != "no_model":
        pool.apply([v1.record()])
    if cause == "redis_down":
        reader.fail = True
    if cause == "model_error":
        champion = pool.snapshot.champion
        assert champion is not None
        object.__setattr__(champion.batcher, "_run", lambda rows: 1 / 0)
    publisher = ListPublisher()
    scorer = make_scorer(pool, reader, publisher)
    remaining = 0.001 if cause == "deadline" else None
    decided = asyncio.run(scorer.score(tx(amount=25_000.0), time_remaining_s=remaining))
    assert decided.route == FALLBACK
    assert decided.decision == events_pb2.DECISION_DECLINE  # amount rule
    assert (
        decided.fallback_reason
        == {
            "redis_down": "features_unavailable",
            "no_model": "no_model",
            "deadline": "deadline",
            "model_error": "model_error",
        }[cause]
    )
    assert publisher.records[-1].route == FALLBACK
    # The audit event names the version that failed (the controller counts it), and
    # only then: the other fallbacks happen before any model was chosen.
    failed = v1.metadata.version if cause == "model_error" else ""
    assert publisher.records[-1].model_version == failed
    assert decided.model_version == ""


def test_the_canary_decides_for_its_share_and_shadows_only_publish(
    loader: ModelLoader, store: LocalArtifactStore, v1: TestArtifact, v2: TestArtifact,
    reader: StaticFeatureReader,
) -> None:  # fmt: skip
    v3 = build_test_artifact(store, version="v3", seed=3)
    pool = ModelPool("fraud-xgb", loader.load)
    pool.apply(
        [
            v1.record(),
            v2.record(events_pb2.MODEL_STATUS_CANARY, canary_weight=0.25),
            v3.record(events_pb2.MODEL_STATUS_SHADOW),
        ]
    )
    publisher = ListPublisher()
    scorer = make_scorer(pool, reader, publisher, max_in_flight=4_096)

    async def run() -> list[int]:
        results = await asyncio.gather(
            *(scorer.score(tx(i, card=f"card-{i}")) for i in range(2_000))
        )
        await asyncio.sleep(0.01)  # let the shadow batches run
        return [r.route for r in results]

    routes = asyncio.run(run())
    assert routes.count(CANARY) / len(routes) == pytest.approx(0.25, abs=0.04)
    assert set(routes) == {CHAMPION, CANARY}
    shadow = [r for r in publisher.records if r.route == SHADOW]
    assert len(shadow) == 2_000 and {r.model_version for r in shadow} == {"v3"}


def test_reasons_come_from_the_models_contributions_only_when_asked(
    loader: ModelLoader, v1: TestArtifact, reader: StaticFeatureReader
) -> None:
    pool = ModelPool("fraud-xgb", loader.load)
    pool.apply([v1.record()])
    scorer = make_scorer(pool, reader, ListPublisher())
    plain = asyncio.run(scorer.score(tx(amount=900.0)))
    explained = asyncio.run(scorer.score(tx(amount=900.0), explain=True))
    assert plain.reasons == ()
    assert explained.reasons and explained.reasons[0].code == "TX_AMOUNT"
    assert all(r.contribution > 0 for r in explained.reasons)


def test_beyond_the_in_flight_bound_requests_fail_fast(
    loader: ModelLoader, v1: TestArtifact, reader: StaticFeatureReader
) -> None:
    pool = ModelPool("fraud-xgb", loader.load)
    pool.apply([v1.record()])
    scorer = make_scorer(pool, reader, ListPublisher(), max_in_flight=8)

    async def run() -> list[object]:
        return await asyncio.gather(
            *(scorer.score(tx(i)) for i in range(20)), return_exceptions=True
        )

    outcomes = asyncio.run(run())
    assert sum(isinstance(o, Overloaded) for o in outcomes) == 12
    assert scorer.in_flight == 0
