"""One interceptor for every RPC: access control, error → status mapping, metrics.

Handlers raise our errors; this is the one place that turns them into gRPC status
codes, so no handler builds a status by hand. Wrapped handlers are built once per
method and cached: a call pays for the token check and the timing only.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from services.common.errors import InvalidEvent, RiskstreamError
from services.registry.errors import ArtifactRejected
from services.scoring.auth import TokenAuthority
from services.scoring.errors import (
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    RolloutRefused,
    Unauthenticated,
)
from services.scoring.telemetry import ScoringTelemetry

log = logging.getLogger(__name__)

#: The caller's request id (metadata ``x-request-id``), for logs.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidEvent, grpc.StatusCode.INVALID_ARGUMENT),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (RolloutRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (ArtifactRejected, grpc.StatusCode.FAILED_PRECONDITION),
)


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status code of one of our errors (INTERNAL for anything unexpected)."""
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    if isinstance(exc, RiskstreamError) and exc.retryable:
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


def _metadata(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for item in details.invocation_metadata or ():
        if item[0] == key:
            value = item[1]
            return value.decode() if isinstance(value, bytes) else value
    return None


class ServingInterceptor(aio.ServerInterceptor):
    """Access control, error mapping and RPC metrics for every method.

    Args:
        authority: the tokens; None serves without access control (tests only).
        telemetry: receives (method, code, seconds) for every RPC.
    """

    def __init__(self, authority: TokenAuthority | None, telemetry: ScoringTelemetry) -> None:
        self._authority = authority
        self._telemetry = telemetry
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if self._authority is not None:
            try:
                self._authority.check(method, _metadata(handler_call_details, "authorization"))
            except (Unauthenticated, PermissionDenied) as exc:
                self._telemetry.on_rpc(_short(method), status_for(exc).name, 0.0)
                inner = await continuation(handler_call_details)
                return _refusal(inner, status_for(exc), str(exc))
        rid = _metadata(handler_call_details, "x-request-id")
        if rid:
            request_id.set(rid)
        handler = self._wrapped.get(method)
        if handler is None:
            inner = await continuation(handler_call_details)
            if inner is None:
                return inner
            handler = self._wrap(_short(method), inner)
            self._wrapped[method] = handler
        return handler

    def _wrap(self, name: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        telemetry = self._telemetry
        if handler.unary_unary is not None:
            behavior = handler.unary_unary

            async def unary(request: Any, context: aio.ServicerContext) -> Any:
                started = time.perf_counter()
                code = "OK"
                try:
                    return await behavior(request, context)
                except RiskstreamError as exc:
                    code = status_for(exc).name
                    await context.abort(status_for(exc), str(exc))
                except Exception as exc:
                    code = _aborted_code(context, exc)
                    if code == "INTERNAL":
                        log.exception("%s failed", name)
                        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
                    raise
                finally:
                    telemetry.on_rpc(name, code, time.perf_counter() - started)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            stream_behavior = handler.stream_stream

            async def stream(requests: AsyncIterator[Any], context: aio.ServicerContext) -> Any:
                started = time.perf_counter()
                code = "OK"
                try:
                    async for response in stream_behavior(requests, context):
                        yield response
                except RiskstreamError as exc:
                    code = status_for(exc).name
                    await context.abort(status_for(exc), str(exc))
                finally:
                    telemetry.on_rpc(name, code, time.perf_counter() - started)

            return grpc.stream_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # unary-stream / stream-unary: health Watch, reflection


def _aborted_code(context: aio.ServicerContext, exc: Exception) -> str:
    code = context.code()
    if code is not None and code != grpc.StatusCode.OK:
        return code.name if isinstance(code, grpc.StatusCode) else str(code)
    return "CANCELLED" if isinstance(exc, aio.AbortError) else "INTERNAL"


def _short(method: str) -> str:
    return method.rsplit("/", 1)[-1]


def _refusal(
    inner: grpc.RpcMethodHandler | None, code: grpc.StatusCode, details: str
) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``inner`` that only aborts with ``code``."""

    async def refuse(request: Any, context: aio.ServicerContext) -> Any:
        await context.abort(code, details)

    async def refuse_stream(request: Any, context: aio.ServicerContext) -> Any:
        await context.abort(code, details)
        yield  # pragma: no cover (abort raises): makes this an async generator

    kwargs = {
        "request_deserializer": getattr(inner, "request_deserializer", None),
        "response_serializer": getattr(inner, "response_serializer", None),
    }
    if inner is not None and inner.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(refuse_stream, **kwargs)
    if inner is not None and inner.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **kwargs)
    if inner is not None and inner.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)
    return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)
