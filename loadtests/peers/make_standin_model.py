"""A stand-in model directory for the peer benchmark, until ``riskstream train-baseline``.

Trains an XGBoost classifier on seeded random data and writes the three files every
peer serves from, in the layout of the real artifact::

    DIR/model.onnx       onnxmltools conversion, float32 input [N, F], no ZipMap
    DIR/model.xgb.json   XGBoost's own saved model (what mlserver-xgboost loads)
    DIR/metadata.json    feature_names, input_name, output_name, output_index, model_name

Runs with the services environment (xgboost-cpu, onnxmltools, onnxruntime)::

    .venv/bin/python loadtests/peers/make_standin_model.py --out /tmp/standin --features 24

The ONNX model is checked against XGBoost's own probabilities before anything is
written, so every peer serves the same function.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"


def _train(features: int, trees: int, rows: int, seed: int) -> tuple[Any, np.ndarray]:
    import xgboost

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    # A rare positive class that depends on a few columns, like fraud.
    logit = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] * x[:, 3] - 3.5
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int32)
    model = xgboost.XGBClassifier(
        n_estimators=trees, max_depth=6, learning_rate=0.1, n_jobs=1, random_state=seed
    )
    model.fit(x, y)
    return model, x[:256]


def _to_onnx(model: Any, features: int) -> bytes:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    onnx_model = onnxmltools.convert_xgboost(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, features]))],
        target_opset=15,
    )
    # convert_xgboost emits plain tensors ("label", "probabilities"); refuse a ZipMap.
    ops = {node.op_type for node in onnx_model.graph.node}
    if "ZipMap" in ops:
        raise SystemExit("ONNX graph has a ZipMap; peers need plain probability tensors")
    return bytes(onnx_model.SerializeToString())


def _check(onnx_bytes: bytes, model: Any, sample: np.ndarray) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: sample})
    want = model.predict_proba(sample)
    diff = float(np.max(np.abs(got - want)))
    if diff > 1e-5:
        raise SystemExit(f"ONNX and XGBoost disagree by {diff}")
    return diff


def main(argv: list[str] | None = None) -> int:
    """Write the stand-in model directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--features", type=int, default=24)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model-name", default="fraud-xgb-standin")
    args = parser.parse_args(argv)

    model, sample = _train(args.features, args.trees, args.rows, args.seed)
    onnx_bytes = _to_onnx(model, args.features)
    diff = _check(onnx_bytes, model, sample)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model.onnx").write_bytes(onnx_bytes)
    # Through the sklearn wrapper: its "scikit_learn" attribute tells loaders (such as
    # mlserver-xgboost) that this is a classifier with predict_proba.
    model.save_model(str(args.out / "model.xgb.json"))
    metadata = {
        "model_name": args.model_name,
        "version": "standin",
        "feature_names": [f"f{i:02d}" for i in range(args.features)],
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "output_index": 1,
        "framework": {"xgboost": _version("xgboost"), "onnxmltools": _version("onnxmltools")},
        "standin": {"trees": args.trees, "rows": args.rows, "seed": args.seed},
    }
    (args.out / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    print(
        f"wrote {args.out}: {args.features} features, {args.trees} trees, "
        f"ONNX vs XGBoost max |diff| {diff:.2e}",
        file=sys.stderr,
    )
    return 0


def _version(module: str) -> str:
    # By module: the distribution is "xgboost-cpu" in the services environment.
    import importlib

    return str(importlib.import_module(module).__version__)


if __name__ == "__main__":
    sys.exit(main())
