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
* :mod:`~services.registry.errors` — :class:`ArtifactRejected` and its reasons.
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
    generate_key_pair,
    key_id,
    load_private_key,
    load_public_key,
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
    "generate_key_pair",
    "key_id",
    "load_artifact",
    "load_private_key",
    "load_public_key",
    "sha256_hex",
    "sign_digest",
    "verify_digest",
    "write_artifact",
]
