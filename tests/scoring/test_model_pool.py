"""Bad artifacts are refused and the current champion keeps serving."""

from __future__ import annotations

import pytest

from riskstream.v1 import events_pb2
from services.registry.rollout import VersionRecord
from services.registry.store import LocalArtifactStore
from services.scoring.model_loader import ModelLoader
from services.scoring.pool import ModelPool
from services.scoring.testing import TestArtifact, build_test_artifact, tampered_copy

CHAMPION = events_pb2.MODEL_STATUS_CHAMPION


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("sha256", "sha256_mismatch"),
        ("onnx", "corrupt_model"),
        ("feature_order", "feature_order_mismatch"),
    ],
)
def test_a_bad_artifact_is_refused_and_the_old_model_keeps_serving(
    loader: ModelLoader, store: LocalArtifactStore, v1: TestArtifact, v2: TestArtifact,
    edit: str, reason: str,
) -> None:  # fmt: skip
    refused: list[str] = []
    pool = ModelPool("fraud-xgb", loader.load, on_refused=lambda r: refused.append(r.reason))
    assert pool.apply([v1.record()]) == []
    uri, sha = tampered_copy(v2, store.root, edit)
    bad = VersionRecord("fraud-xgb", "v2", CHAMPION, artifact_uri=uri, sha256=sha)
    refusals = pool.apply([bad])
    assert [r.reason for r in refusals] == [reason] == refused
    assert pool.snapshot.champion is not None and pool.snapshot.champion.version == "v1"
    assert pool.desired.champion == "v2"  # the log's wish is remembered, not served
    # The same refused record is not retried on every apply.
    assert pool.apply([bad]) == []


def test_a_model_trained_on_another_feature_set_is_refused(
    loader: ModelLoader, store: LocalArtifactStore
) -> None:
    other = build_test_artifact(store, version="old-fs", feature_set_version="fs-000000000000")
    pool = ModelPool("fraud-xgb", loader.load)
    (refusal,) = pool.apply([other.record()])
    assert refusal.reason == "feature_set_mismatch"
    assert pool.snapshot.champion is None


def test_promotion_swaps_the_snapshot_and_keeps_last_good_loaded(
    loader: ModelLoader, v1: TestArtifact, v2: TestArtifact
) -> None:
    pool = ModelPool("fraud-xgb", loader.load)
    pool.apply([v1.record()])
    before = pool.snapshot
    pool.apply([v2.record()])
    after = pool.snapshot
    assert before.champion is not None and before.champion.version == "v1"  # untouched
    assert after.champion is not None and after.champion.version == "v2"
    assert after.last_good is before.champion  # same loaded object: instant rollback
