"""The Open Inference Protocol v2 (``inference.GRPCInferenceService``) over the pool.

Standard clients (Triton's perf_analyzer and tritonclient, KServe's v2 clients) call
the served model directly: a FP32 tensor ``features`` of shape [n, width] (the
model's feature order, listed by ModelMetadata's ``parameters``-free contract in
``docs/SCORING.md``) in, the calibrated score ``score`` of shape [n, 1] out. Rows go
through the same micro-batcher as FraudScoring, so concurrent callers share ONNX
Runtime calls. Triton's ``ModelConfig`` extension is answered too (perf_analyzer
calls it first), and so are ``ModelStreamInfer`` (one response per request, in order;
a bad request answers with ``error_message`` and the stream goes on, as Triton does)
and ``ModelStatistics`` (per version: requests, rows, success and failure counts and
their total nanoseconds, the last inference time). The model name is the served
model's; the version defaults to the champion.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
from grpc import aio

from riskstream.oip.v2 import grpc_service_pb2 as pb
from riskstream.oip.v2 import grpc_service_pb2_grpc as pb_grpc
from riskstream.oip.v2 import model_config_pb2 as mc
from services.common.errors import InvalidEvent, RiskstreamError
from services.scoring.errors import ModelNotFound
from services.scoring.model_loader import ServedModel
from services.scoring.pool import Snapshot

INPUT = "features"
OUTPUT = "score"
PLATFORM = "onnxruntime_onnx"
SERVER_NAME = "riskstream"
SERVER_VERSION = "0.1.0"


@dataclass
class VersionStatistics:
    """What one model version has answered over ModelInfer / ModelStreamInfer.

    Examples:
        >>> stats = VersionStatistics()
        >>> stats.record(rows=3, ns=2_000, ok=True, at_ms=10)
        >>> stats.record(rows=0, ns=500, ok=False, at_ms=11)
        >>> (stats.requests, stats.rows, stats.success_ns, stats.failures, stats.last_ms)
        (1, 3, 2000, 1, 10)
    """

    requests: int = 0
    rows: int = 0
    success_ns: int = 0
    failures: int = 0
    failure_ns: int = 0
    last_ms: int = 0

    def record(self, *, rows: int, ns: int, ok: bool, at_ms: int) -> None:
        """Count one request (a failed one adds no rows and keeps the last time)."""
        if ok:
            self.requests += 1
            self.rows += rows
            self.success_ns += ns
            self.last_ms = at_ms
        else:
            self.failures += 1
            self.failure_ns += ns


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
        self._stats: dict[str, VersionStatistics] = {}

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
        return await self._infer(request)

    async def ModelStreamInfer(  # noqa: N802
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """One response per request, in order; a request's error does not end the stream."""
        async for request in request_iterator:
            try:
                response = await self._infer(request)
            except RiskstreamError as exc:
                yield pb.ModelStreamInferResponse(error_message=str(exc))
            else:
                yield pb.ModelStreamInferResponse(infer_response=response)

    async def ModelStatistics(  # noqa: N802
        self, request: pb.ModelStatisticsRequest, context: aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        """Per-version counters of the inference RPCs (all versions when none is named)."""
        if request.name and request.name != self._name:
            raise ModelNotFound(name=request.name, version=request.version)
        versions = set(self._snapshot().models) | set(self._stats)
        if request.version:
            if request.version not in versions:
                raise ModelNotFound(name=self._name, version=request.version)
            versions = {request.version}
        return pb.ModelStatisticsResponse(
            model_stats=[self._statistics(version) for version in sorted(versions)]
        )

    def _statistics(self, version: str) -> pb.ModelStatistics:
        stats = self._stats.get(version, VersionStatistics())
        duration = pb.StatisticDuration
        return pb.ModelStatistics(
            name=self._name,
            version=version,
            last_inference=stats.last_ms,
            inference_count=stats.rows,
            inference_stats=pb.InferStatistics(
                success=duration(count=stats.requests, ns=stats.success_ns),
                fail=duration(count=stats.failures, ns=stats.failure_ns),
            ),
        )

    async def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        started = time.perf_counter_ns()
        model = self._model(request.model_name, request.model_version)
        stats = self._stats.setdefault(model.version, VersionStatistics())
        try:
            rows = _input_rows(request, len(model.metadata.feature_names))
            scores = await self._scores(model, rows)
        except BaseException:
            stats.record(rows=0, ns=time.perf_counter_ns() - started, ok=False, at_ms=0)
            raise
        stats.record(
            rows=len(rows),
            ns=time.perf_counter_ns() - started,
            ok=True,
            at_ms=time.time_ns() // 1_000_000,
        )
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

    async def _scores(self, model: ServedModel, rows: np.ndarray) -> np.ndarray:
        """Through the micro-batcher up to its batch size; larger requests in one call."""
        if len(rows) == 1:
            return np.asarray([await model.batcher.submit(rows[0])], dtype=np.float32)
        if len(rows) <= self._max_batch:
            got = await asyncio.gather(*(model.batcher.submit(row) for row in rows))
            return np.asarray(got, dtype=np.float32)
        return model.predict(rows).astype(np.float32)


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
