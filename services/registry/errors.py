"""Errors of the model registry.

    RiskstreamError
    ├── ArtifactRejected      a model artifact failed verification; ``reason`` says why
    ├── InvalidModelCard      a model card is malformed; ``field`` names what
    ├── ReferenceUnavailable  an artifact's reference.json is missing, does not verify
    │                         or does not parse (retryable: a newer version may bring
    │                         a good one)
    ├── RegistryUnavailable   ``model-updates`` could not be read (retryable)
    └── TransitionRefused     a registry change is not allowed (approve an archived
                              version, an unknown version, a caller who is not admin)

An artifact that fails any check is never served: callers keep their current model
(or fall back to rules) and report ``reason`` in logs, metrics and the model-updates
log, so they branch on ``reason``, never on the message text.
"""

from __future__ import annotations

from enum import StrEnum

from services.common.errors import RiskstreamError


class RejectReason(StrEnum):
    """Machine-readable reasons an artifact is rejected (values are plain strings)."""

    #: The metadata digest differs from the expected sha256, or a file's sha256
    #: differs from the one recorded in the metadata.
    SHA256_MISMATCH = "sha256_mismatch"
    #: A public key is configured and the signature is missing or does not verify.
    BAD_SIGNATURE = "bad_signature"
    #: A model file cannot be parsed or loaded.
    CORRUPT_MODEL = "corrupt_model"
    #: The model's own input order (or width) differs from ``feature_names``.
    FEATURE_ORDER_MISMATCH = "feature_order_mismatch"
    #: The model was trained on another feature-set version than the one served.
    FEATURE_SET_MISMATCH = "feature_set_mismatch"
    #: A file of the artifact is absent.
    MISSING_FILE = "missing_file"
    #: ``metadata.json`` is malformed; the detail names the field.
    BAD_METADATA = "bad_metadata"
    #: The artifact URI has a scheme no store handles.
    UNSUPPORTED_URI = "unsupported_uri"


class ArtifactRejected(RiskstreamError):
    """A model artifact failed verification and must not be served.

    Not retryable: the same bytes fail the same way.

    Attributes:
        reason: one of :class:`RejectReason`'s values, e.g. ``"sha256_mismatch"``.
        detail: human-readable specifics (which file, which field, which values).
    """

    def __init__(self, *, reason: str, detail: str) -> None:
        super().__init__(f"artifact rejected ({reason}): {detail}", retryable=False)
        self.reason = str(reason)
        self.detail = detail


class InvalidModelCard(RiskstreamError):
    """A model card document is malformed.

    Not retryable: the same document fails the same way.

    Attributes:
        field: dotted path of the offending field (``"segment_metrics.night"``), or
            ``"<document>"`` when the document as a whole is not a card.
        problem: what is wrong with it.
    """

    def __init__(self, *, field: str, problem: str) -> None:
        super().__init__(f"model card: {field}: {problem}", retryable=False)
        self.field = field
        self.problem = problem


class ReferenceUnavailable(RiskstreamError):
    """A model's reference distributions (``reference.json``) cannot be used.

    Retryable: a newer version of the model may bring a good one. Its readers (the
    drift monitor, the rollout controller) carry on without it.

    Attributes:
        version: the model version whose reference was asked for.
        detail: what is wrong with it.
    """

    def __init__(self, *, version: str, detail: str) -> None:
        super().__init__(f"reference of {version}: {detail}", retryable=True)
        self.version = version
        self.detail = detail


class RegistryUnavailable(RiskstreamError):
    """The registry's event log could not be read; retrying later may succeed.

    Attributes:
        topic: the log's topic.
        detail: what failed.
    """

    def __init__(self, *, topic: str, detail: str) -> None:
        super().__init__(f"cannot read {topic}: {detail}", retryable=True)
        self.topic = topic
        self.detail = detail


class TransitionRefused(RiskstreamError):
    """A registry change was refused; nothing was published.

    Attributes:
        version: the version the change was for ("" when none).
        detail: why, in words a user can act on.
    """

    def __init__(self, *, version: str, detail: str) -> None:
        super().__init__(detail, retryable=False)
        self.version = version
        self.detail = detail
