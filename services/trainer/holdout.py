"""The holdout as served: ONNX Runtime → calibration → metrics, for any model.

The candidate and the champion are scored on the very same rows through their own
artifacts (what a scorer would run), so the gate compares like with like.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import pandas as pd

from services.registry.artifact import LoadedArtifact
from services.registry.calibration import Calibration
from services.registry.metadata import Thresholds
from services.trainer.config import TrainerConfig
from services.trainer.errors import TrainingFailed
from services.trainer.evaluation import decision_metrics, expected_calibration_error
from services.trainer.metrics import average_precision, card_precision_at_k, recall_at_fpr, roc_auc
from services.trainer.rows import feature_matrix, label_array
from services.trainer.segments import SegmentAudit, segment_audit, segment_labels

LATENCY_CALLS = 2000


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
    y = label_array(frame)
    score = calibration.apply(raw)
    day = frame["event_time"].dt.floor("D").to_numpy()
    metrics = {
        "roc_auc": roc_auc(y, score),
        "average_precision": average_precision(y, score),
        "card_precision_at_100": card_precision_at_k(
            day, frame["card_id"].to_numpy(), y, score, k=100
        ).mean,
        "recall_at_1pct_fpr": recall_at_fpr(y, score, fpr=0.01),
        "ece": expected_calibration_error(score, y, config.ece_bins),
        "ece_raw": expected_calibration_error(raw, y, config.ece_bins),
        **decision_metrics(score, y, thresholds),
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
    x = feature_matrix(frame, meta.feature_names)
    return onnx_raw(artifact.onnx_bytes, meta.input_name, meta.output_name, meta.output_index, x)


def one_row_latency_p99_ms(onnx_bytes: bytes, row: np.ndarray, output: str, *, calls: int) -> float:
    """p99 of ``calls`` one-row ONNX Runtime runs (one intra-op thread, as the scorer).

    Each run is timed in this thread's CPU time, not wall time: with one intra-op
    thread ONNX Runtime computes on the calling thread, so this is the model's own
    cost. Wall time would add whatever else the machine runs (a training box under
    load preempts for milliseconds), which says nothing about the model; the scorer's
    end-to-end latency under load is measured by the load tests and the canary.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: row.reshape(1, -1)}
    for _ in range(50):
        session.run([output], feed)
    took = np.empty(calls)
    for i in range(calls):
        start = time.thread_time_ns()
        session.run([output], feed)
        took[i] = time.thread_time_ns() - start
    return float(np.percentile(took, 99) / 1e6)


def onnx_raw(onnx_bytes: bytes, input_name: str, output_name: str, index: int,
             x: np.ndarray) -> np.ndarray:  # fmt: skip
    """Raw fraud probabilities of rows ``x`` from an ONNX model (CPU)."""
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (out,) = session.run([output_name], {input_name: x})
    return np.asarray(out)[:, index].astype(np.float64)
