"""Give a Python ``grpc.aio`` OIP server Triton's ``ModelConfig`` RPC, in its own process.

perf_analyzer calls ``ModelConfig`` before profiling; MLServer and KServe answer
"Method not found". Rather than a proxy in front (one more process and hop on every
request, which on a 2-core machine would tax exactly the peers that need it), the
peer launchers call :func:`install` before the server starts: every ``grpc.aio``
server created afterwards gets

- one more generic handler, for ``/inference.GRPCInferenceService/ModelConfig`` only:
  it asks the same server's ``ModelMetadata`` over loopback and answers with
  :func:`loadtests.peers.oip_wire.model_config_from_metadata` of it (read-only; every
  other method is untouched and served by the server's own handlers);
- its listening address forced to ``127.0.0.1`` (KServe binds all interfaces and has
  no host option).

Runs inside a peer's environment (grpcio of that environment); nothing runs at import.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
import grpc.aio

from loadtests.peers.oip_wire import (
    MODEL_CONFIG_METHOD,
    MODEL_METADATA_METHOD,
    WireError,
    decode_model_metadata_response,
    decode_name_version,
    encode_model_config_response,
    encode_name_version,
    model_config_from_metadata,
)

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


class _ModelConfigHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Answers ModelConfig from the server's own ModelMetadata; declines everything else."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._channel: grpc.aio.Channel | None = None

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler | None:
        if handler_call_details.method != MODEL_CONFIG_METHOD:
            return None
        # No (de)serializers: the handler sees and returns raw message bytes.
        return grpc.unary_unary_rpc_method_handler(self._model_config)

    async def _model_config(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            name, version = decode_name_version(request)
        except WireError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if self._channel is None:  # created lazily, inside the server's event loop
            self._channel = grpc.aio.insecure_channel(f"{LOOPBACK}:{self._port}")
        metadata_rpc = self._channel.unary_unary(MODEL_METADATA_METHOD)
        try:
            raw = await metadata_rpc(encode_name_version(name, version), timeout=10)
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "ModelMetadata failed")
        try:
            config = model_config_from_metadata(decode_model_metadata_response(raw))
        except WireError as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"cannot build ModelConfig: {exc}")
        return encode_model_config_response(config)


def install(port: int) -> None:
    """Patch ``grpc.aio.server`` so servers made from now on get ModelConfig, on loopback.

    Args:
        port: the gRPC port the peer serves on (used to reach its own ModelMetadata).
    """
    make_server = grpc.aio.server

    def server(*args: Any, **kwargs: Any) -> grpc.aio.Server:
        srv = make_server(*args, **kwargs)
        srv.add_generic_rpc_handlers((_ModelConfigHandler(port),))
        add_port = srv.add_insecure_port

        def add_insecure_port(address: str) -> int:
            bound = f"{LOOPBACK}:{address.rsplit(':', 1)[1]}"
            log.info("gRPC: %s requested, binding %s", address, bound)
            return int(add_port(bound))

        srv.add_insecure_port = add_insecure_port
        return srv

    grpc.aio.server = server
