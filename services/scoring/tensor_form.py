"""The tensor form of a tree-ensemble model: what a tree model runs as on CUDA.

ONNX Runtime's ``TreeEnsembleClassifier`` has CPU kernels only: given the CUDA
execution provider it still runs the trees on the CPU (plus copies). On a GPU host
the served artifact is therefore compiled at load time, by Hummingbird, into plain
tensor operations (``gemm``: three matrix products per tree batch;
``tree_trav`` / ``perf_tree_trav``: gathers down the tree) that the CUDA provider
runs. The form is derived, not shipped: the hashed (and signed) artifact stays the
one source of truth, and a compiled form is only used after it scores a sample like
the artifact does (:func:`parity_gap`).

Two gaps in Hummingbird's ONNX-ML reader are closed here:

- it ignores the ensemble's ``base_values`` (XGBoost's base score, as a margin).
  :func:`fold_base_values` adds it to every leaf of the first tree instead: each row
  lands on exactly one leaf of that tree, so every margin is unchanged;
- it compares without XGBoost's missing-value direction. riskstream vectors never
  hold NaN (an absent feature is 0.0, see ``vectorize``), so no served row meets it.

Errors:
    TensorFormUnavailable: Hummingbird or PyTorch is not installed, the graph is not
        a single tree ensemble, or the compiled form does not match the artifact.
"""

from __future__ import annotations

import functools
import inspect
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from services.scoring.errors import TensorFormUnavailable

TREE_ENSEMBLE_OPS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor"})
STRATEGIES = ("gemm", "tree_trav", "perf_tree_trav")


@dataclass(frozen=True)
class TensorForm:
    """A compiled model and how it was made.

    Attributes:
        onnx_bytes: the tensor-operator ONNX graph (default domain only).
        strategy: Hummingbird's tree implementation.
        input_name: same as the artifact's.
        output_name: ``probabilities``, ``[batch, 2]`` like the artifact's.
    """

    onnx_bytes: bytes
    strategy: str
    input_name: str
    output_name: str


def fold_base_values(onnx_bytes: bytes) -> bytes:
    """The same ensemble with ``base_values`` added to every leaf of its first tree.

    Raises:
        TensorFormUnavailable: the graph is not one tree ensemble.
    """
    import onnx
    from onnx import helper

    model = onnx.load_from_string(onnx_bytes)
    ensembles = [n for n in model.graph.node if n.op_type in TREE_ENSEMBLE_OPS]
    if len(ensembles) != 1:
        raise TensorFormUnavailable(f"expected one tree ensemble, found {len(ensembles)}")
    node = ensembles[0]
    attrs = {a.name: a for a in node.attribute}
    base = list(attrs["base_values"].floats) if "base_values" in attrs else []
    if not any(base):
        return onnx_bytes
    prefix = "class" if node.op_type == "TreeEnsembleClassifier" else "target"
    tree_ids = list(attrs[f"{prefix}_treeids"].ints)
    class_ids = list(attrs[f"{prefix}_ids"].ints)
    weights = list(attrs[f"{prefix}_weights"].floats)
    if len(base) != len(set(class_ids)):
        raise TensorFormUnavailable(f"{len(base)} base values for {len(set(class_ids))} outputs")
    first_tree = min(tree_ids)
    folded = [
        w + base[c] if t == first_tree else w
        for w, t, c in zip(weights, tree_ids, class_ids, strict=True)
    ]
    del node.attribute[:]
    for name, attr in attrs.items():
        if name == "base_values":
            continue
        if name == f"{prefix}_weights":
            node.attribute.append(helper.make_attribute(name, folded))
        else:
            node.attribute.append(attr)
    return model.SerializeToString()


def compile_tensor_form(
    onnx_bytes: bytes,
    sample_rows: npt.NDArray[np.float32],
    *,
    strategy: str = "gemm",
    input_name: str = "input",
    output_name: str = "probabilities",
) -> TensorForm:
    """Compile a tree-ensemble artifact to tensor operations with Hummingbird.

    Args:
        onnx_bytes: the artifact's ONNX-ML graph.
        sample_rows: rows to trace with (their count does not fix the batch size).
        strategy: one of :data:`STRATEGIES`.
        input_name: the artifact's input, kept by the compiled graph.
        output_name: the artifact's probability output, kept likewise.

    Raises:
        TensorFormUnavailable: Hummingbird/PyTorch missing, or the conversion failed.
    """
    if strategy not in STRATEGIES:
        raise TensorFormUnavailable(f"strategy {strategy!r} is not one of {STRATEGIES}")
    try:
        import onnx
        import torch
        from hummingbird.ml import constants, convert
    except ImportError as exc:
        raise TensorFormUnavailable(
            f"the GPU form needs the 'gpu' extra (hummingbird-ml, torch): {exc}"
        ) from exc
    source = onnx.load_from_string(fold_base_values(onnx_bytes))
    config = {constants.TREE_IMPLEMENTATION: strategy}
    trace = np.ascontiguousarray(sample_rows, dtype=np.float32)
    errors: list[str] = []
    graph = None
    for legacy in (True, False):  # the TorchScript exporter first, then dynamo
        try:
            with _onnx_exporter(torch, legacy=legacy):
                graph = convert(source, "onnx", trace, extra_config=dict(config)).model
            break
        except Exception as exc:  # noqa: BLE001 - Hummingbird raises bare Assertion/RuntimeError
            errors.append(f"{'torchscript' if legacy else 'dynamo'} exporter: {exc}")
    if graph is None:
        raise TensorFormUnavailable("Hummingbird could not compile the model: " + "; ".join(errors))
    inputs = [i.name for i in graph.graph.input]
    outputs = [o.name for o in graph.graph.output]
    if output_name not in outputs or input_name not in inputs:
        raise TensorFormUnavailable(f"compiled graph has inputs {inputs}, outputs {outputs}")
    return TensorForm(graph.SerializeToString(), strategy, input_name, output_name)


class _onnx_exporter:  # noqa: N801 - a context manager, named as one
    """Hummingbird 0.4 calls ``torch.onnx.export`` with TorchScript-era arguments
    (``dynamic_axes``); PyTorch >= 2.9 defaults to the dynamo exporter, so which one
    runs is chosen explicitly while Hummingbird runs."""

    def __init__(self, torch: object, *, legacy: bool) -> None:
        self._onnx = torch.onnx  # type: ignore[attr-defined]
        self._original = self._onnx.export
        self._legacy = legacy

    def __enter__(self) -> None:
        if "dynamo" in inspect.signature(self._original).parameters:
            self._onnx.export = functools.partial(self._original, dynamo=not self._legacy)

    def __exit__(self, *exc: object) -> None:
        self._onnx.export = self._original


class Predictor(Protocol):
    """What the scorer needs of a model session (``OnnxModel`` and the split below)."""

    width: int
    providers: tuple[str, ...]

    def predict(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Raw positive-class probabilities of a (n, width) float32 batch."""
        ...


class CpuGpuModel:
    """One model in two forms: small batches on the CPU's trees, large ones on CUDA.

    A CUDA call costs ~0.23 ms whatever the batch (launches and copies), while the
    CPU's tree kernel costs ~15 µs for one row and grows with the rows; on an H100
    against one CPU thread they cross near 64 rows (docs/BENCHMARKS.md). So each
    batch goes where it is cheaper; both forms passed parity at load.

    Examples:
        >>> class Fixed:
        ...     def __init__(self, value): self.value, self.width, self.providers = value, 2, ("x",)
        ...     def predict(self, rows): return np.full(len(rows), self.value)
        >>> model = CpuGpuModel(Fixed(0.1), Fixed(0.2), min_gpu_rows=4)
        >>> model.predict(np.zeros((3, 2), np.float32)).tolist()
        [0.1, 0.1, 0.1]
        >>> model.predict(np.zeros((4, 2), np.float32)).tolist()
        [0.2, 0.2, 0.2, 0.2]
    """

    def __init__(self, cpu: Predictor, gpu: Predictor, *, min_gpu_rows: int) -> None:
        if cpu.width != gpu.width:
            raise ValueError(f"forms take {cpu.width} and {gpu.width} features")
        self._cpu = cpu
        self._gpu = gpu
        self._min_gpu_rows = min_gpu_rows
        self.width = cpu.width
        self.providers = tuple(dict.fromkeys((*gpu.providers, *cpu.providers)))

    def predict(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Probabilities from whichever form is cheaper for this many rows."""
        form = self._gpu if len(rows) >= self._min_gpu_rows else self._cpu
        return form.predict(rows)


def gpu_crossover(timings: dict[int, tuple[float, float]]) -> int | None:
    """The smallest batch from which the GPU form is never slower than the CPU form.

    Args:
        timings: batch size → (CPU seconds, GPU seconds) per call.

    Returns:
        That batch size, or None when the GPU loses at the largest size measured.

    Examples:
        >>> gpu_crossover({1: (1e-5, 2e-4), 8: (5e-4, 4e-4), 64: (4e-3, 4e-4)})
        8
        >>> gpu_crossover({1: (1e-5, 2e-4), 8: (3e-4, 2e-4), 64: (1e-4, 2e-4)}) is None
        True
        >>> gpu_crossover({1: (3e-4, 2e-4), 8: (1e-4, 2e-4), 64: (4e-3, 4e-4)})
        64
    """
    crossover = None
    for size in sorted(timings, reverse=True):
        cpu_s, gpu_s = timings[size]
        if gpu_s > cpu_s:
            break
        crossover = size
    return crossover


def measure_crossover(
    cpu: Predictor, gpu: Predictor, *, max_rows: int = 1024, calls: int = 15
) -> int | None:
    """Time both forms on zero rows at 1, 2, 4 … ``max_rows`` and apply :func:`gpu_crossover`.

    A model's crossover depends on its size and the host: 64 rows for 200 depth-4
    trees on an H100 against one CPU thread, 8 rows for 1,000 depth-8 trees
    (docs/BENCHMARKS.md). Medians of ``calls`` calls after two warm-ups.
    """
    timings: dict[int, tuple[float, float]] = {}
    size = 1
    while size <= max_rows:
        rows = np.zeros((size, cpu.width), dtype=np.float32)
        medians = []
        for form in (cpu, gpu):
            form.predict(rows)
            form.predict(rows)
            took = []
            for _ in range(calls):
                start = time.perf_counter()
                form.predict(rows)
                took.append(time.perf_counter() - start)
            medians.append(float(np.median(took)))
        timings[size] = (medians[0], medians[1])
        size *= 2
    return gpu_crossover(timings)


def parity_gap(reference: npt.NDArray[np.float64], candidate: npt.NDArray[np.float64]) -> float:
    """Max |p_reference - p_candidate|; NaN anywhere counts as infinitely far.

    Examples:
        >>> parity_gap(np.array([0.1, 0.5]), np.array([0.1, 0.5000001])) < 1e-6
        True
        >>> parity_gap(np.array([0.1]), np.array([np.nan]))
        inf
    """
    if reference.shape != candidate.shape:
        return float("inf")
    gap = np.abs(reference - candidate)
    if np.isnan(gap).any():
        return float("inf")
    return float(gap.max()) if gap.size else 0.0
