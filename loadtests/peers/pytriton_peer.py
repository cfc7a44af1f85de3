"""Peer: Triton Inference Server through PyTriton, dynamic batching on, ONNX Runtime inside.

Runs in the PyTriton environment (``setup.sh``), started by ``run.py``::

    PYTRITON_ACCESS_TOKEN=... $PEERS/pytriton/bin/python -m loadtests.peers.pytriton_peer \\
        --model-dir DIR --grpc-port 50100 --http-port 50101

Binds ``model.onnx`` as a PyTriton model: ``@batch`` inference callable running one ORT
session (one intra-op, one inter-op thread), ``max_batch_size`` 32 and Triton's
``DynamicBatcher`` with ``--batch-delay-us`` queue delay. Triton's gRPC and HTTP on
127.0.0.1, metrics off. Triton has ``ModelConfig`` itself.

Two things this machine needs (docs: /work/shared/PEERS.md):

- Triton's Python-backend stub links the system's ``libpython3.11`` while it runs this
  interpreter's standard library; unless ``LD_LIBRARY_PATH`` leads to this interpreter's
  own ``libpython`` the model fails to load (``'_thread.RLock' object has no attribute
  '_recursion_count'``). Set here, before Triton starts, so its processes inherit it.
- PyTriton protects some gRPC endpoints (statistics, repository...) with a token; it is
  taken from ``PYTRITON_ACCESS_TOKEN`` so the harness can pass the same one to
  perf_analyzer (``-H triton-grpc-protocol-triton-access-token:TOKEN``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import sysconfig
import tempfile
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description="PyTriton (Triton 2.51) + ONNX Runtime peer")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-delay-us", type=int, default=1000)
    args = parser.parse_args(argv)
    # SIGTERM as an exception, so the `with Triton(...)` below stops tritonserver and
    # removes its workspace; the default handler would leave both behind.
    signal.signal(signal.SIGTERM, _raise_exit)

    libdir = sysconfig.get_config_var("LIBDIR")
    os.environ["LD_LIBRARY_PATH"] = ":".join(
        p for p in (libdir, os.environ.get("LD_LIBRARY_PATH")) if p
    )

    import numpy as np
    import onnxruntime
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    from loadtests.peers.model_dir import ModelDir

    model_dir = ModelDir.load(args.model_dir)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(model_dir.onnx_path), options, providers=["CPUExecutionProvider"]
    )

    @batch  # type: ignore[untyped-decorator]
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        rows = inputs[model_dir.input_name].astype(np.float32, copy=False)
        (probabilities,) = session.run([model_dir.output_name], {model_dir.input_name: rows})
        return {model_dir.output_name: probabilities}

    config = TritonConfig(
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        http_address="127.0.0.1",
        http_port=args.http_port,
        allow_metrics=False,
        log_verbose=0,
    )
    security = TritonSecurityConfig(access_token=os.environ.get("PYTRITON_ACCESS_TOKEN"))
    # A short workspace path: PyTriton binds AF_UNIX sockets in it, and a path over
    # 107 bytes fails model loading ("OSError: AF_UNIX path too long").
    # PyTriton creates the workspace itself and refuses one that exists.
    scratch = tempfile.mkdtemp(prefix="rs-pytriton-")
    try:
        with Triton(config=config, workspace=f"{scratch}/ws", security_config=security) as triton:
            triton.bind(
                model_name=model_dir.model_name,
                infer_func=infer,
                inputs=[
                    Tensor(name=model_dir.input_name, dtype=np.float32, shape=(model_dir.width,))
                ],
                outputs=[Tensor(name=model_dir.output_name, dtype=np.float32, shape=(2,))],
                config=ModelConfig(
                    max_batch_size=args.max_batch_size,
                    batcher=DynamicBatcher(max_queue_delay_microseconds=args.batch_delay_us),
                ),
                strict=False,
            )
            triton.serve()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
