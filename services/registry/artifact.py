"""A model artifact on disk, and its verification.

An artifact is a directory of three files::

    model.onnx        the served model (raw probability; see metadata)
    model.xgb.json    XGBoost's own model: per-feature contributions for reason codes
    metadata.json     ModelMetadata.to_json(); ``files`` holds the other files' sha256

The artifact's **digest** is the sha256 of the ``metadata.json`` bytes. It pins every
file (through ``files``) and every setting (thresholds, calibration, feature order),
so one sha256 in the ``model-updates`` record, optionally signed, pins the whole
artifact.

:func:`load_artifact` checks, in order (the first failure wins): ``metadata.json``
is there → its digest is the expected one → the signature, when a public key is
configured (nothing else is parsed before the bytes are authenticated) → the
metadata parses → each listed file is there with its sha256 → ``model.xgb.json``
parses and its feature names are ``metadata.feature_names`` in order → the
feature-set version, when one is expected. It does not load the ONNX model: the
scorer does that with ONNX Runtime and checks the input width itself
(``corrupt_model`` / ``feature_order_mismatch``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.registry.errors import ArtifactRejected, RejectReason
from services.registry.metadata import ModelMetadata
from services.registry.signing import verify_digest

ONNX_FILE = "model.onnx"
XGB_FILE = "model.xgb.json"
METADATA_FILE = "metadata.json"
MODEL_FILES = (ONNX_FILE, XGB_FILE)
#: Files a trained artifact carries besides the model (pinned by ``files`` too).
CARD_JSON_FILE = "model_card.json"
CARD_MARKDOWN_FILE = "model_card.md"
REFERENCE_FILE = "reference.json"


@dataclass(frozen=True)
class LoadedArtifact:
    """A verified artifact, read into memory.

    Attributes:
        metadata: the parsed metadata.
        onnx_bytes: contents of ``model.onnx``.
        xgb_json_bytes: contents of ``model.xgb.json``.
        digest: sha256 hex of ``metadata.json`` (the artifact's identity).
        directory: where it was read from.
    """

    metadata: ModelMetadata
    onnx_bytes: bytes
    xgb_json_bytes: bytes
    digest: str
    directory: Path


def sha256_hex(data: bytes) -> str:
    """Lowercase hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def write_artifact(
    directory: Path,
    *,
    onnx_bytes: bytes,
    xgb_json_bytes: bytes,
    metadata: ModelMetadata,
    extra_files: Mapping[str, bytes] | None = None,
) -> str:
    """Write an artifact into ``directory`` (created; must be empty if it exists).

    ``metadata.files`` is replaced by the sha256 of the two model files and of
    ``extra_files`` (plain names → contents: the model card, reference distributions),
    so the digest pins them as well.

    Returns:
        The artifact digest (sha256 hex of the written ``metadata.json``).

    Raises:
        FileExistsError: ``directory`` exists and is not empty.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty")
    contents = {**(extra_files or {}), ONNX_FILE: onnx_bytes, XGB_FILE: xgb_json_bytes}
    if METADATA_FILE in contents:
        raise ValueError(f"{METADATA_FILE} is written from the metadata, not passed as a file")
    meta = metadata.with_files({name: sha256_hex(data) for name, data in contents.items()})
    meta_bytes = meta.to_json()
    # metadata.json last: a directory with it is complete.
    for name, data in [*contents.items(), (METADATA_FILE, meta_bytes)]:
        path = directory / name
        path.write_bytes(data)
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    return sha256_hex(meta_bytes)


def _read(directory: Path, name: str) -> bytes:
    try:
        return (directory / name).read_bytes()
    except FileNotFoundError as exc:
        raise ArtifactRejected(
            reason=RejectReason.MISSING_FILE, detail=f"{name} is not in {directory}"
        ) from exc
    except OSError as exc:
        raise ArtifactRejected(
            reason=RejectReason.MISSING_FILE, detail=f"cannot read {directory / name}: {exc}"
        ) from exc


def _json_after(data: bytes, key: bytes) -> object:
    """The JSON value after the first ``"key":`` in ``data`` (KeyError when absent).

    Scorers verify artifacts while serving: parsing a whole model JSON (megabytes for
    a few hundred trees) would hold the GIL for tens of milliseconds, so only the
    learner's small fields are decoded.
    """
    start = data.find(b'"' + key + b'":')
    if start < 0:
        raise KeyError(key.decode())
    text = data[start + len(key) + 3 : start + len(key) + 3 + (1 << 20)].decode("utf-8", "replace")
    value, _ = json.JSONDecoder().raw_decode(text.lstrip())
    return value


def _xgb_feature_names(xgb_json_bytes: bytes) -> list[str]:
    try:
        names = _json_after(xgb_json_bytes, b"feature_names")
        width = int(_json_after(xgb_json_bytes, b"num_feature"))  # type: ignore[call-overload]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactRejected(
            reason=RejectReason.CORRUPT_MODEL, detail=f"{XGB_FILE} is not an XGBoost JSON model"
        ) from exc
    if not isinstance(names, list) or (names and len(names) != width):
        count = len(names) if isinstance(names, list) else 0
        raise ArtifactRejected(
            reason=RejectReason.CORRUPT_MODEL,
            detail=f"{XGB_FILE} lists {count} feature names for {width} features",
        )
    return [str(n) for n in names] or [f"f{i}" for i in range(width)]


def load_artifact(
    directory: Path,
    *,
    expected_sha256: str,
    public_key: Ed25519PublicKey | None = None,
    signature: bytes | None = None,
    expected_feature_set_version: str | None = None,
) -> LoadedArtifact:
    """Read and verify the artifact in ``directory``.

    Args:
        directory: the artifact directory.
        expected_sha256: the digest the artifact must have (from ``model-updates``).
        public_key: when given, ``signature`` must be its signature of the digest.
        signature: ed25519 signature of the digest's hex; ignored without a key.
        expected_feature_set_version: when given, the metadata's must equal it.

    Returns:
        The verified artifact.

    Raises:
        ArtifactRejected: with ``reason`` ``missing_file``, ``sha256_mismatch``,
            ``bad_signature``, ``bad_metadata``, ``corrupt_model``,
            ``feature_order_mismatch`` or ``feature_set_mismatch``.
    """
    directory = Path(directory)
    meta_bytes = _read(directory, METADATA_FILE)
    digest = sha256_hex(meta_bytes)
    if not hmac.compare_digest(digest, expected_sha256.strip().lower()):
        raise ArtifactRejected(
            reason=RejectReason.SHA256_MISMATCH,
            detail=f"{METADATA_FILE} has digest {digest}, expected {expected_sha256}",
        )
    if public_key is not None:
        if not signature:
            raise ArtifactRejected(
                reason=RejectReason.BAD_SIGNATURE,
                detail="a public key is configured but the artifact is unsigned",
            )
        if not verify_digest(public_key, digest, signature):
            raise ArtifactRejected(
                reason=RejectReason.BAD_SIGNATURE,
                detail=f"signature does not verify for digest {digest}",
            )
    metadata = ModelMetadata.from_json(meta_bytes)
    missing = [name for name in MODEL_FILES if name not in metadata.files]
    if missing:
        raise ArtifactRejected(
            reason=RejectReason.BAD_METADATA, detail=f"files: no sha256 for {missing}"
        )
    contents: dict[str, bytes] = {}
    for name, expected in sorted(metadata.files.items()):
        data = _read(directory, name)
        actual = sha256_hex(data)
        if not hmac.compare_digest(actual, expected):
            raise ArtifactRejected(
                reason=RejectReason.SHA256_MISMATCH,
                detail=f"{name} has sha256 {actual}, metadata says {expected}",
            )
        contents[name] = data
    xgb_names = _xgb_feature_names(contents[XGB_FILE])
    if xgb_names != list(metadata.feature_names):
        raise ArtifactRejected(
            reason=RejectReason.FEATURE_ORDER_MISMATCH,
            detail=f"{XGB_FILE} features {xgb_names} != metadata {list(metadata.feature_names)}",
        )
    if (
        expected_feature_set_version is not None
        and metadata.feature_set_version != expected_feature_set_version
    ):
        raise ArtifactRejected(
            reason=RejectReason.FEATURE_SET_MISMATCH,
            detail=f"model uses feature set {metadata.feature_set_version}, "
            f"this service serves {expected_feature_set_version}",
        )
    return LoadedArtifact(
        metadata=metadata,
        onnx_bytes=contents[ONNX_FILE],
        xgb_json_bytes=contents[XGB_FILE],
        digest=digest,
        directory=directory,
    )
