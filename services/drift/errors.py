"""The drift monitor's errors.

RiskstreamError
└── DriftError
    └── ReferenceUnavailable   the champion's reference.json is missing, does
                               not verify or does not parse (retryable: a
                               newer champion may bring a good one)
"""

from __future__ import annotations

from services.common.errors import RiskstreamError


class DriftError(RiskstreamError):
    """Root of the drift monitor's errors."""


class ReferenceUnavailable(DriftError):
    """The champion's reference distributions cannot be used.

    Attributes:
        version: the model version whose reference was asked for.
        detail: what is wrong with it.
    """

    retryable = True

    def __init__(self, *, version: str, detail: str) -> None:
        super().__init__(f"reference of {version}: {detail}")
        self.version = version
        self.detail = detail
