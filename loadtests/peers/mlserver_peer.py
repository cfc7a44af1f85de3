"""Peer: Seldon's MLServer with mlserver-xgboost, adaptive batching on.

Runs in the MLServer environment (``setup.sh``), started by ``run.py`` with
``OMP_NUM_THREADS=1``::

    OMP_NUM_THREADS=1 $PEERS/mlserver/bin/python -m loadtests.peers.mlserver_peer \\
        --model-dir DIR --workdir TMP --grpc-port 50100 --http-port 50101 --metrics-port 50102

Writes an MLServer repository under ``--workdir`` (``settings.json`` and
``<model_name>/model-settings.json`` from :func:`server_settings` and
:func:`model_settings`, ``model.json`` = ``model.xgb.json``) and starts MLServer on it,
every listener on 127.0.0.1. ``ModelConfig`` is added in-process by
:mod:`loadtests.peers.model_config_rpc`.

mlserver-xgboost loads ``model.json`` into ``XGBRegressor`` first and only falls back
to ``XGBClassifier`` on a type error, which a model saved from a bare ``Booster``
(no ``scikit_learn`` attribute) never raises: it would load as a regressor and refuse
``predict_proba``. Such a file is copied with the classifier attribute added.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from loadtests.peers.model_dir import ModelDir

PROBA_OUTPUT = "predict_proba"


def server_settings(
    *, grpc_port: int, http_port: int, metrics_port: int, parallel_workers: int
) -> dict[str, Any]:
    """MLServer's ``settings.json``: loopback, no per-request access log."""
    return {
        "host": "127.0.0.1",
        "grpc_port": grpc_port,
        "http_port": http_port,
        "metrics_port": metrics_port,
        "parallel_workers": parallel_workers,
        "debug": False,
        "load_models_at_startup": True,
    }


def model_settings(
    model: ModelDir, *, max_batch_size: int, max_batch_time_s: float
) -> dict[str, Any]:
    """``model-settings.json``: XGBoost runtime, ``predict_proba`` output, adaptive batching."""
    return {
        "name": model.model_name,
        "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./model.json", "version": "1"},
        "max_batch_size": max_batch_size,
        "max_batch_time": max_batch_time_s,
        "inputs": [{"name": model.input_name, "datatype": "FP32", "shape": [-1, model.width]}],
        "outputs": [{"name": PROBA_OUTPUT, "datatype": "FP32", "shape": [-1, 2]}],
    }


def _classifier_json(xgb_json: bytes) -> bytes:
    doc = json.loads(xgb_json)
    attributes = doc["learner"].setdefault("attributes", {})
    if "scikit_learn" in attributes:
        return xgb_json
    attributes["scikit_learn"] = json.dumps({"_estimator_type": "classifier"})
    return json.dumps(doc).encode()


def write_repository(
    model: ModelDir,
    workdir: Path,
    *,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    parallel_workers: int,
    max_batch_size: int,
    max_batch_time_s: float,
) -> Path:
    """Lay out the MLServer repository for ``model`` under ``workdir``; returns it."""
    repo = workdir / "mlserver-repo"
    model_folder = repo / model.model_name
    model_folder.mkdir(parents=True, exist_ok=True)
    settings = server_settings(
        grpc_port=grpc_port,
        http_port=http_port,
        metrics_port=metrics_port,
        parallel_workers=parallel_workers,
    )
    (repo / "settings.json").write_text(json.dumps(settings, indent=2))
    (model_folder / "model-settings.json").write_text(
        json.dumps(
            model_settings(model, max_batch_size=max_batch_size, max_batch_time_s=max_batch_time_s),
            indent=2,
        )
    )
    (model_folder / "model.json").write_bytes(_classifier_json(model.xgb_path.read_bytes()))
    return repo


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description="MLServer + mlserver-xgboost peer")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--parallel-workers", type=int, default=1, help="MLServer's default: 1")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-delay-us", type=int, default=1000, help="max_batch_time")
    args = parser.parse_args(argv)

    repo = write_repository(
        ModelDir.load(args.model_dir),
        args.workdir,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        parallel_workers=args.parallel_workers,
        max_batch_size=args.max_batch_size,
        max_batch_time_s=args.batch_delay_us / 1e6,
    )

    from loadtests.peers import model_config_rpc

    model_config_rpc.install(args.grpc_port)
    # MLServer's own CLI entry point ("mlserver start REPO"): its uvloop, its logging.
    from mlserver.cli.main import main as mlserver_main

    sys.argv = ["mlserver", "start", str(repo)]
    mlserver_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
