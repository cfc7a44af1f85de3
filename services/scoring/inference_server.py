"""The Open Inference Protocol v2 (``inference.GRPCInferenceService``) over the pool.

Standard clients (Triton's perf_analyzer and tritonclient, KServe's v2 clients) call
the served model directly: a FP32 tensor ``features`` of shape [n, width] (the
model's feature order, listed by ModelMetadata's ``parameters``-free contract in
``docs/SCORING.md``) in, the calibrated score ``score`` of shape [n, 1] out. Rows go
through the same micro-batcher as FraudScoring, so concurrent callers share ONNX
Runtime calls. Triton's ``ModelConfig`` extension is answered too (perf_analyzer
calls it first). The model name is the served model's; the version defaults to the
champion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
from grpc import aio

from riskstream.oip.v2 import grpc_service_pb2 as pb
from riskstream.oip.v2 import grpc_service_pb2_grpc as pb_grpc
from riskstream.oip.v2 import model_config_pb2 as mc
from services.common.errors import InvalidEvent
from services.scoring.errors import ModelNotFound
from services.scoring.model_loader import ServedModel
from services.scoring.pool import Snapshot

INPUT = "features"
OUTPUT = "score"
PLATFORM = "onnxruntime_onnx"
SERVER_NAME = "riskstream"
SERVER_VERSION = "0.1.0"


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """OIP v2 health, metadata, config and inference for the served model.

    Args:
        model_name: the served model's name.
        snapshot: returns the pool's current snapshot.
        max_batch_size: advertised in ModelConfig (rows per request it accepts
            without splitting).
    """

    def __init__(
        self, model_name: str, snapshot: Callable[[], Snapshot], max_batch_size: int
    ) -> None:
        self._name = model_name
        self._snapshot = snapshot
        self._max_batch = max_batch_size

    def _model(self, name: str, version: str) -> ServedModel:
        snap = self._snapshot()
        if name != self._name:
            raise ModelNotFound(name=name, version=version)
        model = snap.models.get(version) if version else snap.champion
        if model is None:
            raise ModelNotFound(name=name, version=version)
        return model

    async def ServerLive(  # noqa: N802 (gRPC method names)
        self, request: pb.ServerLiveRequest, context: aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        """The process answers."""
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(  # noqa: N802
        self, request: pb.ServerReadyRequest, context: aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        """Ready when a champion is loaded."""
        return pb.ServerReadyResponse(ready=self._snapshot().champion is not None)

    async def ModelReady(  # noqa: N802
        self, request: pb.ModelReadyRequest, context: aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        """Whether that model (and version) is loaded."""
        try:
            self._model(request.name, request.version)
        except ModelNotFound:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(  # noqa: N802
        self, request: pb.ServerMetadataRequest, context: aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        """Name, version and extensions."""
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=SERVER_VERSION, extensions=["model_configuration"]
        )

    async def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context: aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        """Inputs and outputs, with the batch dimension as -1."""
        model = self._model(request.name, request.version)
        width = len(model.metadata.feature_names)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=self._name,
            versions=sorted(self._snapshot().models),
            platform=PLATFORM,
            inputs=[tensor(name=INPUT, datatype="FP32", shape=[-1, width])],
            outputs=[tensor(name=OUTPUT, datatype="FP32", shape=[-1, 1])],
        )

    async def ModelConfig(  # noqa: N802
        self, request: pb.ModelConfigRequest, context: aio.ServicerContext
    ) -> pb.ModelConfigResponse:
        """Triton's model configuration (dims without the batch dimension)."""
        model = self._model(request.name, request.version)
        width = len(model.metadata.feature_names)
        config = mc.ModelConfig(
            name=self._name,
            platform=PLATFORM,
            max_batch_size=self._max_batch,
            input=[mc.ModelInput(name=INPUT, data_type=mc.TYPE_FP32, dims=[width])],
            output=[mc.ModelOutput(name=OUTPUT, data_type=mc.TYPE_FP32, dims=[1])],
            dynamic_batching=mc.ModelDynamicBatching(),
        )
        return pb.ModelConfigResponse(config=config)

    async def ModelInfer(  # noqa: N802
        self, request: pb.ModelInferRequest, context: aio.ServicerContext
    ) -> pb.ModelInferResponse:
        """Calibrated scores of the rows of ``features``."""
        model = self._model(request.model_name, request.model_version)
        rows = _input_rows(request, len(model.metadata.feature_names))
        if len(rows) == 1:
            scores = np.asarray([await model.batcher.submit(rows[0])], dtype=np.float32)
        elif len(rows) <= self._max_batch:
            got = await asyncio.gather(*(model.batcher.submit(row) for row in rows))
            scores = np.asarray(got, dtype=np.float32)
        else:
            scores = model.predict(rows).astype(np.float32)
        return pb.ModelInferResponse(
            model_name=self._name,
            model_version=model.version,
            id=request.id,
            outputs=[
                pb.ModelInferResponse.InferOutputTensor(
                    name=OUTPUT, datatype="FP32", shape=[len(scores), 1]
                )
            ],
            raw_output_contents=[scores.tobytes()],
        )


def _input_rows(request: pb.ModelInferRequest, width: int) -> np.ndarray:
    """The request's ``features`` tensor as a (n, width) float32 array.

    Raises:
        InvalidEvent: missing input, wrong type or shape, or inconsistent contents.
    """
    for index, tensor in enumerate(request.inputs):
        if tensor.name != INPUT:
            continue
        field = f"inputs[{index}]"
        if tensor.datatype != "FP32":
            raise InvalidEvent(
                field=f"{field}.datatype", reason=f"must be FP32, got {tensor.datatype!r}"
            )
        shape = list(tensor.shape)
        if len(shape) != 2 or shape[1] != width or shape[0] <= 0:
            raise InvalidEvent(field=f"{field}.shape", reason=f"must be [n, {width}], got {shape}")
        if request.raw_input_contents:
            if index >= len(request.raw_input_contents):
                raise InvalidEvent(field="raw_input_contents", reason=f"no entry for {field}")
            data = np.frombuffer(request.raw_input_contents[index], dtype="<f4")
        else:
            data = np.asarray(tensor.contents.fp32_contents, dtype=np.float32)
        if data.size != shape[0] * width:
            raise InvalidEvent(
                field=f"{field}.contents",
                reason=f"{data.size} values for shape {shape}",
            )
        return data.reshape(shape[0], width)
    raise InvalidEvent(field="inputs", reason=f"no input named {INPUT!r}")
