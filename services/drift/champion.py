"""The champion's artifact, verified, and its reference distributions.

Adapter (the local artifact store). The ``model-updates`` record names the
artifact; :func:`services.registry.artifact.load_artifact` verifies it exactly as
the scorer does (sha256 of the metadata and of every listed file, the signature
when a key is configured), and ``reference.json`` must be one of the files the
metadata pins, so the monitor compares live traffic with the distributions the
trained model really saw.
"""

from __future__ import annotations

import json
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from riskstream.v1 import events_pb2
from services.drift.errors import ReferenceUnavailable
from services.drift.monitor import Champion
from services.drift.reference import parse_reference
from services.registry.artifact import REFERENCE_FILE, load_artifact, sha256_hex
from services.registry.errors import ArtifactRejected
from services.registry.store import LocalArtifactStore


def _epoch_ms(iso: str) -> int | None:
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


class ArtifactReferenceLoader:
    """Loads a champion's reference from the artifact store.

    Args:
        store: where artifact URIs resolve.
        public_key: when set, artifacts must carry a valid signature.
    """

    def __init__(
        self, store: LocalArtifactStore, *, public_key: Ed25519PublicKey | None = None
    ) -> None:
        self._store = store
        self._public_key = public_key

    def load(self, record: events_pb2.ModelVersion, *, canary_running: bool) -> Champion:
        """The monitored champion of ``record``.

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
        meta = artifact.metadata
        return Champion(
            version=record.version,
            reference=parse_reference(doc, version=record.version),
            created_ms=_epoch_ms(meta.created_at),
            train_end_ms=_epoch_ms(meta.train_window.end),
            canary_running=canary_running,
        )
