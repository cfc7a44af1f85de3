"""`riskstream models`, `models show`, `approve` and `models prune` on a private topic.

Real Kafka: versions and transitions are published to a topic of this test's own,
the commands read it from the beginning, and what they publish is read back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from riskstream.v1 import events_pb2
from services.cli.__main__ import main
from services.common.kafka import EventProducer, KafkaClientSettings
from services.registry.log import read_model_updates
from services.registry.metadata import TimeWindow
from services.registry.model_card import ModelCard
from services.registry.publish import KafkaModelVersionPublisher
from services.registry.transitions import transition

pytestmark = pytest.mark.integration

CANDIDATE = events_pb2.MODEL_STATUS_CANDIDATE
CANARY = events_pb2.MODEL_STATUS_CANARY
CHAMPION = events_pb2.MODEL_STATUS_CHAMPION
REJECTED = events_pb2.MODEL_STATUS_REJECTED
ARCHIVED = events_pb2.MODEL_STATUS_ARCHIVED
#: A shared score token; admin tokens issued per person, so approvals name someone.
TOKENS = {"score": "s" * 32, "admin": {"alice": "a" * 32, "bob": "b" * 32}}


def card(version: str, day: int) -> ModelCard:
    return ModelCard(
        model_name="fraud-xgb",
        version=version,
        owner="risk-ml",
        intended_use="Fraud review queue for card payments.",
        created_at=f"2026-01-{day:02d}T00:00:00Z",
        train_window=TimeWindow("2025-12-01T00:00:00Z", "2025-12-20T00:00:00Z"),
        validation_window=TimeWindow("2025-12-27T00:00:00Z", "2026-01-01T00:00:00Z"),
        data_sources=("offline-store",),
        feature_set_version="fs-0123456789ab",
        feature_names=("tx_amount", "card_tx_count_1h"),
        metrics={"average_precision": 0.7, "roc_auc": 0.9, "ece": 0.01},
        segment_metrics={"amount_band=high": {"average_precision": 0.61}},
        calibration={"method": "isotonic", "ece": 0.01},
        gate={"passed": True, "reasons": [], "champion_version": None},
        high_impact=True,
    )


def record(
    version: str, status: int, day: int, *, with_card: bool = True
) -> events_pb2.ModelVersion:
    event = events_pb2.ModelVersion(
        model_name="fraud-xgb",
        version=version,
        status=status,
        artifact_uri=f"file:///models/{version}",
        sha256=f"{day:02d}" * 32,
        metrics={"average_precision": 0.6 + day / 100, "roc_auc": 0.9, "ece": 0.01},
        transition_reason="published by the trainer",
    )
    if with_card:
        event.model_card_json = card(version, day).to_json().decode()
    event.rollout.high_impact = True
    event.created_at.FromDatetime(datetime(2026, 1, day, tzinfo=UTC))
    event.transition_time.FromDatetime(datetime(2026, 1, day, 1, tzinfo=UTC))
    return event


@pytest.fixture
def registry(kafka_settings: KafkaClientSettings, make_topic, tmp_path: Path, monkeypatch) -> str:
    """A private model-updates topic with five versions, and the CLI pointed at it."""
    topic = make_topic("model-updates", partitions=1, dlq=False)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    monkeypatch.setenv("RISKSTREAM_KAFKA_BOOTSTRAP", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("RISKSTREAM_SCORING_TOKENS_FILE", str(tokens))
    monkeypatch.delenv("RISKSTREAM_ADMIN_TOKEN", raising=False)
    sink = KafkaModelVersionPublisher(EventProducer(kafka_settings), topic=topic)
    v1, v2, v3 = record("v1", CANDIDATE, 1), record("v2", CANDIDATE, 2), record("v3", CANDIDATE, 3)
    at = datetime(2026, 1, 10, tzinfo=UTC)
    for event in (
        v1,
        transition(v1, CHAMPION, "first champion", at=at),
        v2,
        transition(v2, CANARY, "canary at 10%", at=at, canary_weight=0.1),
        v3,
        transition(v3, REJECTED, "gate: ece 0.2 > 0.05", at=at, rejection_reasons=["ece"]),
        record("v4", CANDIDATE, 4, with_card=False),
        record("v5", CANDIDATE, 5),
    ):
        sink.publish(event)
    return topic


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_show_approve_and_prune(
    registry: str, kafka_settings: KafkaClientSettings, capsys, tmp_path: Path, monkeypatch
) -> None:
    topic = registry
    # -- models: a table a person can read
    code, out, _ = run(capsys, "models", "--topic", topic)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "fraud-xgb: champion v1 · canary v2 (10%)"
    rows = {line.split()[0]: line for line in lines[2:] if line.startswith("  v")}
    assert set(rows) == {"v1", "v2", "v3", "v4", "v5"}
    assert "champion *" in rows["v1"] and "first champion" in rows["v1"]
    assert "canary *" in rows["v2"] and "0.6200" in rows["v2"] and "canary at 10%" in rows["v2"]
    assert "rejected" in rows["v3"] and "gate: ece 0.2 > 0.05" in rows["v3"]
    assert "candidate" in rows["v4"] and "2026-01-04T00:00:00" in rows["v4"]
    assert "needs `riskstream approve VERSION`" in out

    code, out, _ = run(capsys, "models", "--topic", topic, "--json", "--model", "fraud-xgb")
    [model] = json.loads(out)
    assert (model["champion"], model["canary"], model["canary_weight"]) == ("v1", "v2", 0.1)
    v3 = next(v for v in model["versions"] if v["version"] == "v3")
    assert v3["status"] == "rejected" and v3["rejection_reasons"] == ["ece"]
    assert [h["status"] for h in v3["history"]] == ["candidate", "rejected"]

    # -- models show: the card in Markdown and JSON; a version without a card
    code, out, _ = run(capsys, "models", "show", "v2", "--topic", topic)
    assert code == 0
    assert out.startswith("# Model card: fraud-xgb v2\n")
    assert "| amount_band=high | 0.6100 |" in out
    assert "- Status: canary" in out and "- Approved by: nobody" in out
    code, out, _ = run(capsys, "models", "--topic", topic, "show", "v2", "--json")
    assert json.loads(out) == card("v2", 2).to_dict()
    code, _, err = run(capsys, "models", "show", "v4", "--topic", topic)
    assert code == 1 and "fraud-xgb/v4 has no model card" in err
    code, _, err = run(capsys, "models", "show", "v404", "--topic", topic)
    assert code == 2 and "no version 'v404' of model 'fraud-xgb'" in err

    # -- approve: refused without a token, with a wrong one, with a score token
    code, _, err = run(capsys, "approve", "v2", "--topic", topic)
    assert code == 2 and "RISKSTREAM_ADMIN_TOKEN" in err
    monkeypatch.setenv("RISKSTREAM_ADMIN_TOKEN", "x" * 32)
    code, _, err = run(capsys, "approve", "v2", "--topic", topic)
    assert code == 2 and "unknown token" in err
    monkeypatch.setenv("RISKSTREAM_ADMIN_TOKEN", TOKENS["score"])
    code, _, err = run(capsys, "approve", "v2", "--topic", topic)
    assert code == 2 and "role is 'score'" in err
    monkeypatch.delenv("RISKSTREAM_ADMIN_TOKEN")
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKENS["admin"]["alice"] + "\n")
    code, _, err = run(capsys, "approve", "v3", "--topic", topic, "--token-file", str(token_file))
    assert code == 2 and "fraud-xgb/v3 is rejected" in err
    refused = [e for e in read_model_updates(kafka_settings, topic=topic) if e.approved_by]
    assert refused == []  # nothing was published by the refusals
    # --by is checked against the token's holder, never believed
    code, _, err = run(
        capsys, "approve", "v2", "--topic", topic, "--token-file", str(token_file), "--by", "bob"
    )
    assert code == 2 and "--by 'bob', but the token is alice's" in err
    assert [e for e in read_model_updates(kafka_settings, topic=topic) if e.approved_by] == []
    code, out, _ = run(capsys, "approve", "v2", "--topic", topic, "--token-file", str(token_file))
    assert code == 0 and out.strip() == "approved fraud-xgb/v2 (canary) by alice"
    approved = read_model_updates(kafka_settings, topic=topic)[-1]
    assert (approved.version, approved.status, approved.approved_by) == ("v2", CANARY, "alice")
    assert approved.transition_reason == "approved by alice"
    assert approved.model_card_json == card("v2", 2).to_json().decode()
    assert approved.rollout.canary_weight == 0.1 and approved.sha256 == "02" * 32

    # -- prune: the retention setting from the environment, then --keep
    monkeypatch.setenv("RISKSTREAM_REGISTRY_TOPIC", topic)
    monkeypatch.setenv("RISKSTREAM_REGISTRY_KEEP_VERSIONS", "1")
    code, out, _ = run(capsys, "models", "prune")
    assert code == 0 and out.splitlines() == ["archived fraud-xgb/v4"]
    code, out, _ = run(capsys, "models", "prune", "--keep", "0", "--json")
    assert json.loads(out) == {"keep": 0, "archived": ["fraud-xgb/v5"]}
    code, out, _ = run(capsys, "models", "prune", "--keep", "0")
    assert out.startswith("nothing to archive")
    events = read_model_updates(kafka_settings, topic=topic)
    archived = [e for e in events if e.status == ARCHIVED]
    assert [e.version for e in archived] == ["v4", "v5"]
    assert archived[1].model_card_json == card("v5", 5).to_json().decode()
    assert archived[1].metrics["average_precision"] == pytest.approx(0.65)

    # -- what a user sees afterwards, through the console entry point
    env = {**os.environ, "RISKSTREAM_REGISTRY_TOPIC": topic}
    listing = subprocess.run(
        [sys.executable, "-m", "services.cli", "models"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    rows = {line.split()[0]: line for line in listing.stdout.splitlines() if line.startswith("  v")}
    assert "alice" in rows["v2"] and "approved by alice" in rows["v2"]
    assert "archived" in rows["v4"] and "archived" in rows["v5"]
    assert "champion" in rows["v1"] and "rejected" in rows["v3"]
