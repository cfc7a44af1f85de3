"""The controller against the real broker, on private topics: it promotes a good canary and
rejects a constant-score one, publishing each transition with its reason."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from riskstream.v1 import events_pb2
from services.common.kafka import EventProducer, KafkaClientSettings
from services.controller.__main__ import build
from services.controller.config import ControllerConfig
from services.controller.telemetry import NullControllerTelemetry
from services.registry.log import read_model_updates
from services.registry.publish import KafkaModelVersionPublisher
from services.scoring.decision import APPROVE, DECLINE, REVIEW
from services.scoring.routing import bucket_of, takes_canary
from services.scoring.score_events import ScoreRecord, encode_score_event

pytestmark = pytest.mark.integration

WEIGHT = 0.25


def _version(name: str, status: int, at_s: float) -> events_pb2.ModelVersion:
    record = events_pb2.ModelVersion(
        model_name="fraud-xgb", version=name, status=status,  # type: ignore[arg-type]
        model_card_json='{"owner": "risk-ml"}',
    )  # fmt: skip
    record.transition_time.FromMilliseconds(int(at_s * 1000))
    record.rollout.canary_weight = WEIGHT if status == events_pb2.MODEL_STATUS_CANARY else 0.0
    record.thresholds.review, record.thresholds.decline = 0.1, 0.9
    return record


def _decision(score: float) -> int:
    return DECLINE if score >= 0.9 else REVIEW if score >= 0.1 else APPROVE


def _publish_scores(
    settings: KafkaClientSettings, topic: str, n: int, canary_score: Callable[[float], float]
) -> None:
    """n decisions of the last 50 s, cards split by the scorer's own routing."""
    rng = random.Random(11)
    producer = EventProducer(settings)
    now_ms = int(time.time() * 1000)
    for i in range(n):
        digest = rng.randbytes(16)
        canary = takes_canary(bucket_of(digest), WEIGHT)
        score = min(1.0, rng.lognormvariate(-5.0, 1.2))
        if canary:
            score = canary_score(score)
        at_ms = now_ms - 50_000 + i * 50_000 // n
        record = ScoreRecord(
            f"tx-{i}", digest.hex(), "term-1", at_ms, at_ms, 10.0, ("tx_amount",), [10.0],
            "fs-1", score, _decision(score), "fraud-xgb", "v2" if canary else "v1",
            events_pb2.ROUTE_CANARY if canary else events_pb2.ROUTE_CHAMPION,
            latency_ms=rng.uniform(1.0, 4.0),
        )  # fmt: skip
        producer.send(topic, encode_score_event(record), key=record.transaction_id)
    producer.flush(30)


@pytest.fixture
def topics(make_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "model_updates_topic": make_topic("model-updates", partitions=1, dlq=False),
        "scores_topic": make_topic("scores", partitions=3, dlq=False),
        "labels_topic": make_topic("labels", partitions=1, dlq=False),
    }


@pytest.fixture
def run_controller(
    kafka_settings: KafkaClientSettings, topics: dict[str, str]
) -> Iterator[Callable[[], None]]:
    """Starts the controller's loop in a thread on the private topics; stops it after."""
    config = ControllerConfig(
        window_s=300, evaluate_interval_s=0.5, min_canary_requests=300,
        min_evidence_requests=200, metrics_port=0, **topics,  # type: ignore[arg-type]
    )  # fmt: skip
    stop = threading.Event()
    threads: list[threading.Thread] = []
    wired = build(config, kafka=kafka_settings, telemetry=NullControllerTelemetry())

    def start() -> None:
        thread = threading.Thread(target=wired.controller.run, args=(stop.is_set,), daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(10)
    wired.close()


def _published_for(
    settings: KafkaClientSettings, topic: str, version: str, status: int, timeout_s: float
) -> events_pb2.ModelVersion:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for record in read_model_updates(settings, topic=topic):
            if record.version == version and record.status == status:
                return record
        time.sleep(0.5)
    raise AssertionError(f"no {events_pb2.ModelStatus.Name(status)} record for {version}")  # type: ignore[arg-type]


def _setup(settings: KafkaClientSettings, topics: dict[str, str], canary_score) -> None:
    publisher = KafkaModelVersionPublisher(
        EventProducer(settings), topic=topics["model_updates_topic"]
    )
    now = time.time()
    publisher.publish(_version("v1", events_pb2.MODEL_STATUS_CHAMPION, now - 600))
    publisher.publish(_version("v2", events_pb2.MODEL_STATUS_CANARY, now - 60))
    _publish_scores(settings, topics["scores_topic"], 3_000, canary_score)


def test_a_good_canary_is_promoted_with_its_reason(
    kafka_settings: KafkaClientSettings, topics: dict[str, str], run_controller: Callable[[], None]
) -> None:
    _setup(kafka_settings, topics, canary_score=lambda s: s)
    run_controller()
    promoted = _published_for(
        kafka_settings, topics["model_updates_topic"], "v2", events_pb2.MODEL_STATUS_CHAMPION, 20
    )
    assert promoted.transition_reason.startswith("promote: passed (")
    assert "requests" in promoted.transition_reason and "PSI" in promoted.transition_reason
    assert promoted.model_card_json == '{"owner": "risk-ml"}'


def test_a_constant_score_canary_is_rejected_naming_the_divergence(
    kafka_settings: KafkaClientSettings, topics: dict[str, str], run_controller: Callable[[], None]
) -> None:
    _setup(kafka_settings, topics, canary_score=lambda s: 0.02)
    run_controller()
    rejected = _published_for(
        kafka_settings, topics["model_updates_topic"], "v2", events_pb2.MODEL_STATUS_REJECTED, 20
    )
    assert "score distribution diverges from champion v1" in rejected.transition_reason
    assert any("PSI" in reason for reason in rejected.rejection_reasons)
    records = read_model_updates(kafka_settings, topic=topics["model_updates_topic"])
    assert not any(r.version == "v2" and r.status == events_pb2.MODEL_STATUS_CHAMPION
                   for r in records)  # fmt: skip
