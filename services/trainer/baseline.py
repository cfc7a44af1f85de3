"""``train-baseline``: an XGBoost model on simulated data, exported as a registry artifact.

The procedure, in phases (each timed):

1. data — simulate ``config.days`` days, compute the reference features, split in
   time (burn-in | train | label-delay gap | validation);
2. fit — XGBoost ``binary:logistic`` on :data:`BASELINE_FEATURES`;
3. calibrate — raw validation probabilities → Platt or isotonic (lower held-out
   ECE), thresholds on the calibrated score, validation metrics;
4. export — ONNX through onnxmltools, parity with XGBoost on every validation row;
5. write — artifact into a temporary directory, then into the content-addressed
   store; signed when a private key is given.

Until the full trainer (Feast backfill, gates, model card) lands, this is how a first
champion is made. Publishing to ``model-updates`` is the CLI's job
(:mod:`services.registry.publish`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import onnx
import onnxmltools
import sklearn
import xgboost as xgb
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.feature_store.definitions import FEATURE_SET_VERSION
from services.registry.artifact import load_artifact, sha256_hex
from services.registry.metadata import ModelMetadata, TimeWindow
from services.registry.signing import key_id, sign_digest
from services.registry.store import LocalArtifactStore
from services.trainer.config import TrainerConfig
from services.trainer.dataset import BASELINE_FEATURES, Split, simulate_features, temporal_split
from services.trainer.errors import TrainingFailed
from services.trainer.evaluation import choose_calibration, choose_thresholds, validation_metrics
from services.trainer.export import check_parity, export_onnx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineResult:
    """What a baseline run produced.

    Attributes:
        metadata: the artifact's metadata (files filled in).
        digest: the artifact digest (sha256 of ``metadata.json``).
        uri: where the store put it.
        signature: ed25519 signature of the digest, or None when unsigned.
        signing_key_id: :func:`services.registry.signing.key_id` of the signer, or "".
        parity_max_diff: max |p_onnx - p_xgboost| over the validation rows.
        timings_s: seconds per phase (data, fit, calibrate, export, write).
    """

    metadata: ModelMetadata
    digest: str
    uri: str
    signature: bytes | None
    signing_key_id: str
    parity_max_diff: float
    timings_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Total seconds of the run."""
        return float(sum(self.timings_s.values()))


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fit_booster(train: Split, config: TrainerConfig) -> xgb.Booster:
    """XGBoost on the training rows, columns named :data:`BASELINE_FEATURES`.

    Raises:
        TrainingFailed: the rows hold a single class.
    """
    y = train.labels()
    if y.min(initial=1) == y.max(initial=0):
        raise TrainingFailed(f"training rows hold one class only ({len(y)} rows)", stage="fit")
    params = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": config.max_depth,
        "eta": config.learning_rate,
        "scale_pos_weight": config.scale_pos_weight,
        "nthread": config.nthread,
        "seed": config.seed,
    }
    dtrain = xgb.DMatrix(train.matrix(), label=y, feature_names=list(BASELINE_FEATURES))
    return xgb.train(params, dtrain, num_boost_round=config.trees)


def train_baseline(
    config: TrainerConfig,
    *,
    store: LocalArtifactStore,
    signing_key: Ed25519PrivateKey | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BaselineResult:
    """Run the whole procedure (see the module docstring).

    Raises:
        TrainingFailed: no usable data, or the export failed.
        ParityError: ONNX and XGBoost disagree beyond ``config.parity_tolerance``.
    """
    timings: dict[str, float] = {}
    mark = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal mark
        now = time.monotonic()
        timings[phase] = now - mark
        mark = now

    features, start = simulate_features(config)
    train, valid = temporal_split(features, start, config)
    y_valid = valid.labels()
    if len(valid.frame) == 0 or y_valid.min(initial=1) == y_valid.max(initial=0):
        raise TrainingFailed("validation rows hold one class only", stage="data")
    lap("data")
    log.info("training on %d rows (%d frauds)", len(train.frame), int(train.labels().sum()))

    booster = fit_booster(train, config)
    lap("fit")

    x_valid = valid.matrix()
    raw = booster.predict(xgb.DMatrix(x_valid, feature_names=list(BASELINE_FEATURES)))
    choice = choose_calibration(raw, y_valid, bins=config.ece_bins)
    score = choice.calibration.apply(raw)
    thresholds = choose_thresholds(
        score,
        y_valid,
        review_rate=config.review_rate,
        decline_precision=config.decline_precision,
        decline_max_rate=config.decline_max_rate,
    )
    metrics = validation_metrics(raw, score, y_valid, thresholds, bins=config.ece_bins)
    metrics |= {
        "ece": choice.heldout_ece[choice.calibration.method],
        **{f"ece_heldout_{m}": v for m, v in choice.heldout_ece.items()},
        "train_rows": float(len(train.frame)),
        "train_frauds": float(train.labels().sum()),
    }
    lap("calibrate")

    export = export_onnx(booster, len(BASELINE_FEATURES), opset=config.onnx_opset)
    parity = check_parity(export, booster, x_valid, tolerance=config.parity_tolerance)
    metrics["parity_max_abs_diff"] = parity
    lap("export")

    created = clock()
    metadata = ModelMetadata(
        model_name=config.model_name,
        version=f"baseline-{created.astimezone(UTC):%Y%m%d%H%M%S}-"
        f"{sha256_hex(export.onnx_bytes)[:8]}",
        feature_names=BASELINE_FEATURES,
        feature_set_version=FEATURE_SET_VERSION,
        thresholds=thresholds,
        calibration=choice.calibration,
        input_name=export.input_name,
        output_name=export.output_name,
        output_index=export.output_index,
        train_window=TimeWindow(_utc(train.start), _utc(train.end)),
        validation_window=TimeWindow(_utc(valid.start), _utc(valid.end)),
        metrics={k: float(v) for k, v in metrics.items() if np.isfinite(v)},
        created_at=_utc(created),
        framework={
            "trainer": "baseline",
            "xgboost": xgb.__version__,
            "onnx": onnx.__version__,
            "onnxmltools": onnxmltools.__version__,
            "scikit_learn": sklearn.__version__,
            "onnx_opset": export.opset,
            "simulator_seed": config.seed,
            "simulated_days": config.days,
        },
    )
    uri, digest = store.add(
        onnx_bytes=export.onnx_bytes,
        xgb_json_bytes=bytes(booster.save_raw("json")),
        metadata=metadata,
    )
    signature = sign_digest(signing_key, digest) if signing_key is not None else None
    signer = key_id(signing_key.public_key()) if signing_key is not None else ""
    # Read back through the scorer's own checks: what was stored is what loads.
    stored = load_artifact(
        store.resolve(uri),
        expected_sha256=digest,
        expected_feature_set_version=FEATURE_SET_VERSION,
    )
    lap("write")
    log.info("model %s/%s written to %s", metadata.model_name, metadata.version, uri)
    return BaselineResult(
        metadata=stored.metadata,
        digest=digest,
        uri=uri,
        signature=signature,
        signing_key_id=signer,
        parity_max_diff=parity,
        timings_s=timings,
    )
