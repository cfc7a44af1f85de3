"""A small real artifact (tiny XGBoost booster, stand-in ONNX bytes) for registry tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from services.registry import (
    Calibration,
    ModelMetadata,
    Thresholds,
    TimeWindow,
    write_artifact,
)

FEATURES = ("tx_amount", "card_tx_count_1h", "terminal_risk_7d")


@pytest.fixture(scope="session")
def xgb_json() -> bytes:
    """A three-feature booster, saved as XGBoost JSON with its feature names."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, len(FEATURES)))
    y = (x[:, 0] + rng.normal(size=300) > 0.5).astype(int)
    data = xgb.DMatrix(x, label=y, feature_names=list(FEATURES))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1}, data, 3)
    return bytes(booster.save_raw("json"))


@pytest.fixture
def metadata() -> ModelMetadata:
    return ModelMetadata(
        model_name="fraud-xgb",
        version="test-1",
        feature_names=FEATURES,
        feature_set_version="fs-0123456789ab",
        thresholds=Thresholds(review=0.2, decline=0.9),
        calibration=Calibration.platt(a=-1.2, b=0.3),
        input_name="input",
        output_name="probabilities",
        output_index=1,
        train_window=TimeWindow("2026-01-01T00:00:00Z", "2026-01-20T00:00:00Z"),
        validation_window=TimeWindow("2026-01-27T00:00:00Z", "2026-02-03T00:00:00Z"),
        metrics={"roc_auc": 0.91, "average_precision": 0.6, "ece": 0.002},
        created_at="2026-02-04T12:00:00Z",
        framework={"xgboost": "3.2.0", "onnx_opset": 15},
    )


ONNX_STAND_IN = b"\x08\x07onnx-bytes-stand-in"


@pytest.fixture
def onnx_stand_in() -> bytes:
    """Bytes written as model.onnx (the registry never parses them)."""
    return ONNX_STAND_IN


@pytest.fixture
def artifact(tmp_path: Path, xgb_json: bytes, metadata: ModelMetadata) -> tuple[Path, str]:
    """(directory, digest) of a freshly written artifact."""
    directory = tmp_path / "artifact"
    digest = write_artifact(
        directory, onnx_bytes=ONNX_STAND_IN, xgb_json_bytes=xgb_json, metadata=metadata
    )
    return directory, digest
