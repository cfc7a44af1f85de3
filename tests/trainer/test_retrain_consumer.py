"""The retrain consumer on real Kafka: bad requests and failed trainings are
dead-lettered with the reason, and the consumer goes on; requests for another model
are skipped. (A successful retrain is covered end to end in
test_lifecycle_end_to_end.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from riskstream.v1 import events_pb2
from services.cli.__main__ import main
from services.common.events import encode
from services.common.kafka import EventProducer, KafkaClientSettings
from services.registry.store import LocalArtifactStore
from services.stack.config import StackConfig
from services.trainer import __main__ as retrain_consumer
from services.trainer.config import TrainerConfig

pytestmark = pytest.mark.integration  # Kafka, Redis and the stack of `riskstream up`


def _request(model: str = "fraud-xgb") -> events_pb2.RetrainRequest:
    request = events_pb2.RetrainRequest(
        request_id=f"req-{uuid.uuid4().hex[:8]}", model_name=model,
        reason=events_pb2.RETRAIN_REASON_FEATURE_DRIFT, requested_by="test",
    )  # fmt: skip
    request.requested_at.GetCurrentTime()
    return request


def _dead_letters(settings: KafkaClientSettings, topic: str, count: int) -> list[dict[str, str]]:
    consumer = Consumer({**settings.client_config(), "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topic])
    found: list[dict[str, str]] = []
    try:
        for _ in range(60):
            for message in consumer.consume(10, timeout=0.5):
                if message.error() is None:
                    found.append({k: v.decode() for k, v in message.headers() or []})
            if len(found) >= count:
                break
    finally:
        consumer.close()
    return found


def test_bad_and_failing_requests_go_to_the_dlq_with_the_reason(
    running_stack: StackConfig, kafka_settings: KafkaClientSettings,
    make_topic: Callable[..., str], tmp_path: Path,
) -> None:  # fmt: skip
    requests = make_topic("retrain-requests", partitions=1)
    updates = make_topic("model-updates", partitions=1, dlq=False)
    producer = EventProducer(kafka_settings)
    producer.send(requests, b'{"request_id": "broken", "reason": 42}', key="fraud-xgb")
    producer.send(requests, encode(_request("another-model")), key="another-model")
    producer.send(requests, encode(_request()), key="fraud-xgb")  # nothing to train on
    producer.flush(10)

    handler = retrain_consumer.run(
        TrainerConfig(burn_in_days=0), kafka_settings, stack=running_stack,
        offline_root=tmp_path / "empty-offline-store", store=LocalArtifactStore(tmp_path / "m"),
        requests_topic=requests, updates_topic=updates, group_id=uuid.uuid4().hex,
        idle_timeout_s=5,
    )  # fmt: skip

    assert handler.outcomes == []
    letters = _dead_letters(kafka_settings, requests + ".dlq", 2)
    reasons = [h.get("dlq.reason", "") for h in letters]
    assert len(reasons) == 2, letters
    assert reasons[0].startswith("model_name")  # the malformed field is named
    assert "no labelled transactions" in reasons[1]


def test_riskstream_train_without_labelled_rows_says_so(
    running_stack: StackConfig, make_topic: Callable[..., str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    updates = make_topic("model-updates", partitions=1, dlq=False)
    code = main(["train", "--offline-root", str(tmp_path / "nothing"), "--topic", updates,
                 "--store", str(tmp_path / "models")])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "riskstream train failed" in err and "no labelled transactions" in err
    code = main(["train", "--end", "2018-04-16T00:00:00", "--topic", updates])
    assert code == 1 and "needs a time zone" in capsys.readouterr().err
