"""ONNX export of the booster and the parity check against XGBoost.

onnxmltools' XGBoost converter reads split features as ``f<index>``, so the booster
is converted through a copy without feature names (the column order is the same;
names stay in ``model.xgb.json`` and the metadata). Its ``TreeEnsembleClassifier``
has two outputs: ``label`` (int64) and ``probabilities`` (float32 ``[n, 2]``, column 1
the fraud class); no ZipMap is emitted. XGBoost 3 writes ``base_score`` as a vector
string (``"[3.7E-1]"``); onnxmltools 1.16 reads it correctly, and the parity check
would catch it if a version did not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import xgboost as xgb
from onnxmltools import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType

from services.trainer.errors import ParityError, TrainingFailed

INPUT_NAME = "input"
PROBABILITY_OUTPUT = "probabilities"
POSITIVE_CLASS_INDEX = 1


@dataclass(frozen=True)
class OnnxExport:
    """An exported model and where its probability is.

    Attributes:
        onnx_bytes: the serialized ONNX model.
        input_name: float32 input ``[batch, n_features]``.
        output_name: float32 probabilities ``[batch, 2]``.
        output_index: column of the fraud class.
        opset: the default-domain opset.
    """

    onnx_bytes: bytes
    input_name: str
    output_name: str
    output_index: int
    opset: int


def export_onnx(booster: xgb.Booster, n_features: int, *, opset: int) -> OnnxExport:
    """Convert a ``binary:logistic`` booster to ONNX.

    Raises:
        TrainingFailed: the converter failed or the graph lacks the expected outputs.
    """
    anonymous = booster.copy()
    anonymous.feature_names = None
    anonymous.feature_types = None
    try:
        model = convert_xgboost(
            anonymous,
            name="riskstream-fraud-xgb",
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            target_opset=opset,
        )
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise TrainingFailed(
            f"onnxmltools could not convert the booster: {exc}", stage="export"
        ) from exc
    outputs = [o.name for o in model.graph.output]
    if PROBABILITY_OUTPUT not in outputs:
        raise TrainingFailed(f"no {PROBABILITY_OUTPUT!r} among outputs {outputs}", stage="export")
    return OnnxExport(
        onnx_bytes=model.SerializeToString(),
        input_name=INPUT_NAME,
        output_name=PROBABILITY_OUTPUT,
        output_index=POSITIVE_CLASS_INDEX,
        opset=opset,
    )


def onnx_probabilities(export: OnnxExport, x: np.ndarray) -> np.ndarray:
    """Fraud probabilities from ONNX Runtime (CPU) for float32 rows ``x``."""
    session = ort.InferenceSession(export.onnx_bytes, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run([export.output_name], {export.input_name: x})
    return np.asarray(probabilities)[:, export.output_index]


def check_parity(
    export: OnnxExport, booster: xgb.Booster, x: np.ndarray, *, tolerance: float
) -> float:
    """Max |p_onnx - p_xgboost| over rows ``x`` (float32 to both).

    Raises:
        ParityError: the difference exceeds ``tolerance``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    p_xgb = booster.predict(xgb.DMatrix(x, feature_names=booster.feature_names))
    p_onnx = onnx_probabilities(export, x)
    diff = float(np.max(np.abs(p_onnx.astype(np.float64) - p_xgb))) if len(x) else 0.0
    if not diff <= tolerance:  # NaN fails too
        raise ParityError(max_abs_diff=diff, tolerance=tolerance, rows=len(x))
    return diff
