"""The scorer's errors; one interceptor maps each class to a gRPC status code.

RiskstreamError
├── InvalidEvent            (common) a request field is invalid → INVALID_ARGUMENT
└── ScoringError
    ├── Unauthenticated     no or unknown bearer token → UNAUTHENTICATED
    ├── PermissionDenied    the token's role may not call this → PERMISSION_DENIED
    ├── Overloaded          queues full; retry later → RESOURCE_EXHAUSTED
    ├── ModelNotFound       no loaded model by that name/version → NOT_FOUND
    ├── RolloutRefused      the rollout change is not possible now → FAILED_PRECONDITION
    ├── ModelFailed         inference raised (the scorer falls back) → INTERNAL
    └── TensorFormUnavailable  no CUDA (tensor) form for a model; it stays on the CPU
"""

from __future__ import annotations

from services.common.errors import RiskstreamError


class ScoringError(RiskstreamError):
    """Root of the scorer's own errors."""


class Unauthenticated(ScoringError):
    """The call carries no bearer token, or one the scorer does not know."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class PermissionDenied(ScoringError):
    """The token is valid but its role may not call this method."""

    def __init__(self, *, role: str, method: str) -> None:
        super().__init__(f"role {role!r} may not call {method}")
        self.role = role
        self.method = method


class Overloaded(ScoringError):
    """More requests are in flight than the configured bound: fail fast."""

    retryable = True

    def __init__(self, *, in_flight: int, limit: int) -> None:
        super().__init__(f"{in_flight} requests in flight (limit {limit}); retry with backoff")
        self.in_flight = in_flight
        self.limit = limit


class ModelNotFound(ScoringError):
    """No loaded model matches the requested name or version."""

    def __init__(self, *, name: str, version: str = "") -> None:
        what = f"{name}:{version}" if version else name
        super().__init__(f"model {what!r} is not loaded")
        self.name = name
        self.version = version


class RolloutRefused(ScoringError):
    """A rollout change cannot be applied (unknown version, no last-good, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelFailed(ScoringError):
    """Inference raised; the scorer falls back to rules and counts it."""

    retryable = True

    def __init__(self, *, version: str, reason: str) -> None:
        super().__init__(f"model {version}: {reason}")
        self.version = version
        self.reason = reason


class TensorFormUnavailable(ScoringError):
    """No tensor form could be made for a model (it is served on the CPU instead)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retryable=False)
        self.detail = detail
