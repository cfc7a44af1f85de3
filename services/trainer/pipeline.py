"""One training run: labelled feature rows in, a gated, carded, stored artifact out.

The run, in phases (each timed):

1. split — rows by event time: train | gap (label delay) | validation | holdout
   (:func:`data_windows`);
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
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import onnx
import onnxmltools
import onnxruntime as ort
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
from services.registry.calibration import Calibration
from services.registry.metadata import ModelMetadata, Thresholds, TimeWindow
from services.registry.model_card import ModelCard
from services.registry.publish import model_version_event
from services.registry.signing import key_id, sign_digest
from services.registry.store import LocalArtifactStore
from services.trainer.config import TrainerConfig
from services.trainer.distributions import reference_document
from services.trainer.errors import TrainingFailed
from services.trainer.evaluation import (
    choose_calibration,
    choose_thresholds,
    expected_calibration_error,
    fit_calibration,
)
from services.trainer.export import OnnxExport, check_parity, export_onnx
from services.trainer.gate import GateBounds, GateResult, HoldoutReport, evaluate_gate
from services.trainer.metrics import (
    average_precision,
    card_precision_at_k,
    recall_at_fpr,
    roc_auc,
)
from services.trainer.segments import SegmentAudit, segment_audit, segment_labels

log = logging.getLogger(__name__)

LABEL = "is_fraud"
LATENCY_CALLS = 2000

INTENDED_USE = (
    "Real-time fraud score for card-present and card-not-present payment authorisations, "
    "served by riskstream's scorer to approve, send to manual review or decline. Not for "
    "credit decisions, customer profiling or any use outside payment fraud screening."
)
LIMITATIONS = (
    "Trained on labels known after a fixed label delay: fraud patterns newer than the "
    "training window are not represented.",
    "Terminal fraud risk features lag by the label delay and are 0 for new terminals.",
    "Card history features start empty for new cards: first transactions of a card are "
    "scored mainly on amount and time.",
    "Calibration holds for the fraud rate of the training period; a shift in base rate "
    "moves the meaning of the thresholds.",
)
FAILURE_MODES = (
    "Redis unavailable or slow: the scorer falls back to amount/velocity rules "
    "(route=fallback), not this model.",
    "Feature pipeline lag: stale card features understate velocity (the response carries "
    "the feature age).",
    "Card-testing bursts faster than the 10-minute window's refresh are seen late.",
    "Segments with few frauds in the holdout (see metrics by segment) have unreliable "
    "recall estimates.",
)


@dataclass(frozen=True)
class DataWindows:
    """Event-time spans of one run's rows, each ``[start, end)`` in UTC."""

    train: tuple[datetime, datetime]
    validation: tuple[datetime, datetime]
    holdout: tuple[datetime, datetime]


def data_windows(end: datetime, config: TrainerConfig) -> DataWindows:
    """Spans ending at ``end``: holdout, validation before it, the gap, then training.

    Training covers ``config.train_days`` days.

    Examples:
        >>> w = data_windows(datetime(2026, 3, 1, tzinfo=UTC), TrainerConfig(days=30,
        ...     burn_in_days=0, validation_days=3, holdout_days=2))
        >>> [f"{a:%m-%d}..{b:%m-%d}" for a, b in (w.train, w.validation, w.holdout)]
        ['01-30..02-17', '02-24..02-27', '02-27..03-01']
    """
    holdout = (end - timedelta(days=config.holdout_days), end)
    validation = (holdout[0] - timedelta(days=config.validation_days), holdout[0])
    train_end = validation[0] - timedelta(days=config.gap_days)
    return DataWindows(
        train=(train_end - timedelta(days=config.train_days), train_end),
        validation=validation,
        holdout=holdout,
    )


def _rows(frame: pd.DataFrame, span: tuple[datetime, datetime]) -> pd.DataFrame:
    times = frame["event_time"]
    return frame.loc[(times >= span[0]) & (times < span[1])].reset_index(drop=True)


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(span: tuple[datetime, datetime]) -> TimeWindow:
    return TimeWindow(_utc(span[0]), _utc(span[1]))


def _matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    return np.ascontiguousarray(frame.loc[:, list(features)].to_numpy(dtype=np.float32))


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[LABEL].to_numpy(dtype=np.int8)


def _both_classes(frame: pd.DataFrame, side: str) -> None:
    y = _labels(frame)
    if len(y) == 0 or y.min() == y.max():
        raise TrainingFailed(
            f"{side} rows hold one class only ({len(y)} rows, {int(y.sum())} frauds)",
            stage="data",
        )


# --- fit ------------------------------------------------------------------------


@dataclass(frozen=True)
class GridPoint:
    """One fitted point of the hyper-parameter grid and its validation AP."""

    max_depth: int
    scale_pos_weight: float
    rule: str
    validation_ap: float


def _pos_weight(rule: str, y: np.ndarray) -> float:
    if rule == "sqrt":
        frauds = max(int(y.sum()), 1)
        return math.sqrt((len(y) - frauds) / frauds)
    return float(rule)


def fit_booster(
    x: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    config: TrainerConfig,
    *,
    max_depth: int,
    scale_pos_weight: float,
) -> xgb.Booster:
    """XGBoost ``binary:logistic`` (histogram trees), columns named ``features``."""
    params = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": max_depth,
        "eta": config.learning_rate,
        "scale_pos_weight": scale_pos_weight,
        "nthread": config.nthread,
        "seed": config.seed,
    }
    data = xgb.DMatrix(x, label=y, feature_names=list(features))
    return xgb.train(params, data, num_boost_round=config.trees)


def search_grid(
    train: pd.DataFrame, valid: pd.DataFrame, features: Sequence[str], config: TrainerConfig
) -> tuple[xgb.Booster, GridPoint, tuple[GridPoint, ...]]:
    """Fit every grid point on ``train``; keep the best validation AP (holdout unseen)."""
    x, y = _matrix(train, features), _labels(train)
    x_valid, y_valid = _matrix(valid, features), _labels(valid)
    best: tuple[xgb.Booster, GridPoint] | None = None
    points: list[GridPoint] = []
    for depth in config.max_depths():
        for rule in config.pos_weight_rules():
            weight = _pos_weight(rule, y)
            booster = fit_booster(x, y, features, config, max_depth=depth, scale_pos_weight=weight)
            raw = booster.predict(xgb.DMatrix(x_valid, feature_names=list(features)))
            point = GridPoint(depth, weight, rule, average_precision(y_valid, raw))
            points.append(point)
            log.info(
                "grid depth=%d pos_weight=%s: validation AP %.4f", depth, rule, point.validation_ap
            )
            if best is None or point.validation_ap > best[1].validation_ap:
                best = (booster, point)
    assert best is not None  # the config guarantees a non-empty grid
    return best[0], best[1], tuple(points)


def calibrate(
    raw: np.ndarray, y: np.ndarray, config: TrainerConfig
) -> tuple[Calibration, dict[str, float]]:
    """The configured map (``auto``: Platt or isotonic by held-out ECE) and the ECEs seen."""
    if config.calibration == "auto":
        choice = choose_calibration(raw, y, bins=config.ece_bins)
        return choice.calibration, dict(choice.heldout_ece)
    if config.calibration == "identity":
        return Calibration.identity(), {}
    return fit_calibration(raw, y, config.calibration), {}


# --- holdout ---------------------------------------------------------------------


@dataclass(frozen=True)
class HoldoutResult:
    """What the served path does on the holdout rows."""

    metrics: Mapping[str, float]
    audit: SegmentAudit
    score: np.ndarray


def holdout_evaluation(
    frame: pd.DataFrame,
    raw: np.ndarray,
    calibration: Calibration,
    thresholds: Thresholds,
    config: TrainerConfig,
) -> HoldoutResult:
    """Metrics of raw probabilities ``raw`` of the holdout ``frame`` as served.

    Ranking metrics use the calibrated score (what the scorer returns; monotone maps
    keep AUC, and isotonic ties can only lower AP a little); ECE and decision rates
    use it too.
    """
    y = _labels(frame)
    score = calibration.apply(raw)
    day = frame["event_time"].dt.floor("D").to_numpy()
    declined, flagged = score >= thresholds.decline, score >= thresholds.review
    frauds = max(int(y.sum()), 1)
    metrics = {
        "roc_auc": roc_auc(y, score),
        "average_precision": average_precision(y, score),
        "card_precision_at_100": card_precision_at_k(
            day, frame["card_id"].to_numpy(), y, score, k=100
        ).mean,
        "recall_at_1pct_fpr": recall_at_fpr(y, score, fpr=0.01),
        "ece": expected_calibration_error(score, y, config.ece_bins),
        "ece_raw": expected_calibration_error(raw, y, config.ece_bins),
        "fraud_rate": float(y.mean()),
        "review_rate": float(np.mean(flagged & ~declined)),
        "decline_rate": float(declined.mean()),
        "decline_precision": float(y[declined].mean()) if declined.any() else 0.0,
        "flagged_recall": float(y[flagged].sum() / frauds),
        "rows": float(len(y)),
    }
    labels = segment_labels(
        frame["tx_amount"].to_numpy(),
        frame["tx_is_night"].to_numpy(),
        frame["tx_is_weekend"].to_numpy(),
    )
    audit = segment_audit(labels, score, y, thresholds, min_rows=config.gate_min_segment_rows)
    return HoldoutResult(metrics=metrics, audit=audit, score=score)


def artifact_raw(artifact: LoadedArtifact, frame: pd.DataFrame) -> np.ndarray:
    """Raw fraud probabilities of ``frame`` from an artifact's ONNX model (CPU).

    Raises:
        TrainingFailed: the frame lacks a feature the artifact's model needs.
    """
    meta = artifact.metadata
    missing = [f for f in meta.feature_names if f not in frame.columns]
    if missing:
        raise TrainingFailed(
            f"{meta.version} needs features the training rows lack: {missing}", stage="champion"
        )
    session = ort.InferenceSession(artifact.onnx_bytes, providers=["CPUExecutionProvider"])
    (out,) = session.run([meta.output_name], {meta.input_name: _matrix(frame, meta.feature_names)})
    return np.asarray(out)[:, meta.output_index].astype(np.float64)


def one_row_latency_p99_ms(onnx_bytes: bytes, row: np.ndarray, output: str, *, calls: int) -> float:
    """p99 of ``calls`` one-row ONNX Runtime runs (one intra-op thread, as the scorer)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: row.reshape(1, -1)}
    for _ in range(50):
        session.run([output], feed)
    took = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        session.run([output], feed)
        took[i] = time.perf_counter() - start
    return float(np.percentile(took, 99) * 1000.0)


# --- run -------------------------------------------------------------------------


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
        _rows(frame, windows.train),
        _rows(frame, windows.validation),
        _rows(frame, windows.holdout),
    )
    for side, rows in (("training", train), ("validation", valid), ("holdout", holdout)):
        _both_classes(rows, side)
    lap("split")
    log.info("rows: train %d, validation %d, holdout %d", len(train), len(valid), len(holdout))

    booster, best, grid = search_grid(train, valid, features, config)
    lap("fit")

    x_valid, y_valid = _matrix(valid, features), _labels(valid)
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
    x_holdout = _matrix(holdout, features)
    parity = check_parity(
        export, booster, np.vstack([x_valid, x_holdout]), tolerance=config.parity_tolerance
    )
    latency = one_row_latency_p99_ms(
        export.onnx_bytes, x_holdout[0], export.output_name, calls=LATENCY_CALLS
    )
    lap("export")

    session = ort.InferenceSession(export.onnx_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([export.output_name], {export.input_name: x_holdout})
    raw_holdout = np.asarray(probabilities)[:, export.output_index].astype(np.float64)
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
        "train_frauds": float(_labels(train).sum()),
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
        train_window=_window(windows.train),
        validation_window=_window(windows.validation),
        metrics={k: float(v) for k, v in metrics.items() if np.isfinite(v)},
        created_at=_utc(created),
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
    card = ModelCard(
        model_name=metadata.model_name,
        version=version,
        owner=config.owner,
        intended_use=INTENDED_USE,
        created_at=metadata.created_at,
        train_window=metadata.train_window,
        validation_window=metadata.validation_window,
        data_sources=(
            *data_sources,
            f"holdout (gate, metrics, reference distributions): "
            f"{_utc(windows.holdout[0])} to {_utc(windows.holdout[1])}",
        ),
        feature_set_version=FEATURE_SET_VERSION,
        feature_names=tuple(features),
        metrics={k: v for k, v in metadata.metrics.items()},
        segment_metrics={
            name: {k: float(v) for k, v in entry.items()}
            for name, entry in result.audit.metrics.items()
        },
        calibration={
            "method": calibration.method,
            "ece_holdout": float(result.metrics["ece"]),
            "ece_raw_holdout": float(result.metrics["ece_raw"]),
            **{f"ece_heldout_{m}": float(v) for m, v in heldout_ece.items()},
        },
        gate={
            **gate.to_dict(),
            **{
                f"champion_{k}": float(v)
                for k, v in champion_metrics.items()
                if k in ("roc_auc", "card_precision_at_100", "ece", "decline_rate")
            },
        },
        limitations=LIMITATIONS,
        failure_modes=FAILURE_MODES,
        high_impact=config.high_impact,
    )
    reference = reference_document(
        {name: holdout[name].to_numpy(dtype=np.float64) for name in features},
        result.score,
        feature_names=features,
        window={"start": _utc(windows.holdout[0]), "end": _utc(windows.holdout[1])},
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
