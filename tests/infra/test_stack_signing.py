"""Artifact signing is on by default in the local stack.

``riskstream up`` makes a key pair in ``<state>/signing`` and points the services at
it: the trainer signs, the scorer, controller and drift monitor verify. Here a real
scorer process runs with exactly the environment the stack gives its scorer (on a
private state directory and topics), and an unsigned champion is refused while a
signed one is served.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path

import grpc
import pytest

from riskstream.v1 import events_pb2, scoring_pb2, scoring_pb2_grpc
from services.common.kafka import EventProducer, KafkaClientSettings
from services.registry.publish import KafkaModelVersionPublisher
from services.registry.signing import load_private_key, local_key_pair, sign_digest
from services.registry.store import LocalArtifactStore
from services.scoring.testing import ScorerProcess, build_test_artifact
from services.stack import StackConfig
from services.stack.components import all_components

pytestmark = pytest.mark.integration

KEY_SETTINGS = (
    "RISKSTREAM_SCORING_PUBLIC_KEY_FILE",
    "RISKSTREAM_CONTROLLER_PUBLIC_KEY_FILE",
    "RISKSTREAM_DRIFT_PUBLIC_KEY_FILE",
    "RISKSTREAM_TRAINER_SIGNING_KEY_FILE",
    "RISKSTREAM_TRAINER_PUBLIC_KEY_FILE",
)


def _environments(stack: StackConfig) -> dict[str, dict[str, str] | None]:
    return {c.name: c.environment() for c in all_components(stack)}


def test_the_stack_points_signers_and_verifiers_at_its_key_pair(
    running_stack: StackConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in KEY_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    stack = dataclasses.replace(running_stack, state_dir=tmp_path)
    envs = _environments(stack)
    keys = local_key_pair(tmp_path)
    assert keys.private_key.exists() and keys.public_key.exists()
    public, private = str(keys.public_key), str(keys.private_key)
    assert envs["scoring"]["RISKSTREAM_SCORING_PUBLIC_KEY_FILE"] == public  # type: ignore[index]
    assert envs["controller"]["RISKSTREAM_CONTROLLER_PUBLIC_KEY_FILE"] == public  # type: ignore[index]
    assert envs["drift"]["RISKSTREAM_DRIFT_PUBLIC_KEY_FILE"] == public  # type: ignore[index]
    trainer = envs["trainer"]
    assert trainer is not None and trainer["RISKSTREAM_TRAINER_SIGNING_KEY_FILE"] == private
    assert trainer["RISKSTREAM_TRAINER_PUBLIC_KEY_FILE"] == public
    # The processes that neither sign nor verify get the environment unchanged.
    assert envs["kafka"] is None and envs["offline-writer"] is None
    # An operator's own setting wins ("" is an unsigned stack).
    monkeypatch.setenv("RISKSTREAM_SCORING_PUBLIC_KEY_FILE", "")
    assert _environments(stack)["scoring"]["RISKSTREAM_SCORING_PUBLIC_KEY_FILE"] == ""  # type: ignore[index]


def test_the_stacks_scorer_refuses_an_unsigned_champion_and_serves_a_signed_one(
    running_stack: StackConfig,
    make_topic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RISKSTREAM_SCORING_PUBLIC_KEY_FILE", raising=False)
    stack = dataclasses.replace(running_stack, state_dir=tmp_path / "state")
    env = _environments(stack)["scoring"]
    assert env is not None
    updates = make_topic("model-updates", partitions=1, dlq=False)
    scores = make_topic("scores", partitions=1, dlq=False)
    tokens = {"score": "s-" + uuid.uuid4().hex, "admin": "a-" + uuid.uuid4().hex}
    (tmp_path / "tokens.json").write_text(json.dumps(tokens))
    env |= {
        "RISKSTREAM_KAFKA_BOOTSTRAP": running_stack.kafka.bootstrap_servers,
        "RISKSTREAM_SCORING_METRICS_PORT": "0",
        "RISKSTREAM_SCORING_REDIS_URL": f"redis://127.0.0.1:{running_stack.redis.port}/0",
        "RISKSTREAM_SCORING_MODEL_UPDATES_TOPIC": updates,
        "RISKSTREAM_SCORING_SCORES_TOPIC": scores,
        "RISKSTREAM_SCORING_STATE_DIR": str(tmp_path / "state"),
        "RISKSTREAM_SCORING_TOKENS_FILE": str(tmp_path / "tokens.json"),
        "RISKSTREAM_SCORING_CARD_HASH_KEY_FILE": str(tmp_path / "card.key"),
    }
    store = LocalArtifactStore(tmp_path / "state" / "models")
    kafka = KafkaClientSettings(running_stack.kafka.bootstrap_servers, client_id="signing-test")
    sink = KafkaModelVersionPublisher(EventProducer(kafka), topic=updates)
    unsigned = build_test_artifact(store, version="v1", seed=1)
    sink.publish(unsigned.record(events_pb2.MODEL_STATUS_CHAMPION).to_event())
    log = tmp_path / "scorer.log"
    scorer = ScorerProcess(env, log)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{scorer.port}") as channel:
            admin = scoring_pb2_grpc.ModelAdminStub(channel)
            auth = [("authorization", f"Bearer {tokens['admin']}")]

            def loaded() -> list[str]:
                reply = admin.ListModels(scoring_pb2.ListModelsRequest(), metadata=auth, timeout=5)
                return [m.version for m in reply.models]

            deadline = time.monotonic() + 30
            while "bad_signature" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "model fraud-xgb:v1 refused (bad_signature)" in log.read_text()
            assert loaded() == []  # rules answer; the unsigned model never serves

            key = load_private_key(local_key_pair(stack.state_dir).private_key)
            signed = build_test_artifact(store, version="v2", seed=2)
            record = signed.record(
                events_pb2.MODEL_STATUS_CHAMPION, signature=sign_digest(key, signed.digest)
            )
            sink.publish(record.to_event())
            deadline = time.monotonic() + 30
            while loaded() != ["v2"] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert loaded() == ["v2"]
    finally:
        scorer.stop()
