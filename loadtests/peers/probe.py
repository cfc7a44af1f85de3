"""Wait until an OIP v2 gRPC server serves a model, then describe it and score fixed rows.

Runs in the perf_analyzer environment (tritonclient), started by ``run.py``::

    $PEERS/perf/bin/python -m loadtests.peers.probe --url 127.0.0.1:50100 \\
        --model NAME --width 24 --output-index 1 [--header 'authorization:Bearer T']

Polls ``ServerLive`` / ``ModelReady`` until ``--timeout``, then prints one JSON object:
the model's ``metadata`` and ``config`` (the ``ModelConfig`` perf_analyzer will see)
and ``scores``, the positive-class probability the server returns for each of
``--rows`` seeded rows sent one request each. The harness compares the scores across
peers: the same model must give the same numbers everywhere.

Exit status 1, with the reason on stderr, when the model is not ready in time or a
call fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def _headers(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition(":")
        out[key.strip().lower()] = value
    return out


def _rows(count: int, width: int) -> list[list[float]]:
    import numpy as np

    rng = np.random.default_rng(20261127)
    rows: list[list[float]] = rng.normal(size=(count, width)).astype(np.float32).tolist()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Probe and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="HOST:PORT")
    parser.add_argument("--model", required=True)
    parser.add_argument("--width", type=int, required=True, help="features per row")
    parser.add_argument("--input", help="input tensor name (default: the metadata's first)")
    parser.add_argument("--output-index", type=int, default=1)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--header", action="append", default=[], help="KEY:VALUE, repeatable")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for ready")
    args = parser.parse_args(argv)

    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    headers = _headers(args.header)
    client = grpcclient.InferenceServerClient(args.url)
    deadline = time.monotonic() + args.timeout
    last_error = "not ready"
    while True:
        try:
            if client.is_server_live(headers=headers) and client.is_model_ready(
                args.model, headers=headers
            ):
                break
        except InferenceServerException as exc:
            last_error = str(exc)
        if time.monotonic() > deadline:
            print(f"{args.model} at {args.url}: {last_error}", file=sys.stderr)
            return 1
        time.sleep(0.5)

    try:
        metadata: dict[str, Any] = client.get_model_metadata(
            args.model, headers=headers, as_json=True
        )
        config: dict[str, Any] = client.get_model_config(args.model, headers=headers, as_json=True)
        input_name = args.input or metadata["inputs"][0]["name"]
        output_name = metadata["outputs"][0]["name"]
        scores = []
        for row in _rows(args.rows, args.width):
            tensor = grpcclient.InferInput(input_name, [1, args.width], "FP32")
            tensor.set_data_from_numpy(np.asarray([row], dtype=np.float32))
            result = client.infer(
                args.model,
                [tensor],
                outputs=[grpcclient.InferRequestedOutput(output_name)],
                headers=headers,
            )
            values = np.asarray(result.as_numpy(output_name), dtype=np.float64).reshape(-1)
            scores.append(float(values[args.output_index] if values.size > 1 else values[0]))
    except InferenceServerException as exc:
        print(f"{args.model} at {args.url}: {exc}", file=sys.stderr)
        return 1
    json.dump({"metadata": metadata, "config": config, "scores": scores}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
