"""Model registry: the artifact contract between the trainer and the scorer.

A model artifact is a directory (``model.onnx``, ``model.xgb.json``,
``metadata.json``) identified by its digest, the sha256 of ``metadata.json``, and
optionally signed (ed25519 over the digest). Rooms:

* :mod:`~services.registry.metadata` — :class:`ModelMetadata` (kernel).
* :mod:`~services.registry.calibration` — :class:`Calibration` (kernel).
* :mod:`~services.registry.artifact` — :func:`write_artifact`, :func:`load_artifact`.
* :mod:`~services.registry.store` — :class:`LocalArtifactStore` (``file://`` URIs);
  import it from there (it reads the stack configuration).
* :mod:`~services.registry.signing` — ed25519 keys, :func:`sign_digest`,
  :func:`verify_digest`.
* :mod:`~services.registry.publish` — :class:`KafkaModelVersionPublisher`
  (``model-updates``); import it from there (it pulls in the Kafka client).
* :mod:`~services.registry.errors` — :class:`ArtifactRejected` and its reasons,
  :class:`InvalidModelCard`, :class:`RegistryUnavailable`, :class:`TransitionRefused`.

``model-updates`` (compacted, keyed ``model/version``) is the registry's event log
(docs/REGISTRY.md). Kernels over it: :mod:`~services.registry.transitions` (every
transition is the version's whole record, moved), :mod:`~services.registry.rollout`
(the roles fold the scorers, the controller and the catalog share),
:mod:`~services.registry.catalog` (versions, statuses, history),
:mod:`~services.registry.retention` (which versions to archive),
:mod:`~services.registry.approval`, :mod:`~services.registry.model_card` and
:mod:`~services.registry.reference` (an artifact's ``reference.json``, parsed).
Adapters: :mod:`~services.registry.log` (reads the whole log, no consumer group);
:mod:`~services.registry.reference_loader` (a version's reference, read from its
verified artifact: the drift monitor's champion, the controller's canary);
settings: :mod:`~services.registry.config` (``RISKSTREAM_REGISTRY_*``).
"""

from services.registry.artifact import (
    METADATA_FILE,
    ONNX_FILE,
    XGB_FILE,
    LoadedArtifact,
    load_artifact,
    sha256_hex,
    write_artifact,
)
from services.registry.calibration import Calibration
from services.registry.errors import ArtifactRejected, RejectReason
from services.registry.metadata import ModelMetadata, Thresholds, TimeWindow
from services.registry.signing import (
    ensure_key_pair,
    ensure_local_key_pair,
    generate_key_pair,
    key_id,
    load_private_key,
    load_public_key,
    local_key_pair,
    sign_digest,
    verify_digest,
)

__all__ = [
    "METADATA_FILE",
    "ONNX_FILE",
    "XGB_FILE",
    "ArtifactRejected",
    "Calibration",
    "LoadedArtifact",
    "ModelMetadata",
    "RejectReason",
    "Thresholds",
    "TimeWindow",
    "ensure_key_pair",
    "ensure_local_key_pair",
    "generate_key_pair",
    "key_id",
    "load_artifact",
    "load_private_key",
    "load_public_key",
    "local_key_pair",
    "sha256_hex",
    "sign_digest",
    "verify_digest",
    "write_artifact",
]
