"""CPU against CUDA inference of one served model, batch sizes 1 to 4096.

Run on a GPU host (the onnxruntime-gpu wheel, PyTorch, hummingbird-ml installed)::

    python -m loadtests.gpu_inference --model-dir DIR --rows rows.npy --out result.json

``DIR`` holds an artifact's ``model.onnx`` and ``metadata.json``; ``rows.npy`` holds
float32 feature rows in the model's order (``scripts/`` writes both from the
simulator). It measures, for each batch size, the per-call latency (median, p99) and
rows/s of:

- ``cpu-trees-1t`` / ``cpu-trees-Nt``: the artifact as served today (ONNX Runtime's
  TreeEnsemble on the CPU, 1 thread as the scorer runs it, and all cores);
- ``cuda-trees``: the artifact given the CUDA provider (the trees still run on the
  CPU: what a GPU host gets without a tensor form);
- ``cpu-<strategy>`` / ``cuda-<strategy>``: Hummingbird's tensor form through
  :class:`services.scoring.onnx_model.OnnxModel`, the scorer's own session class;
- ``torch-cuda-gemm``: the same compiled module run by PyTorch itself;
- ``loader``: the scorer's ``ModelLoader`` (device auto) on an artifact store built
  from the same files, when ``model.xgb.json`` is there: which form it chose and
  its calibrated scores against the CPU-only loader's.

Each compiled form is checked against the artifact's probabilities first
(``parity_gap``); a form that fails parity is reported and not timed. Every stage
is guarded, so one failure still leaves the others' numbers in the output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

BATCH_SIZES = tuple(2**i for i in range(13))  # 1 .. 4096
PARITY_TOLERANCE = 1e-5


def _time_calls(fn: Callable[[np.ndarray], object], rows: np.ndarray, seconds: float) -> dict:
    """Per-call latency of ``fn(rows)``: warm-up, then calls until ``seconds`` pass."""
    for _ in range(5):
        fn(rows)
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < 20 or (time.perf_counter() < deadline and len(samples) < 20000):
        t0 = time.perf_counter()
        fn(rows)
        samples.append(time.perf_counter() - t0)
    arr = np.array(samples) * 1e6
    p50 = float(np.median(arr))
    return {
        "calls": len(samples),
        "p50_us": round(p50, 1),
        "p99_us": round(float(np.percentile(arr, 99)), 1),
        "rows_per_s": round(len(rows) / (p50 / 1e6)),
    }


def _stage(results: dict, name: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    try:
        value = fn()
        results["stages"][name] = {"ok": True, "seconds": round(time.perf_counter() - t0, 2)}
        return value
    except Exception as exc:  # noqa: BLE001 - one failure must not hide the rest
        results["stages"][name] = {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}"[:2000],
            "trace": traceback.format_exc()[-3000:],
        }
        print(f"[stage {name}] FAILED: {exc}", flush=True)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--rows", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=0.25, help="timed seconds per point")
    parser.add_argument(
        "--no-cpu-tensor",
        action="store_true",
        help="skip the tensor forms on the CPU (minutes a point for big models)",
    )
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"stages": {}, "series": {}, "parity": {}}
    try:  # load CUDA/cuDNN from PyTorch's wheels before ONNX Runtime looks for them
        import torch

        results["torch"] = torch.__version__
        results["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        torch = None  # type: ignore[assignment]
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        _stage(results, "preload_dlls", lambda: ort.preload_dlls())
    results.update(
        onnxruntime=ort.__version__,
        providers=ort.get_available_providers(),
        python=sys.version.split()[0],
        cpu_count=os.cpu_count(),
        machine=platform.platform(),
    )
    print(json.dumps({k: v for k, v in results.items() if k not in ("stages", "series")}))

    from services.scoring.onnx_model import OnnxModel, SessionSettings
    from services.scoring.tensor_form import compile_tensor_form, parity_gap

    with open(os.path.join(args.model_dir, "metadata.json")) as fh:
        meta = json.load(fh)
    with open(os.path.join(args.model_dir, "model.onnx"), "rb") as fh:
        source = fh.read()
    rows_all = np.ascontiguousarray(np.load(args.rows), dtype=np.float32)
    width = len(meta["feature_names"])
    results["model"] = {"version": meta["version"], "features": width, "rows": len(rows_all)}

    def session(onnx_bytes: bytes, device: str, threads: int) -> OnnxModel:
        return OnnxModel(
            onnx_bytes,
            input_name=meta["input_name"],
            output_name=meta["output_name"],
            output_index=meta["output_index"],
            width=width,
            settings=SessionSettings(intra_op_threads=threads, device=device),
        )

    reference = session(source, "cpu", 1)
    p_ref = reference.predict(rows_all)
    contenders: dict[str, Callable[[np.ndarray], object]] = {
        "cpu-trees-1t": reference.predict,
    }
    cores = os.cpu_count() or 1
    many = _stage(results, "cpu_trees_all_cores", lambda: session(source, "cpu", cores))
    if many is not None:
        contenders[f"cpu-trees-{cores}t"] = many.predict
    cuda_trees = _stage(results, "cuda_trees", lambda: session(source, "cuda", 1))
    if cuda_trees is not None:
        results["cuda_trees_providers"] = list(cuda_trees.providers)
        results["parity"]["cuda-trees"] = parity_gap(p_ref, cuda_trees.predict(rows_all))
        contenders["cuda-trees"] = cuda_trees.predict

    sample = rows_all[:64]
    for strategy in ("gemm", "tree_trav", "perf_tree_trav"):
        form = _stage(
            results,
            f"compile_{strategy}",
            lambda s=strategy: compile_tensor_form(source, sample, strategy=s),
        )
        if form is None:
            continue
        for device in ("cuda",) if args.no_cpu_tensor else ("cpu", "cuda"):
            name = f"{device}-{strategy}"
            model = _stage(
                results, f"session_{name}", lambda f=form, d=device: session(f.onnx_bytes, d, 1)
            )
            if model is None:
                continue
            if device == "cuda":
                results.setdefault("tensor_providers", {})[name] = list(model.providers)
            gap = parity_gap(p_ref, model.predict(rows_all))
            results["parity"][name] = gap
            if gap <= PARITY_TOLERANCE:
                contenders[name] = model.predict
            else:
                print(f"{name}: parity gap {gap:.3g} > {PARITY_TOLERANCE}; not timed", flush=True)

    if torch is not None and torch.cuda.is_available():

        def torch_module() -> Callable[[np.ndarray], object]:
            import onnx
            from hummingbird.ml import constants, convert

            from services.scoring.tensor_form import fold_base_values

            folded = onnx.load_from_string(fold_base_values(source))
            hb = convert(
                folded, "torch", sample, extra_config={constants.TREE_IMPLEMENTATION: "gemm"}
            )
            hb.to("cuda")
            return lambda x: hb.predict_proba(x)[:, 1]

        fn = _stage(results, "torch_cuda_gemm", torch_module)
        if fn is not None:
            gap = parity_gap(p_ref, np.asarray(fn(rows_all), dtype=np.float64))
            results["parity"]["torch-cuda-gemm"] = gap
            if gap <= PARITY_TOLERANCE:
                contenders["torch-cuda-gemm"] = fn

    xgb_json = os.path.join(args.model_dir, "model.xgb.json")
    if os.path.exists(xgb_json):
        loaded = _stage(results, "loader", lambda: _load_with_scorer(args.model_dir, rows_all))
        if loaded is not None:
            results["loader"] = loaded
            print("loader", json.dumps(loaded), flush=True)

    print(json.dumps(results["parity"]), flush=True)
    for name, fn in contenders.items():
        series = results["series"].setdefault(name, {})
        for size in BATCH_SIZES:
            rows = np.ascontiguousarray(np.resize(rows_all, (size, width)))
            point = _stage(
                results, f"time_{name}_{size}", lambda f=fn, r=rows: _time_calls(f, r, args.seconds)
            )
            if point is not None:
                series[str(size)] = point
        print(name, json.dumps(series), flush=True)

    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=1)
    _print_table(results)
    return 0


def _load_with_scorer(model_dir: str, rows: np.ndarray) -> dict:
    """Load the artifact as the scorer does, with device auto and with cpu."""
    import tempfile
    from pathlib import Path

    from services.registry.metadata import ModelMetadata
    from services.registry.rollout import VersionRecord
    from services.registry.store import LocalArtifactStore
    from services.scoring.model_loader import LoaderSettings, ModelLoader
    from services.scoring.onnx_model import SessionSettings
    from services.scoring.tensor_form import CpuGpuModel, parity_gap

    directory = Path(model_dir)
    metadata = ModelMetadata.from_json((directory / "metadata.json").read_bytes())
    store = LocalArtifactStore(Path(tempfile.mkdtemp()) / "models")
    uri, digest = store.add(
        onnx_bytes=(directory / "model.onnx").read_bytes(),
        xgb_json_bytes=(directory / "model.xgb.json").read_bytes(),
        metadata=metadata,
    )
    record = VersionRecord(
        model_name=metadata.model_name,
        version=metadata.version,
        status=1,
        artifact_uri=uri,
        sha256=digest,
    )
    served = {}
    for device in ("auto", "cpu"):
        settings = LoaderSettings(session=SessionSettings(device=device, gpu_min_batch=64))
        t0 = time.perf_counter()
        served[device] = ModelLoader(store, settings).load(record)
        served[device + "_seconds"] = round(time.perf_counter() - t0, 2)
    auto, cpu = served["auto"], served["cpu"]
    return {
        "auto_form": type(auto.onnx).__name__,
        "auto_is_split": isinstance(auto.onnx, CpuGpuModel),
        "auto_providers": list(auto.onnx.providers),
        "load_seconds": {"auto": served["auto_seconds"], "cpu": served["cpu_seconds"]},
        "score_gap_small_batches": parity_gap(
            np.concatenate([cpu.predict(rows[i : i + 8]) for i in range(0, 512, 8)]),
            np.concatenate([auto.predict(rows[i : i + 8]) for i in range(0, 512, 8)]),
        ),
        "score_gap_large_batch": parity_gap(cpu.predict(rows), auto.predict(rows)),
        "auto_1row": _time_calls(auto.predict, rows[:1], 0.2),
        "auto_1024rows": _time_calls(auto.predict, rows[:1024], 0.2),
        "cpu_1024rows": _time_calls(cpu.predict, rows[:1024], 0.2),
    }


def _print_table(results: dict) -> None:
    names = list(results["series"])
    print("| batch | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for size in BATCH_SIZES:
        cells = []
        for name in names:
            point = results["series"][name].get(str(size))
            cells.append(
                "-" if point is None else f"{point['p50_us']:.0f} µs / {point['rows_per_s']:,}"
            )
        print(f"| {size} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
