"""Errors of the producer.

    RiskstreamError                (services.common.errors)
    ├── ConfigError                bad simulator or replay setting; names the field
    └── ReplayError                an input file cannot be replayed at all

A single bad row of an input file is not an error: it becomes a
:class:`~services.producer.events.RejectedRow` in the stream, bound for the DLQ.
"""

from __future__ import annotations

from services.common.errors import RiskstreamError


class ReplayError(RiskstreamError):
    """An input file cannot be replayed at all (unreadable, or its header lacks columns).

    Attributes:
        path: the input file.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"{path}: {message}", retryable=False)
        self.path = path
