"""A canary's baseline read from its real, verified artifact (the registry's reader)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from riskstream.v1 import events_pb2
from services.controller.artifacts import ArtifactBaselineLoader
from services.controller.baseline import sketch_counts
from services.drift.testing import store_reference_artifact
from services.registry.artifact import REFERENCE_FILE
from services.registry.reference_loader import ArtifactReferenceLoader
from services.registry.signing import generate_key_pair, load_public_key
from services.registry.store import LocalArtifactStore
from services.scoring.testing import build_test_artifact
from services.trainer.distributions import reference_document


def _reference(rows: int = 2_000) -> dict[str, object]:
    scores = np.random.default_rng(5).lognormal(-5.0, 1.2, rows).clip(0.0, 1.0)
    return reference_document(
        {}, scores, feature_names=[], window={"start": "2026-01-01", "end": "2026-01-03"}
    )


def _loader(store: LocalArtifactStore, **kw: object) -> ArtifactBaselineLoader:
    return ArtifactBaselineLoader(ArtifactReferenceLoader(store, **kw))  # type: ignore[arg-type]


def test_the_holdout_scores_and_decline_rate_of_a_verified_artifact(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    doc = _reference()
    record = store_reference_artifact(store, doc, version="v2")
    record.metrics.update({"decline_rate": 0.004, "rows": 2_000.0})
    baseline = _loader(store).load(record)
    assert baseline.missing == ""
    assert (baseline.version, baseline.decline_rate, baseline.decline_rows) == ("v2", 0.004, 2_000)
    assert baseline.score_rows == 2_000
    assert baseline.score_counts == sketch_counts(doc["__score__"]["sample"], 2_000)  # type: ignore[index]


def test_an_artifact_without_a_reference_gives_the_record_metrics_alone(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    record = build_test_artifact(store, version="old").record().to_event()
    record.metrics["decline_rate"] = 0.01
    baseline = _loader(store).load(record)
    assert baseline.score_counts == () and baseline.decline_rate == 0.01
    assert baseline.missing == "no reference: artifact has no reference"


def test_a_reference_that_does_not_verify_is_not_used(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    record = store_reference_artifact(store, _reference(), version="v2")
    (Path(record.artifact_uri.removeprefix("file://")) / REFERENCE_FILE).write_text("{}")
    tampered = _loader(store).load(record)
    assert tampered.score_counts == () and "sha256" in tampered.missing
    # A key is configured and the record carries no signature: refused as the scorer would.
    key = load_public_key(generate_key_pair(tmp_path / "keys").public_key)
    unsigned = store_reference_artifact(store, _reference(), version="v3")
    refused = _loader(store, public_key=key).load(unsigned)
    assert refused.score_counts == () and "bad_signature" in refused.missing


def test_a_record_that_is_no_artifact_falls_back_without_raising() -> None:
    record = events_pb2.ModelVersion(version="v9", artifact_uri="s3://bucket/v9", sha256="00")
    baseline = _loader(LocalArtifactStore(Path("/nonexistent"))).load(record)
    assert "unsupported_uri" in baseline.missing
