"""The project's error tree.

Every error riskstream raises on purpose derives from :class:`RiskstreamError`.
Errors carry keyword-only fields and say whether retrying can help, so callers
(stream processors, the gRPC interceptor) decide by class, never by message text.

    RiskstreamError
    ├── ConfigError            bad or missing setting (not retryable)
    ├── InvalidEvent           an event or request failed validation; names the field
    ├── InfraError             a local component could not be started or reached
    │   └── PortInUseError     a port we need is held by a process we did not start
    └── KafkaDeliveryError     the broker did not acknowledge a record (retryable)

Services add their own subtrees in their ``errors.py``.
"""

from __future__ import annotations


class RiskstreamError(Exception):
    """Root of every error riskstream raises deliberately.

    Attributes:
        retryable: whether the same operation may succeed if tried again.
    """

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConfigError(RiskstreamError):
    """A setting is missing, unknown or out of range."""


class InvalidEvent(RiskstreamError):
    """An event or request failed validation.

    Attributes:
        field: dotted path of the offending field (``"transaction.amount"``), or
            ``"<payload>"`` when the payload as a whole could not be parsed.
        reason: a short, human-readable explanation.
    """

    def __init__(self, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", retryable=False)
        self.field = field
        self.reason = reason


class InfraError(RiskstreamError):
    """A local infrastructure component could not be started, stopped or reached."""

    def __init__(self, message: str, *, component: str, retryable: bool = False) -> None:
        super().__init__(f"{component}: {message}", retryable=retryable)
        self.component = component


class PortInUseError(InfraError):
    """A port riskstream needs is held by a process riskstream did not start."""

    def __init__(self, *, component: str, port: int, holder: str) -> None:
        super().__init__(
            f"port 127.0.0.1:{port} is already in use by {holder}; stop it or configure "
            f"another port",
            component=component,
        )
        self.port = port
        self.holder = holder


class KafkaDeliveryError(RiskstreamError):
    """The broker did not acknowledge a produced record."""

    retryable = True

    def __init__(self, *, topic: str, reason: str) -> None:
        super().__init__(f"delivery to {topic} failed: {reason}")
        self.topic = topic
        self.reason = reason
