"""The drift monitor's errors.

RiskstreamError
└── DriftError

A champion whose reference cannot be used raises
:class:`services.registry.errors.ReferenceUnavailable` (retryable: a newer champion
may bring a good one): the reference is part of the artifact, read the same way by
the drift monitor and the rollout controller.
"""

from __future__ import annotations

from services.common.errors import RiskstreamError


class DriftError(RiskstreamError):
    """Root of the drift monitor's errors."""
