"""A model's reference distributions, read from its verified artifact.

Adapter (the local artifact store). The ``model-updates`` record names the
artifact; :func:`services.registry.artifact.load_artifact` verifies it exactly as
the scorer does (sha256 of the metadata and of every listed file, the signature
when a key is configured), and ``reference.json`` must be one of the files the
metadata pins, so a reader compares live traffic with the distributions the trained
model really saw. The drift monitor reads its champion's reference here, the
rollout controller its canary's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from riskstream.v1 import events_pb2
from services.registry.artifact import REFERENCE_FILE, load_artifact, sha256_hex
from services.registry.errors import ArtifactRejected, ReferenceUnavailable
from services.registry.metadata import ModelMetadata
from services.registry.reference import Reference, parse_reference
from services.registry.store import LocalArtifactStore


@dataclass(frozen=True)
class LoadedReference:
    """A version's reference and the metadata of the artifact that pins it.

    Attributes:
        version: the model version.
        reference: its parsed ``reference.json``.
        metadata: its artifact's verified metadata.
    """

    version: str
    reference: Reference
    metadata: ModelMetadata


class ArtifactReferenceLoader:
    """Loads a version's reference from the artifact store, verified.

    Args:
        store: where artifact URIs resolve.
        public_key: when set, artifacts must carry a valid signature.
    """

    def __init__(
        self, store: LocalArtifactStore, *, public_key: Ed25519PublicKey | None = None
    ) -> None:
        self._store = store
        self._public_key = public_key

    def load(self, record: events_pb2.ModelVersion) -> LoadedReference:
        """The reference of the version ``record`` announces.

        Raises:
            ReferenceUnavailable: the artifact does not verify, or has no (valid)
                ``reference.json``.
        """
        try:
            artifact = load_artifact(
                self._store.resolve(record.artifact_uri),
                expected_sha256=record.sha256,
                public_key=self._public_key,
                signature=record.signature or None,
            )
        except ArtifactRejected as exc:
            raise ReferenceUnavailable(version=record.version, detail=str(exc)) from exc
        expected = artifact.metadata.files.get(REFERENCE_FILE)
        if expected is None:
            raise ReferenceUnavailable(version=record.version, detail="artifact has no reference")
        try:
            data = (artifact.directory / REFERENCE_FILE).read_bytes()
        except OSError as exc:
            raise ReferenceUnavailable(version=record.version, detail=str(exc)) from exc
        if sha256_hex(data) != expected:
            raise ReferenceUnavailable(version=record.version, detail="sha256 mismatch")
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise ReferenceUnavailable(version=record.version, detail=str(exc)) from exc
        return LoadedReference(
            version=record.version,
            reference=parse_reference(doc, version=record.version),
            metadata=artifact.metadata,
        )
