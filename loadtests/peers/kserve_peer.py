"""Peer: KServe's Python ModelServer with a custom ``kserve.Model`` running ONNX Runtime.

Runs in the KServe environment (``setup.sh``), started by ``run.py``::

    $PEERS/kserve/bin/python -m loadtests.peers.kserve_peer --model-dir DIR \\
        --grpc-port 50100 --http-port 50101

Serves ``model.onnx`` under ``metadata.json``'s ``model_name`` over OIP v2 gRPC: one
ORT session with one intra-op and one inter-op thread, a synchronous ``predict``
(KServe runs it on its event loop, as its own sklearn/xgboost servers do), no batching
(KServe has none). Returns only the probability tensor. Both listeners on 127.0.0.1;
``ModelConfig`` added by :mod:`loadtests.peers.model_config_rpc`. KServe's per-request
INFO lines (gRPC method, latency) are off: they measure logging, not serving.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description="KServe ModelServer + ONNX Runtime peer")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-threads", type=int, default=4, help="KServe --max_threads")
    args = parser.parse_args(argv)

    from loadtests.peers import model_config_rpc
    from loadtests.peers.model_dir import ModelDir

    model_config_rpc.install(args.grpc_port)
    _bind_http_to_loopback()
    # kserve.model_server parses sys.argv when imported; give it only its own flags.
    sys.argv = [sys.argv[0], "--configure_logging", "true"]

    import kserve
    import numpy as np
    import onnxruntime
    from kserve import InferOutput, InferRequest, InferResponse

    model_dir = ModelDir.load(args.model_dir)

    class OnnxModel(kserve.Model):  # type: ignore[misc]
        def load(self) -> bool:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self.session = onnxruntime.InferenceSession(
                str(model_dir.onnx_path), options, providers=["CPUExecutionProvider"]
            )
            self.ready = True
            return self.ready

        def get_input_types(self) -> list[dict[str, Any]]:
            return [
                {"name": model_dir.input_name, "datatype": "FP32", "shape": [-1, model_dir.width]}
            ]

        def get_output_types(self) -> list[dict[str, Any]]:
            return [{"name": model_dir.output_name, "datatype": "FP32", "shape": [-1, 2]}]

        def predict(
            self, payload: InferRequest, headers: dict[str, str] | None = None
        ) -> InferResponse:
            rows = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
            (probabilities,) = self.session.run(
                [model_dir.output_name], {model_dir.input_name: rows}
            )
            output = InferOutput(
                name=model_dir.output_name, shape=list(probabilities.shape), datatype="FP32"
            )
            output.set_data_from_numpy(probabilities, binary_data=payload.use_binary_outputs)
            return InferResponse(
                model_name=self.name, infer_outputs=[output], response_id=payload.id
            )

    model = OnnxModel(model_dir.model_name)
    model.load()
    server = kserve.ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        max_threads=args.grpc_threads,
        enable_latency_logging=False,
    )
    # After ModelServer(): its constructor configures logging (INFO) itself.
    for name in ("kserve", "kserve.trace", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])
    return 0


def _bind_http_to_loopback() -> None:
    # KServe's REST server hard-codes host="0.0.0.0" in uvicorn.Config.
    import uvicorn

    init = uvicorn.Config.__init__

    def loopback_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        init(self, *args, **kwargs)

    uvicorn.Config.__init__ = loopback_init  # type: ignore[method-assign]


if __name__ == "__main__":
    sys.exit(main())
