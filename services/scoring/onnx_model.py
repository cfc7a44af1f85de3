"""ONNX Runtime sessions and XGBoost explanations for one model version.

Providers are always passed explicitly: onnxruntime-gpu on a machine without a GPU
still lists CUDA and silently falls back to the CPU after logging an error, so the
device is decided by the model loader (CUDA only for a model's tensor form, see
``tensor_form``) and stated in the logs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from services.registry.errors import ArtifactRejected, RejectReason

log = logging.getLogger(__name__)


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU the CUDA provider could use."""
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


def cuda_available() -> bool:
    """CUDA provider installed and a GPU present."""
    return "CUDAExecutionProvider" in ort.get_available_providers() and gpu_present()


@dataclass(frozen=True)
class SessionSettings:
    """How ONNX Runtime runs a session.

    Attributes:
        intra_op_threads: ONNX Runtime threads per session.
        device: "cpu", "cuda" or "auto"; "auto" and "cuda" use a GPU when one is
            there and the model compiles to a tensor form, else the CPU.
        gpu_min_batch: batches of at least this many rows go to the GPU form; None:
            measured for each model at load (where the GPU form starts to win).
    """

    intra_op_threads: int = 1
    device: str = "cpu"
    gpu_min_batch: int | None = None


class OnnxModel:
    """One ONNX Runtime session returning the positive-class probability.

    Raises:
        ArtifactRejected: ``corrupt_model`` when ONNX Runtime cannot load it,
            ``feature_order_mismatch`` when its input width is not ``width``.
    """

    def __init__(
        self,
        onnx_bytes: bytes,
        *,
        input_name: str,
        output_name: str,
        output_index: int,
        width: int,
        settings: SessionSettings,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if settings.device == "cuda"
            else ["CPUExecutionProvider"]
        )
        try:
            self._session = ort.InferenceSession(onnx_bytes, options, providers=providers)
        except Exception as exc:
            raise ArtifactRejected(
                reason=RejectReason.CORRUPT_MODEL, detail=f"ONNX Runtime cannot load it: {exc}"
            ) from exc
        inputs = {i.name: i for i in self._session.get_inputs()}
        if input_name not in inputs:
            raise ArtifactRejected(
                reason=RejectReason.CORRUPT_MODEL, detail=f"no input named {input_name!r}"
            )
        shape = inputs[input_name].shape
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != width):
            raise ArtifactRejected(
                reason=RejectReason.FEATURE_ORDER_MISMATCH,
                detail=f"model input shape {shape} does not take {width} features",
            )
        if output_name not in {o.name for o in self._session.get_outputs()}:
            raise ArtifactRejected(
                reason=RejectReason.CORRUPT_MODEL, detail=f"no output named {output_name!r}"
            )
        self._input = input_name
        self._outputs = [output_name]
        self._index = output_index
        self.width = width
        self.providers = tuple(self._session.get_providers())

    def predict(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Raw positive-class probabilities of a (n, width) float32 batch."""
        out = self._session.run(self._outputs, {self._input: rows})[0]
        column = out[:, self._index] if out.ndim == 2 else out
        return np.asarray(column, dtype=np.float64)


class XgbExplainer:
    """Per-feature contributions to the margin, from XGBoost's own model (SHAP values).

    Loaded with the model so the first explained request pays no import or parse.
    """

    def __init__(self, xgb_json_bytes: bytes, feature_names: tuple[str, ...]) -> None:
        import xgboost as xgb  # heavy; only model loading pays for it

        self._xgb = xgb
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(xgb_json_bytes))
        except xgb.core.XGBoostError as exc:
            raise ArtifactRejected(
                reason=RejectReason.CORRUPT_MODEL, detail=f"XGBoost model: {exc}"
            ) from exc
        booster.set_param({"nthread": 1})
        self._booster = booster
        self._names = list(feature_names)

    def probabilities(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """XGBoost's own positive-class probabilities (the parity reference)."""
        matrix = self._xgb.DMatrix(rows, feature_names=self._names)
        return np.asarray(self._booster.predict(matrix), dtype=np.float64)

    def contributions(self, row: list[float]) -> npt.NDArray[np.float64]:
        """Contribution of each feature (in the model's order) to the margin of ``row``."""
        matrix = self._xgb.DMatrix(np.asarray([row], dtype=np.float32), feature_names=self._names)
        contribs = self._booster.predict(matrix, pred_contribs=True)
        return np.asarray(contribs[0, :-1], dtype=np.float64)  # last column: the bias
