"""The GPU (tensor) form: base-value folding, and how the loader uses or refuses a form.

The CUDA run itself needs a GPU and the ``gpu`` extra; it was measured with
``loadtests/gpu_inference.py`` on an H100 (docs/BENCHMARKS.md), through the same
``compile_tensor_form`` and ``OnnxModel`` used here. These tests hold the parts a
CPU machine can check: the folding is exact, a form that disagrees with the
artifact is refused, and batches go to the form the loader chose.
"""

from __future__ import annotations

import logging
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from services.registry.artifact import LoadedArtifact
from services.registry.store import LocalArtifactStore
from services.scoring.errors import TensorFormUnavailable
from services.scoring.model_loader import LoaderSettings, ModelLoader
from services.scoring.onnx_model import OnnxModel, SessionSettings, cuda_available
from services.scoring.tensor_form import CpuGpuModel, compile_tensor_form, fold_base_values
from services.scoring.testing import TestArtifact


def _rows(width: int, n: int = 500, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).gamma(2.0, 30.0, size=(n, width)).astype(np.float32)


def _probabilities(onnx_bytes: bytes, rows: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"input": rows})[0][:, 1]


def _base_values(onnx_bytes: bytes) -> list[float]:
    (node,) = onnx.load_from_string(onnx_bytes).graph.node
    return [f for a in node.attribute if a.name == "base_values" for f in a.floats]


def test_folding_base_values_into_the_first_tree_keeps_every_probability(
    v1: TestArtifact,
) -> None:
    source = (v1.directory / "model.onnx").read_bytes()
    assert _base_values(source) and _base_values(source)[0] != 0.0  # XGBoost's base score

    folded = fold_base_values(source)

    assert _base_values(folded) == []
    rows = _rows(len(v1.metadata.feature_names))
    gap = np.abs(_probabilities(folded, rows) - _probabilities(source, rows)).max()
    assert gap < 1e-6


def test_a_graph_without_one_tree_ensemble_has_no_tensor_form() -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["probabilities"])],
        "not-trees",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
    )
    with pytest.raises(TensorFormUnavailable, match="one tree ensemble, found 0"):
        fold_base_values(helper.make_model(graph).SerializeToString())


def test_compiling_without_the_gpu_extra_names_what_is_missing(
    v1: TestArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch → ImportError
    with pytest.raises(TensorFormUnavailable, match="'gpu' extra"):
        compile_tensor_form((v1.directory / "model.onnx").read_bytes(), _rows(8, 4))


class RecordingForm:
    """A stand-in GPU form: a CPU session of some artifact that counts its batches
    (and, with ``call_s``, takes that long on every call, like a launch-bound GPU)."""

    def __init__(self, onnx_bytes: bytes, width: int, call_s: float = 0.0) -> None:
        self._model = OnnxModel(
            onnx_bytes,
            input_name="input",
            output_name="probabilities",
            output_index=1,
            width=width,
            settings=SessionSettings(),
        )
        self.width = width
        self.providers = ("FakeCUDAExecutionProvider",)
        self.batches: list[int] = []
        self._call_s = call_s

    def predict(self, rows: np.ndarray) -> np.ndarray:
        self.batches.append(len(rows))
        if self._call_s:
            time.sleep(self._call_s)
        return self._model.predict(rows)


def _gpu_loader(
    store: LocalArtifactStore,
    form_bytes: bytes | None,
    *,
    device: str = "auto",
    min_batch: int | None = 8,
    call_s: float = 0.0,
) -> tuple[ModelLoader, list[RecordingForm]]:
    made: list[RecordingForm] = []

    def gpu_form(artifact: LoadedArtifact, session: SessionSettings) -> RecordingForm:
        assert session.device == device
        form = RecordingForm(
            form_bytes or artifact.onnx_bytes, len(artifact.metadata.feature_names), call_s
        )
        made.append(form)
        return form

    settings = LoaderSettings(session=SessionSettings(device=device, gpu_min_batch=min_batch))
    return ModelLoader(store, settings, gpu_form=gpu_form, gpu_present=lambda: True), made


def test_large_batches_run_on_the_gpu_form_and_small_ones_on_the_cpu(
    store: LocalArtifactStore, v1: TestArtifact
) -> None:
    loader, made = _gpu_loader(store, None)
    served = loader.load(v1.record())
    (form,) = made
    assert isinstance(served.onnx, CpuGpuModel)
    assert "FakeCUDAExecutionProvider" in served.onnx.providers
    form.batches.clear()

    width = len(v1.metadata.feature_names)
    small, large = _rows(width, 7), _rows(width, 8, seed=4)
    np.testing.assert_allclose(served.predict(small), v1.xgb_probability(small), atol=1e-5)
    assert form.batches == []
    np.testing.assert_allclose(served.predict(large), v1.xgb_probability(large), atol=1e-5)
    assert form.batches == [8]


def test_a_gpu_form_that_disagrees_with_the_artifact_is_refused_and_the_model_stays_on_the_cpu(
    store: LocalArtifactStore, v1: TestArtifact, v2: TestArtifact, caplog: pytest.LogCaptureFixture
) -> None:
    other = (v2.directory / "model.onnx").read_bytes()  # a different model: a wrong compile
    loader, made = _gpu_loader(store, other)
    with caplog.at_level(logging.WARNING, logger="services.scoring.model_loader"):
        served = loader.load(v1.record())

    assert len(made) == 1
    assert isinstance(served.onnx, OnnxModel)
    assert "stays on the CPU: GPU form disagrees with the CPU form" in caplog.text
    rows = _rows(len(v1.metadata.feature_names), 64)
    np.testing.assert_allclose(served.predict(rows), v1.xgb_probability(rows), atol=1e-5)


def test_a_gpu_form_slower_at_every_measured_batch_is_not_used(
    store: LocalArtifactStore, v1: TestArtifact, caplog: pytest.LogCaptureFixture
) -> None:
    """With the crossover measured at load (no GPU_MIN_BATCH), a form that costs 3 ms
    a call never beats the CPU's ~20-tree kernel (well under 3 ms up to 1,024 rows)."""
    loader, made = _gpu_loader(store, None, min_batch=None, call_s=0.003)
    with caplog.at_level(logging.WARNING, logger="services.scoring.model_loader"):
        served = loader.load(v1.record())
    assert len(made) == 1 and len(made[0].batches) > 11  # it was timed at 1 .. 1,024 rows
    assert isinstance(served.onnx, OnnxModel)
    assert "its GPU form was slower up to 1,024 rows" in caplog.text


def test_device_cpu_never_compiles_a_gpu_form(store: LocalArtifactStore, v1: TestArtifact) -> None:
    loader, made = _gpu_loader(store, None, device="cpu")
    served = loader.load(v1.record())
    assert made == []
    assert isinstance(served.onnx, OnnxModel)


def test_the_real_loader_uses_a_gpu_form_exactly_when_the_machine_has_a_gpu(
    store: LocalArtifactStore, v1: TestArtifact
) -> None:
    """On CI (no GPU) this checks the CPU path; on a GPU host with the ``gpu`` extra
    it loads the real Hummingbird form on CUDA and checks its scores."""
    loader = ModelLoader(store, LoaderSettings(session=SessionSettings(device="auto")))
    served = loader.load(v1.record())
    rows = _rows(len(v1.metadata.feature_names), 256)
    np.testing.assert_allclose(served.predict(rows), v1.xgb_probability(rows), atol=1e-5)
    if cuda_available():
        assert isinstance(served.onnx, CpuGpuModel)
        assert "CUDAExecutionProvider" in served.onnx.providers
    else:
        assert served.onnx.providers == ("CPUExecutionProvider",)
