"""The drift monitor's process against the real broker, on private topics: a stationary
stretch raises nothing, an injected drift lands one RetrainRequest on the topic with
the evidence naming the drifted features."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer

from riskstream.v1 import events_pb2
from services.common.events import decode_retrain_request
from services.common.kafka import EventProducer, KafkaClientSettings
from services.drift.testing import SyntheticStream, reference_of, store_reference_artifact
from services.registry.publish import KafkaModelVersionPublisher
from services.registry.store import LocalArtifactStore
from services.scoring.score_events import ScoreRecord, encode_score_event
from services.scoring.testing import TEST_FEATURES

pytestmark = pytest.mark.integration

ROWS = 1_000


def _publish_scores(settings: KafkaClientSettings, topic: str, stream, rng, start: int, n: int):
    producer = EventProducer(settings)
    cols, score = stream.draw(rng, n)
    now_ms = int(time.time() * 1000)
    for i in range(n):
        at = now_ms - 600_000 + start + i
        record = ScoreRecord(
            f"tx-{start + i}", "ab" * 16, "term-1", at, at, 10.0, TEST_FEATURES,
            [float(cols[name][i]) for name in TEST_FEATURES], "fs-1", float(score[i]), 1,
            "fraud-xgb", "v1", events_pb2.ROUTE_CHAMPION,
        )  # fmt: skip
        producer.send(topic, encode_score_event(record), key=record.transaction_id)
    producer.flush(30)


def _requests(settings: KafkaClientSettings, topic: str, timeout_s: float):
    consumer = Consumer({**settings.client_config(), "group.id": f"t-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([topic])
    found = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not found:
            for message in consumer.consume(10, timeout=0.5):
                if message.error() is None and message.value():
                    found.append((message.key(), decode_retrain_request(message.value())))
        end = time.monotonic() + 3  # anything more (a duplicate) would arrive now
        while time.monotonic() < end:
            for message in consumer.consume(10, timeout=0.5):
                if message.error() is None and message.value():
                    found.append((message.key(), decode_retrain_request(message.value())))
    finally:
        consumer.close()
    return found


def test_drift_lands_one_retrain_request_with_evidence(
    kafka_settings: KafkaClientSettings, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topics = {
        "MODEL_UPDATES_TOPIC": make_topic("model-updates", partitions=1, dlq=False),
        "SCORES_TOPIC": make_topic("scores", partitions=3, dlq=False),
        "LABELS_TOPIC": make_topic("labels", partitions=1, dlq=False),
        "RETRAIN_TOPIC": make_topic("retrain-requests", partitions=1, dlq=False),
    }
    stationary = SyntheticStream(TEST_FEATURES)
    record = store_reference_artifact(
        LocalArtifactStore(tmp_path / "models"), reference_of(stationary, rows=20_000)
    )
    KafkaModelVersionPublisher(
        EventProducer(kafka_settings), topic=topics["MODEL_UPDATES_TOPIC"]
    ).publish(record)
    env = {
        **os.environ,
        **{f"RISKSTREAM_DRIFT_{k}": v for k, v in topics.items()},
        "RISKSTREAM_DRIFT_GROUP_ID": f"test-drift-{uuid.uuid4().hex[:8]}",
        "RISKSTREAM_DRIFT_OFFSET_RESET": "earliest",
        "RISKSTREAM_DRIFT_METRICS_PORT": "0",
        "RISKSTREAM_DRIFT_REPORT_DIR": str(tmp_path / "reports"),
        "RISKSTREAM_DRIFT_WINDOW_ROWS": str(ROWS),
        "RISKSTREAM_DRIFT_MIN_WINDOW_ROWS": "500",
        "RISKSTREAM_DRIFT_WINDOW_S": "3600",
        "RISKSTREAM_DRIFT_TICK_INTERVAL_S": "0.5",
        "RISKSTREAM_DRIFT_MAX_MODEL_AGE_S": "0",
        "RISKSTREAM_DRIFT_MAX_DATA_AGE_S": "0",
    }
    rng = np.random.default_rng(21)
    _publish_scores(kafka_settings, topics["SCORES_TOPIC"], stationary, rng, 0, 4 * ROWS)
    process = subprocess.Popen(
        [sys.executable, "-m", "services.drift"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert not _requests(kafka_settings, topics["RETRAIN_TOPIC"], 15)
        shifted = SyntheticStream(TEST_FEATURES, shift={"tx_amount": 1.5, "card_tx_count_1h": 2})
        _publish_scores(kafka_settings, topics["SCORES_TOPIC"], shifted, rng, 4 * ROWS, 3 * ROWS)
        found = _requests(kafka_settings, topics["RETRAIN_TOPIC"], 45)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        (tmp_path / "drift-output.log").write_text(output)  # kept for a failed run
    assert len(found) == 1, output[-3000:]
    key, request = found[0]
    assert key == b"fraud-xgb"
    assert request.reason == events_pb2.RETRAIN_REASON_FEATURE_DRIFT
    assert request.champion_version == "v1" and request.requested_by == "drift-monitor"
    named = {e.feature: e for e in request.evidence}
    assert {"tx_amount", "card_tx_count_1h"} <= set(named), output[-3000:]
    assert named["tx_amount"].test == "ks" and named["tx_amount"].p_value < 1e-3
    assert named["tx_amount"].window_rows == ROWS
    reports = sorted((tmp_path / "reports" / "fraud-xgb").glob("*.json"))
    assert len(reports) >= 5, output[-3000:]
    assert process.returncode == 0, output[-3000:]
