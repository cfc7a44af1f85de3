"""Open Inference Protocol streaming and statistics, against a real scorer process.

The scorer runs as ``riskstream serve`` does (its own process, real Redis and
Kafka, a model published on ``model-updates``); the harness is the one of
``test_server.py``.
"""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from riskstream.oip.v2 import grpc_service_pb2 as oip
from tests.scoring.test_server import Harness, harness  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration


def _request(rows: np.ndarray, *, shape: list[int] | None = None) -> oip.ModelInferRequest:
    return oip.ModelInferRequest(
        model_name="fraud-xgb",
        id=f"req-{len(rows)}",
        inputs=[
            oip.ModelInferRequest.InferInputTensor(
                name="features", datatype="FP32", shape=shape or list(rows.shape)
            )
        ],
        raw_input_contents=[rows.tobytes()],
    )


def _v1_stats(h: Harness) -> oip.ModelStatistics:
    response = h.oip.ModelStatistics(
        oip.ModelStatisticsRequest(name="fraud-xgb", version="v1"), metadata=h.auth()
    )
    (stats,) = response.model_stats
    return stats


def test_stream_infer_answers_every_request_in_order_and_a_bad_one_does_not_end_it(
    harness: Harness,  # noqa: F811
) -> None:
    model = harness.models["v1"]
    width = len(model.metadata.feature_names)
    rng = np.random.default_rng(5)
    two = rng.gamma(2.0, 30.0, size=(2, width)).astype(np.float32)
    one = rng.gamma(2.0, 30.0, size=(1, width)).astype(np.float32)
    before = _v1_stats(harness)
    started_ms = time.time() * 1000

    responses = list(
        harness.oip.ModelStreamInfer(
            iter([_request(two), _request(one, shape=[1, width + 1]), _request(one)]),
            metadata=harness.auth(),
        )
    )

    assert len(responses) == 3
    first, bad, last = responses
    assert not first.error_message and not last.error_message
    assert "inputs[0].shape" in bad.error_message and not bad.HasField("infer_response")
    for response, rows in ((first, two), (last, one)):
        scores = np.frombuffer(response.infer_response.raw_output_contents[0], dtype="<f4")
        np.testing.assert_allclose(scores, model.xgb_probability(rows), atol=1e-5)
        assert response.infer_response.model_version == "v1"
    assert first.infer_response.id == "req-2"

    after = _v1_stats(harness)
    assert after.inference_count - before.inference_count == 3  # rows
    assert after.inference_stats.success.count - before.inference_stats.success.count == 2
    assert after.inference_stats.fail.count - before.inference_stats.fail.count == 1
    assert after.inference_stats.success.ns > before.inference_stats.success.ns
    assert after.last_inference >= started_ms - 1


def test_statistics_name_unknown_models_and_need_a_token(harness: Harness) -> None:  # noqa: F811
    listed = harness.oip.ModelStatistics(oip.ModelStatisticsRequest(), metadata=harness.auth())
    assert "v1" in [s.version for s in listed.model_stats]
    with pytest.raises(grpc.RpcError) as unknown:
        harness.oip.ModelStatistics(
            oip.ModelStatisticsRequest(name="fraud-xgb", version="v9"), metadata=harness.auth()
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as anonymous:
        harness.oip.ModelStatistics(oip.ModelStatisticsRequest())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
