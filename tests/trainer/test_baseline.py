"""`riskstream train-baseline` end to end on a small simulation (a few seconds).

The artifact it stores must load through the registry's checks, carry its model card
and reference distributions, its ONNX model must score the holdout like XGBoost
itself, and its metrics must be plausible.
"""

from __future__ import annotations

import contextlib
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from services.cli.__main__ import main
from services.feature_store.definitions import FEATURE_SET_VERSION, HANDBOOK_FEATURES
from services.registry import (
    LoadedArtifact,
    generate_key_pair,
    load_artifact,
    load_public_key,
)
from services.registry.artifact import CARD_JSON_FILE, CARD_MARKDOWN_FILE, REFERENCE_FILE
from services.registry.model_card import ModelCard
from services.registry.store import LocalArtifactStore
from services.trainer.config import TrainerConfig
from services.trainer.dataset import BASELINE_FEATURES, KNOWN_FEATURES, simulate_features
from services.trainer.errors import ParityError
from services.trainer.export import check_parity, export_onnx
from services.trainer.rows import data_windows

SMALL = {"days": 28, "burn_in_days": 3, "validation_days": 5, "holdout_days": 5,
         "n_customers": 2000, "n_terminals": 4000, "trees": 60, "seed": 11}  # fmt: skip
ARGS = ["--days", "28", "--burn-in-days", "3", "--validation-days", "5", "--holdout-days", "5",
        "--customers", "2000", "--terminals", "4000", "--trees", "60", "--seed", "11"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], LoadedArtifact, Path]:
    """One CLI run, signed: (its --json output, the stored artifact, the key directory)."""
    root = tmp_path_factory.mktemp("baseline")
    keys = generate_key_pair(root / "keys")
    out = io.StringIO()
    argv = ["train-baseline", *ARGS, "--store", str(root / "store"), "--json"]
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--signing-key", str(keys.private_key)]) == 0
    summary = json.loads(out.getvalue())
    directory = LocalArtifactStore(root / "store").resolve(summary["uri"])
    artifact = load_artifact(
        directory,
        expected_sha256=summary["digest"],
        public_key=load_public_key(keys.public_key),
        signature=bytes.fromhex(summary["signature"]),
        expected_feature_set_version=FEATURE_SET_VERSION,
    )
    return summary, artifact, root


def test_the_artifact_loads_signed_and_names_known_features(run) -> None:
    summary, artifact, _ = run
    meta = artifact.metadata
    assert artifact.digest == summary["digest"]
    assert meta.feature_names == BASELINE_FEATURES
    assert set(meta.feature_names) <= KNOWN_FEATURES
    assert set(HANDBOOK_FEATURES) <= set(meta.feature_names)
    assert meta.feature_set_version == FEATURE_SET_VERSION
    assert meta.version.startswith("baseline-") and meta.model_name == "fraud-xgb"
    assert summary["signing_key_id"] and summary["published"] is False


def test_onnx_scores_the_holdout_like_xgboost(run) -> None:
    _, artifact, _ = run
    meta = artifact.metadata
    config = TrainerConfig(**SMALL)
    features, start = simulate_features(config)
    span = data_windows(start + timedelta(days=config.days), config).holdout
    times = features["event_time"]
    holdout = features.loc[(times >= span[0]) & (times < span[1])]
    x = holdout.loc[:, list(meta.feature_names)].to_numpy(dtype=np.float32)
    session = ort.InferenceSession(artifact.onnx_bytes, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == meta.input_name
    assert session.get_inputs()[0].shape[1] == len(meta.feature_names)
    (probabilities,) = session.run([meta.output_name], {meta.input_name: x})
    p_onnx = probabilities[:, meta.output_index]
    classifier = xgb.XGBClassifier()
    classifier.load_model(bytearray(artifact.xgb_json_bytes))
    p_xgb = classifier.predict_proba(x)[:, 1]
    assert len(x) > 10_000
    np.testing.assert_allclose(p_onnx, p_xgb, rtol=0, atol=1e-5)

    # Metrics recomputed from the served scores agree with the recorded ones.
    served = meta.calibration.apply(p_onnx.astype(np.float64))
    assert roc_auc_score(holdout["is_fraud"], served) == pytest.approx(
        meta.metrics["roc_auc"], abs=1e-4
    )
    assert meta.metrics["rows"] == len(holdout)


def test_metrics_thresholds_and_calibration_are_plausible(run) -> None:
    summary, artifact, _ = run
    meta, m = artifact.metadata, artifact.metadata.metrics
    assert m["roc_auc"] > 0.7
    assert m["fraud_rate"] < m["average_precision"] <= 1.0
    assert 0.0 <= m["ece"] < 0.05
    assert m["parity_max_abs_diff"] <= 1e-5
    assert 0.0 < meta.thresholds.review <= meta.thresholds.decline <= 1.0
    # Budgets are set on validation (0.5 % declined, 2 % flagged); the holdout is
    # out of sample, so it may overrun them a little, never by a factor of two.
    assert 0.0 < m["decline_rate"] < 0.01
    assert m["review_rate"] + m["decline_rate"] < 0.04
    assert meta.calibration.method in ("platt", "isotonic")
    # The map with the lower held-out ECE on validation was chosen; holdout ECE is honest.
    chosen = m[f"ece_heldout_{meta.calibration.method}"]
    assert chosen == min(m["ece_heldout_platt"], m["ece_heldout_isotonic"])
    assert m["ece"] < m["ece_raw"]
    assert 0.0 < m["card_precision_at_100"] <= 1.0 and 0.0 < m["recall_at_1pct_fpr"] <= 1.0
    assert summary["gate"]["passed"] is True and summary["status"] == "champion"
    assert len(summary["grid"]) == 4
    assert summary["seconds"] < 60


def test_the_artifact_carries_its_card_and_reference_distributions(run) -> None:
    _, artifact, _ = run
    meta = artifact.metadata
    assert {CARD_JSON_FILE, CARD_MARKDOWN_FILE, REFERENCE_FILE} <= set(meta.files)
    card = ModelCard.from_json((artifact.directory / CARD_JSON_FILE).read_bytes())
    assert card.version == meta.version and card.feature_names == meta.feature_names
    assert card.metrics["average_precision"] == meta.metrics["average_precision"]
    assert {"amount_band=ge250", "time_of_day=night", "day_type=weekend"} <= set(
        card.segment_metrics
    )
    assert card.gate["passed"] is True and card.limitations and card.failure_modes
    markdown = (artifact.directory / CARD_MARKDOWN_FILE).read_text()
    assert meta.version in markdown and "Metrics by segment" in markdown
    reference = json.loads((artifact.directory / REFERENCE_FILE).read_text())
    assert set(reference["features"]) == set(meta.feature_names)
    assert len(reference["__score__"]["sample"]) == 1000
    assert reference["features"]["tx_is_night"]["kind"] == "binary"
    assert reference["rows"] == meta.metrics["rows"]


def test_the_one_line_summary(run, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, root = run
    assert main(["train-baseline", *ARGS, "--trees", "5", "--store", str(root / "s2")]) == 0
    first, second = capsys.readouterr().out.strip().splitlines()[:2]
    assert first.startswith("fraud-xgb/baseline-") and "AUC" in first and "parity" in first
    assert "champion" in first and second.strip().startswith("digest ")


def test_a_parity_failure_is_loud() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)

    def booster(rounds: int) -> xgb.Booster:
        data = xgb.DMatrix(x, label=y)
        return xgb.train({"objective": "binary:logistic", "nthread": 1}, data, rounds)

    export = export_onnx(booster(5), 3, opset=15)
    assert check_parity(export, booster(5), x, tolerance=1e-5) <= 1e-5
    with pytest.raises(ParityError) as caught:
        check_parity(export, booster(6), x, tolerance=1e-5)
    assert caught.value.max_abs_diff > 1e-5 and caught.value.rows == 200
