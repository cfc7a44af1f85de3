"""One training run: labelled feature rows in, a gated, carded, stored artifact out.

The run, in phases (each timed):

1. split — rows by event time: train | gap (label delay) | validation | holdout
   (:func:`services.trainer.rows.data_windows`);
2. fit — XGBoost ``binary:logistic`` for each point of the small grid (tree depth by
   fraud-row weight), chosen by average precision on the validation rows only;
3. calibrate — Platt or isotonic on validation (lower held-out ECE), thresholds on
   the calibrated validation score;
4. export — ONNX, parity with XGBoost on the validation and holdout rows, one-row
   inference latency;
5. holdout — the served path (ONNX → calibration) on the holdout: ranking metrics,
   Card Precision@100, recall at 1 % FPR, ECE, decision rates, the segment audit;
   the champion is scored on the same rows through its own artifact;
6. gate — :func:`services.trainer.gate.evaluate_gate`;
7. write — artifact (model, card, reference distributions) into the
   content-addressed store, signed when a key is given, read back through the
   scorer's checks.

The run never publishes: :func:`publication` turns it into the ``model-updates``
record (CANARY, CHAMPION for a first model, or REJECTED with the gate's reasons) and
the caller sends it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import onnx
import onnxmltools
import pandas as pd
import sklearn
import xgboost as xgb
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from riskstream.v1 import events_pb2
from services.feature_store.definitions import FEATURE_SET_VERSION
from services.registry.artifact import (
    CARD_JSON_FILE,
    CARD_MARKDOWN_FILE,
    REFERENCE_FILE,
    LoadedArtifact,
    load_artifact,
    sha256_hex,
)
from services.registry.metadata import ModelMetadata
from services.registry.model_card import ModelCard
from services.registry.publish import model_version_event
from services.registry.signing import key_id, sign_digest
from services.registry.store import LocalArtifactStore
from services.trainer.card import build_model_card
from services.trainer.config import TrainerConfig
from services.trainer.distributions import reference_document
from services.trainer.errors import TrainingFailed
from services.trainer.evaluation import choose_thresholds
from services.trainer.export import OnnxExport, check_parity, export_onnx
from services.trainer.fitting import GridPoint, calibrate, search_grid
from services.trainer.gate import GateBounds, GateResult, HoldoutReport, evaluate_gate
from services.trainer.holdout import (
    LATENCY_CALLS,
    artifact_raw,
    holdout_evaluation,
    one_row_latency_p99_ms,
    onnx_raw,
)
from services.trainer.rows import (
    data_windows,
    feature_matrix,
    label_array,
    require_both_classes,
    rows_in,
    time_window,
    utc_text,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingRun:
    """What a run produced.

    Attributes:
        metadata: the stored artifact's metadata.
        digest: the artifact digest (sha256 of ``metadata.json``).
        uri: where the store put it.
        signature: ed25519 signature of the digest, or None.
        signing_key_id: id of the signer's key, or "".
        gate: the validation gate's verdict.
        card: the model card.
        holdout_metrics: the candidate's holdout metrics.
        champion_metrics: the champion's on the same rows (empty without one).
        grid: every grid point tried.
        parity_max_diff: max |p_onnx - p_xgboost|.
        timings_s: seconds per phase.
    """

    metadata: ModelMetadata
    digest: str
    uri: str
    signature: bytes | None
    signing_key_id: str
    gate: GateResult
    card: ModelCard
    holdout_metrics: Mapping[str, float]
    champion_metrics: Mapping[str, float]
    grid: tuple[GridPoint, ...]
    parity_max_diff: float
    timings_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Total seconds of the run."""
        return float(sum(self.timings_s.values()))


def train_candidate(
    frame: pd.DataFrame,
    config: TrainerConfig,
    *,
    features: Sequence[str],
    end: datetime,
    store: LocalArtifactStore,
    champion: LoadedArtifact | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    data_sources: Sequence[str] = (),
    trainer: str = "riskstream-train",
    version_prefix: str = "v",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> TrainingRun:
    """Run every phase of the module docstring on ``frame``.

    Args:
        frame: labelled rows: ``event_time`` (tz-aware UTC), ``card_id``,
            ``is_fraud``, ``tx_amount``, ``tx_is_night``, ``tx_is_weekend`` and every
            name in ``features``.
        config: the run's settings.
        features: the model's inputs, in order.
        end: end of the holdout (exclusive); the windows are laid out before it.
        store: where the artifact goes.
        champion: the current champion's verified artifact (compared on the holdout).
        signing_key: signs the artifact's digest when given.
        data_sources: where the rows came from (the model card).
        trainer: what trained it (``framework.trainer``).
        version_prefix: the version is ``<prefix><created %Y%m%d%H%M%S>-<onnx sha8>``.
        clock: the creation time.

    Raises:
        TrainingFailed: a side holds one class, a feature is missing, export failed.
        ParityError: ONNX and XGBoost disagree beyond ``config.parity_tolerance``.
    """
    timings: dict[str, float] = {}
    mark = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal mark
        now = time.monotonic()
        timings[phase] = now - mark
        mark = now

    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise TrainingFailed(f"training rows lack features {missing}", stage="data")
    windows = data_windows(end, config)
    train, valid, holdout = (
        rows_in(frame, windows.train),
        rows_in(frame, windows.validation),
        rows_in(frame, windows.holdout),
    )
    for side, rows in (("training", train), ("validation", valid), ("holdout", holdout)):
        require_both_classes(rows, side)
    lap("split")
    log.info("rows: train %d, validation %d, holdout %d", len(train), len(valid), len(holdout))

    booster, best, grid = search_grid(train, valid, features, config)
    lap("fit")

    x_valid, y_valid = feature_matrix(valid, features), label_array(valid)
    raw_valid = booster.predict(xgb.DMatrix(x_valid, feature_names=list(features)))
    calibration, heldout_ece = calibrate(raw_valid, y_valid, config)
    thresholds = choose_thresholds(
        calibration.apply(raw_valid),
        y_valid,
        review_rate=config.review_rate,
        decline_precision=config.decline_precision,
        decline_max_rate=config.decline_max_rate,
    )
    lap("calibrate")

    export: OnnxExport = export_onnx(booster, len(features), opset=config.onnx_opset)
    x_holdout = feature_matrix(holdout, features)
    parity = check_parity(
        export, booster, np.vstack([x_valid, x_holdout]), tolerance=config.parity_tolerance
    )
    latency = one_row_latency_p99_ms(
        export.onnx_bytes, x_holdout[0], export.output_name, calls=LATENCY_CALLS
    )
    lap("export")

    raw_holdout = onnx_raw(
        export.onnx_bytes, export.input_name, export.output_name, export.output_index, x_holdout
    )
    result = holdout_evaluation(holdout, raw_holdout, calibration, thresholds, config)
    champion_report: HoldoutReport | None = None
    champion_metrics: dict[str, float] = {}
    if champion is not None:
        champ_meta = champion.metadata
        champ = holdout_evaluation(
            holdout,
            artifact_raw(champion, holdout),
            champ_meta.calibration,
            champ_meta.thresholds,
            config,
        )
        champion_metrics = dict(champ.metrics)
        champion_report = HoldoutReport(champ_meta.version, champ.metrics, champ.audit.disparity)
    lap("holdout")

    gate = evaluate_gate(
        HoldoutReport("", result.metrics, result.audit.disparity),
        champion_report,
        parity_max_diff=parity,
        latency_p99_ms=latency,
        bounds=GateBounds(
            max_ap_drop=config.gate_max_ap_drop,
            max_ece=config.gate_max_ece,
            max_disparity=config.gate_max_disparity,
            parity_tolerance=config.parity_tolerance,
            latency_budget_ms=config.gate_latency_budget_ms,
        ),
    )
    lap("gate")

    created = clock()
    stamp = f"{created.astimezone(UTC):%Y%m%d%H%M%S}"
    version = f"{version_prefix}{stamp}-{sha256_hex(export.onnx_bytes)[:8]}"
    metrics = {
        **result.metrics,
        **{f"ece_heldout_{m}": v for m, v in heldout_ece.items()},
        "validation_average_precision": best.validation_ap,
        "train_rows": float(len(train)),
        "train_frauds": float(label_array(train).sum()),
        "validation_rows": float(len(valid)),
        "parity_max_abs_diff": parity,
        "latency_p99_ms_one_row": latency,
        **{f"disparity_{d}": v for d, v in result.audit.disparity.items()},
    }
    metadata = ModelMetadata(
        model_name=config.model_name,
        version=version,
        feature_names=tuple(features),
        feature_set_version=FEATURE_SET_VERSION,
        thresholds=thresholds,
        calibration=calibration,
        input_name=export.input_name,
        output_name=export.output_name,
        output_index=export.output_index,
        train_window=time_window(windows.train),
        validation_window=time_window(windows.validation),
        metrics={k: float(v) for k, v in metrics.items() if np.isfinite(v)},
        created_at=utc_text(created),
        framework={
            "trainer": trainer,
            "xgboost": xgb.__version__,
            "onnx": onnx.__version__,
            "onnxmltools": onnxmltools.__version__,
            "scikit_learn": sklearn.__version__,
            "onnx_opset": export.opset,
            "seed": config.seed,
            "max_depth": best.max_depth,
            "trees": config.trees,
            "learning_rate": str(config.learning_rate),
            "scale_pos_weight": f"{best.scale_pos_weight:.6g} ({best.rule})",
        },
    )
    card = build_model_card(
        metadata,
        config,
        holdout=result,
        heldout_ece=heldout_ece,
        gate=gate,
        champion_metrics=champion_metrics,
        data_sources=(
            *data_sources,
            f"holdout (gate, metrics, reference distributions): "
            f"{utc_text(windows.holdout[0])} to {utc_text(windows.holdout[1])}",
        ),
    )
    reference = reference_document(
        {name: holdout[name].to_numpy(dtype=np.float64) for name in features},
        result.score,
        feature_names=features,
        window={"start": utc_text(windows.holdout[0]), "end": utc_text(windows.holdout[1])},
    )
    uri, digest = store.add(
        onnx_bytes=export.onnx_bytes,
        xgb_json_bytes=bytes(booster.save_raw("json")),
        metadata=metadata,
        extra_files={
            CARD_JSON_FILE: card.to_json(),
            CARD_MARKDOWN_FILE: card.to_markdown().encode("utf-8"),
            REFERENCE_FILE: json.dumps(reference, sort_keys=True, allow_nan=False).encode(),
        },
    )
    signature = sign_digest(signing_key, digest) if signing_key is not None else None
    signer = key_id(signing_key.public_key()) if signing_key is not None else ""
    stored = load_artifact(
        store.resolve(uri), expected_sha256=digest, expected_feature_set_version=FEATURE_SET_VERSION
    )
    lap("write")
    log.info(
        "model %s/%s written to %s; gate %s",
        metadata.model_name,
        version,
        uri,
        "passed" if gate.passed else "failed: " + "; ".join(gate.reasons),
    )
    return TrainingRun(
        metadata=stored.metadata,
        digest=digest,
        uri=uri,
        signature=signature,
        signing_key_id=signer,
        gate=gate,
        card=card,
        holdout_metrics=dict(result.metrics),
        champion_metrics=champion_metrics,
        grid=grid,
        parity_max_diff=parity,
        timings_s=timings,
    )


def publication(
    run: TrainingRun,
    config: TrainerConfig,
    *,
    has_champion: bool,
    reason: str,
    at: datetime | None = None,
) -> events_pb2.ModelVersion:
    """The ``model-updates`` record of a run.

    A failed gate gives REJECTED with the reasons; a pass gives CANARY at the
    configured weight, or CHAMPION when the model has no champion yet (nothing to
    canary against). The record carries the card, metrics and rollout plan, which
    every later transition copies forward.
    """
    if not run.gate.passed:
        status = events_pb2.MODEL_STATUS_REJECTED
        reason = f"{reason}: rejected by the validation gate"
    elif has_champion:
        status = events_pb2.MODEL_STATUS_CANARY
        reason = f"{reason}: passed the validation gate, canary at {config.canary_weight:g}"
    else:
        status = events_pb2.MODEL_STATUS_CHAMPION
        reason = f"{reason}: passed the validation gate, first champion"
    event = model_version_event(
        run.metadata,
        artifact_uri=run.uri,
        digest=run.digest,
        status=status,
        transition_reason=reason,
        signature=run.signature,
        signing_key_id=run.signing_key_id,
        transition_time=at,
    )
    event.model_card_json = run.card.to_json().decode("utf-8")
    event.rejection_reasons.extend(run.gate.reasons)
    plan = event.rollout
    plan.canary_weight = config.canary_weight if status == events_pb2.MODEL_STATUS_CANARY else 0.0
    plan.min_canary_requests = config.min_canary_requests
    plan.max_ap_drop = config.gate_max_ap_drop
    plan.max_p99_latency_ms = config.canary_max_p99_ms
    plan.high_impact = config.high_impact
    return event


def summary(run: TrainingRun) -> dict[str, Any]:
    """JSON-ready summary of a run (the CLI's ``--json``)."""
    meta = run.metadata
    return {
        "model_name": meta.model_name,
        "version": meta.version,
        "digest": run.digest,
        "uri": run.uri,
        "signature": run.signature.hex() if run.signature else None,
        "signing_key_id": run.signing_key_id or None,
        "feature_names": list(meta.feature_names),
        "feature_set_version": meta.feature_set_version,
        "thresholds": {"review": meta.thresholds.review, "decline": meta.thresholds.decline},
        "calibration": meta.calibration.method,
        "metrics": dict(meta.metrics),
        "champion_metrics": dict(run.champion_metrics),
        "gate": run.gate.to_dict(),
        "grid": [
            {
                "max_depth": p.max_depth,
                "scale_pos_weight": p.scale_pos_weight,
                "rule": p.rule,
                "validation_ap": p.validation_ap,
            }
            for p in run.grid
        ],
        "parity_max_diff": run.parity_max_diff,
        "train_window": {"start": meta.train_window.start, "end": meta.train_window.end},
        "validation_window": {
            "start": meta.validation_window.start,
            "end": meta.validation_window.end,
        },
        "timings_s": dict(run.timings_s),
        "seconds": run.seconds,
    }
