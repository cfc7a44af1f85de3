"""The model lifecycle end to end, on the real components.

Simulated card transactions (a slice of the handbook's simulator output, one card in
six) go through Kafka, the PyFlink feature job and the offline writer into a
private offline store. The trainer builds its point-in-time training set through
Feast and publishes a first champion; a retrain request, consumed by the trainer's
own consumer, produces a candidate that passes the gate against that champion and
is published as canary; a real scorer subprocess loads it and routes part of the
cards to it; the rollout controller (a real subprocess) compares canary and champion
on the score events and promotes it. Then a deliberately broken version (constant
scores) is published as canary and the controller rolls it back on its own, with
the reason on ``model-updates``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from riskstream.v1 import events_pb2
from services.common.events import encode
from services.common.kafka import EventProducer, KafkaClientSettings
from services.registry.calibration import Calibration
from services.registry.log import read_model_updates
from services.registry.publish import KafkaModelVersionPublisher
from services.registry.rollout import RegistryView, VersionRecord
from services.registry.store import LocalArtifactStore
from services.registry.transitions import transition
from services.scoring.client import ScoringClient
from services.scoring.testing import ScorerProcess, build_test_artifact, scorer_test_env
from services.stack.config import StackConfig
from services.trainer import __main__ as retrain_consumer
from services.trainer.config import TrainerConfig
from services.trainer.dataset import BASELINE_FEATURES
from services.trainer.runner import train_from_offline_store

if TYPE_CHECKING:
    from tests.trainer.conftest import ReplayedSlice

pytestmark = pytest.mark.integration  # Kafka, Redis and the stack of `riskstream up`

CONFIG = TrainerConfig(
    days=15, burn_in_days=0, validation_days=2, holdout_days=2, trees=60, nthread=2,
    grid_max_depth="4", grid_scale_pos_weight="sqrt", gate_min_segment_rows=200,
    gate_max_disparity=0.1, canary_weight=0.5, min_canary_requests=150,
)  # fmt: skip


@pytest.fixture(scope="module")
def offline_root(replayed_slice: ReplayedSlice) -> Path:
    """The shared offline store, filled through Kafka → Flink → offline writer."""
    report = replayed_slice.report
    assert report.transactions > 15_000 and report.labels == report.transactions
    assert report.feature_rows > 0 and report.rejected == 0
    return replayed_slice.offline_root


def _records(settings: KafkaClientSettings, topic: str) -> list[events_pb2.ModelVersion]:
    return read_model_updates(settings, topic=topic, timeout_s=20)


def _wait_for(what: str, check: Callable[[], object], timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1.0)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture
def services(
    running_stack: StackConfig, make_topic: Callable[..., str], tmp_path: Path
) -> Iterator[dict[str, object]]:
    """Private topics, a scorer and a controller subprocess following them."""
    updates = make_topic("model-updates", partitions=1, dlq=False)
    scores = make_topic("scores", partitions=3, dlq=False)
    labels = make_topic("labels", partitions=3, dlq=False)
    requests = make_topic("retrain-requests", partitions=1)
    bootstrap = running_stack.kafka.bootstrap_servers
    yield {
        "updates": updates, "scores": scores, "labels": labels, "requests": requests,
        "bootstrap": bootstrap, "tmp": tmp_path,
    }  # fmt: skip


def _start_scorer(topics: dict[str, object], redis_port: int) -> tuple[ScorerProcess, str, str]:
    tmp = topics["tmp"]
    assert isinstance(tmp, Path)
    env, tokens = scorer_test_env(
        tmp,
        bootstrap=str(topics["bootstrap"]),
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        updates_topic=str(topics["updates"]),
        scores_topic=str(topics["scores"]),
        metrics_port="0",
    )
    score, admin = tokens["score"], tokens["admin"]
    return ScorerProcess(env, tmp / "scorer.log"), score, admin


def _start_controller(topics: dict[str, object]) -> subprocess.Popen[bytes]:
    tmp = topics["tmp"]
    assert isinstance(tmp, Path)
    env = {
        **os.environ,
        "RISKSTREAM_KAFKA_BOOTSTRAP": str(topics["bootstrap"]),
        "RISKSTREAM_CONTROLLER_SCORES_TOPIC": str(topics["scores"]),
        "RISKSTREAM_CONTROLLER_LABELS_TOPIC": str(topics["labels"]),
        "RISKSTREAM_CONTROLLER_MODEL_UPDATES_TOPIC": str(topics["updates"]),
        "RISKSTREAM_CONTROLLER_WINDOW_S": "300",
        "RISKSTREAM_CONTROLLER_EVALUATE_INTERVAL_S": "2",
        "RISKSTREAM_CONTROLLER_MIN_EVIDENCE_REQUESTS": "60",
        "RISKSTREAM_CONTROLLER_METRICS_PORT": "0",
    }
    log = (tmp / "controller.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "services.controller"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _transaction(i: int) -> events_pb2.Transaction:
    tx = events_pb2.Transaction(
        transaction_id=f"e2e-{uuid.uuid4().hex[:12]}", card_id=f"card-{i}",
        terminal_id=f"term-{i % 97}", amount=float(20 + (i * 37) % 180), currency="EUR",
    )  # fmt: skip
    tx.event_time.GetCurrentTime()
    return tx


def _drive(client: ScoringClient, cards: int, rounds: int) -> dict[int, int]:
    routes: dict[int, int] = {}
    for _ in range(rounds):
        for i in range(cards):
            route = client.score(_transaction(i)).route
            routes[route] = routes.get(route, 0) + 1
    return routes


def _latest(records: list[events_pb2.ModelVersion], version: str) -> events_pb2.ModelVersion | None:
    mine = [r for r in records if r.version == version]
    return mine[-1] if mine else None


@pytest.mark.timeout(1500)
def test_train_canary_promote_then_roll_back_a_broken_version(
    running_stack: StackConfig,
    replayed_slice: ReplayedSlice,
    offline_root: Path,
    services: dict[str, object],
) -> None:
    bootstrap = str(services["bootstrap"])
    updates = str(services["updates"])
    settings = KafkaClientSettings(bootstrap_servers=bootstrap, client_id="lifecycle-test")
    publisher = KafkaModelVersionPublisher(EventProducer(settings), topic=updates)
    store = LocalArtifactStore(Path(str(services["tmp"])) / "models")
    feast_registry = Path(str(services["tmp"])) / "feast" / "registry.db"
    redis_url = f"redis://127.0.0.1:{running_stack.redis.port}"

    # 1. First model from the offline store: no champion yet, so it becomes champion.
    first = train_from_offline_store(
        CONFIG, features=BASELINE_FEATURES, offline_root=offline_root,
        registry_path=feast_registry, redis_url=redis_url, store=store, kafka=settings,
        publisher=publisher, topic=updates, end=replayed_slice.end,
    )  # fmt: skip
    assert first.run.gate.passed, first.run.gate.reasons
    assert first.event.status == events_pb2.MODEL_STATUS_CHAMPION
    champion = first.event.version

    scorer, score_token, admin_token = _start_scorer(services, running_stack.redis.port)
    controller = _start_controller(services)
    client = ScoringClient(f"127.0.0.1:{scorer.port}", score_token)
    admin = ScoringClient(f"127.0.0.1:{scorer.port}", admin_token)
    try:
        _wait_for("the champion to load", lambda: any(
            m.version == champion and m.status == events_pb2.MODEL_STATUS_CHAMPION
            for m in admin.list_models().models), 60)  # fmt: skip

        # 2. A retrain request through the trainer's consumer: gated against the
        #    champion on the same holdout, published as canary at half the cards.
        request = events_pb2.RetrainRequest(
            request_id=f"req-{uuid.uuid4().hex[:8]}", model_name=CONFIG.model_name,
            reason=events_pb2.RETRAIN_REASON_MANUAL, requested_by="lifecycle-test",
            champion_version=champion,
        )  # fmt: skip
        request.window_end.FromDatetime(replayed_slice.end)
        request.requested_at.GetCurrentTime()
        producer = EventProducer(settings)
        producer.send(str(services["requests"]), encode(request), key=CONFIG.model_name)
        producer.flush(10)
        handler = retrain_consumer.run(
            CONFIG, settings, stack=running_stack,
            offline_root=offline_root, store=store, requests_topic=str(services["requests"]),
            updates_topic=updates, group_id=f"lifecycle-{uuid.uuid4().hex[:6]}",
            idle_timeout_s=20,
        )  # fmt: skip
        assert len(handler.outcomes) == 1
        outcome = handler.outcomes[0]
        assert outcome.status == events_pb2.MODEL_STATUS_CANARY, list(outcome.rejection_reasons)
        assert outcome.transition_reason.startswith(f"retrain {request.request_id} (manual")
        canary = outcome.version
        _wait_for("the canary to load", lambda: any(
            m.version == canary and m.status == events_pb2.MODEL_STATUS_CANARY
            for m in admin.list_models().models), 60)  # fmt: skip

        # 3. Traffic: half the cards go to the canary; the controller promotes it.
        routes = _drive(client, cards=200, rounds=2)
        assert routes.get(events_pb2.ROUTE_CANARY, 0) > 100, routes
        promoted = _wait_for("the controller to promote the canary", lambda: (
            (r := _latest(_records(settings, updates), canary)) is not None
            and r.status == events_pb2.MODEL_STATUS_CHAMPION and r)
            or (_drive(client, cards=50, rounds=1) and None), 120)  # fmt: skip
        assert isinstance(promoted, events_pb2.ModelVersion)
        assert promoted.transition_reason  # the controller says why
        assert promoted.model_card_json == outcome.model_card_json  # carried forward
        _wait_for("the scorer to serve the new champion", lambda: any(
            m.version == canary and m.status == events_pb2.MODEL_STATUS_CHAMPION
            for m in admin.list_models().models), 60)  # fmt: skip

        # 4. A broken version (constant scores) as canary: rolled back on its own.
        broken = build_test_artifact(
            store, version="broken-constant", features=BASELINE_FEATURES, constant=0.02,
            calibration=Calibration.isotonic(x=(0.0, 1.0), y=(0.01, 0.01)),
        )  # fmt: skip
        base = broken.record().to_event()
        base.rollout.min_canary_requests = 150
        publisher.publish(
            transition(base, events_pb2.MODEL_STATUS_CANARY, "test: broken canary",
                       canary_weight=0.5)
        )  # fmt: skip
        _wait_for("the broken canary to load", lambda: any(
            m.version == "broken-constant" for m in admin.list_models().models), 60)  # fmt: skip
        rolled_back = _wait_for("the controller to roll back the broken canary", lambda: (
            (r := _latest(_records(settings, updates), "broken-constant")) is not None
            and r.status == events_pb2.MODEL_STATUS_REJECTED and r)
            or (_drive(client, cards=100, rounds=1) and None), 120)  # fmt: skip
        assert isinstance(rolled_back, events_pb2.ModelVersion)
        reason = rolled_back.transition_reason.lower()
        assert "psi" in reason or "divergence" in reason or "ks" in reason, reason
        # The champion is untouched, and the scorer stops routing to the broken version.
        view = RegistryView(CONFIG.model_name)
        view.apply(VersionRecord.from_event(e) for e in _records(settings, updates))
        assert view.state.champion == canary and view.state.canary is None
        _wait_for("the scorer to drop the broken canary", lambda: all(
            m.status != events_pb2.MODEL_STATUS_CANARY for m in admin.list_models().models),
            60)  # fmt: skip
        after = _drive(client, cards=100, rounds=1)
        assert after.get(events_pb2.ROUTE_CANARY, 0) == 0, after
    finally:
        client.close()
        admin.close()
        controller.terminate()
        controller.wait(20)
        assert scorer.stop() == 0, scorer.log_path.read_text()[-2000:]
