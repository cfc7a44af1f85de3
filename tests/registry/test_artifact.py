"""write_artifact / load_artifact: round trip, and the reason for every kind of tampering."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.registry import (
    ArtifactRejected,
    ModelMetadata,
    load_artifact,
    sha256_hex,
    sign_digest,
    write_artifact,
)

Artifact = tuple[Path, str]


def _reason(directory: Path, expected: str, **kwargs: object) -> str:
    with pytest.raises(ArtifactRejected) as caught:
        load_artifact(directory, expected_sha256=expected, **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def _rewrite_metadata(directory: Path, change) -> str:
    """Edit metadata.json in place (as an attacker would); returns its new digest."""
    path = directory / "metadata.json"
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_bytes(json.dumps(doc).encode())
    return sha256_hex(path.read_bytes())


def test_round_trip(
    artifact: Artifact, metadata: ModelMetadata, xgb_json: bytes, onnx_stand_in: bytes
) -> None:
    directory, digest = artifact
    loaded = load_artifact(directory, expected_sha256=digest)
    assert loaded.digest == digest == sha256_hex((directory / "metadata.json").read_bytes())
    assert loaded.onnx_bytes == onnx_stand_in and loaded.xgb_json_bytes == xgb_json
    assert loaded.metadata == dataclasses.replace(
        metadata,
        files={"model.onnx": sha256_hex(onnx_stand_in), "model.xgb.json": sha256_hex(xgb_json)},
    )
    assert load_artifact(directory, expected_sha256=digest.upper()).digest == digest


def test_writing_into_a_non_empty_directory_fails(
    artifact: Artifact, metadata: ModelMetadata
) -> None:
    with pytest.raises(FileExistsError):
        write_artifact(artifact[0], onnx_bytes=b"", xgb_json_bytes=b"", metadata=metadata)


def test_the_digest_pins_thresholds_and_feature_order(
    tmp_path: Path, metadata: ModelMetadata, xgb_json: bytes
) -> None:
    digests = {
        write_artifact(tmp_path / str(i), onnx_bytes=b"m", xgb_json_bytes=xgb_json, metadata=m)
        for i, m in enumerate(
            [
                metadata,
                metadata,
                dataclasses.replace(metadata, feature_names=metadata.feature_names[::-1]),
                dataclasses.replace(
                    metadata, thresholds=dataclasses.replace(metadata.thresholds, decline=0.8)
                ),
            ]
        )
    }
    assert len(digests) == 3  # identical inputs give identical digests


def test_wrong_expected_sha256(artifact: Artifact) -> None:
    assert _reason(artifact[0], "0" * 64) == "sha256_mismatch"


@pytest.mark.parametrize("name", ["model.onnx", "model.xgb.json"])
def test_a_tampered_model_file_is_rejected(artifact: Artifact, name: str) -> None:
    directory, digest = artifact
    path = directory / name
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(ArtifactRejected) as caught:
        load_artifact(directory, expected_sha256=digest)
    assert caught.value.reason == "sha256_mismatch"
    assert name in caught.value.detail


def test_tampered_thresholds_are_rejected(artifact: Artifact) -> None:
    directory, digest = artifact
    _rewrite_metadata(directory, lambda doc: doc["thresholds"].update(decline=0.99))
    assert _reason(directory, digest) == "sha256_mismatch"


def test_tampered_feature_order_is_rejected(artifact: Artifact) -> None:
    directory, digest = artifact
    new_digest = _rewrite_metadata(directory, lambda doc: doc["feature_names"].reverse())
    assert _reason(directory, digest) == "sha256_mismatch"
    # Even announced with its new digest, the order no longer matches the model's own.
    assert _reason(directory, new_digest) == "feature_order_mismatch"


def test_a_missing_file(artifact: Artifact) -> None:
    directory, digest = artifact
    (directory / "model.onnx").unlink()
    assert _reason(directory, digest) == "missing_file"
    assert _reason(directory.parent / "nowhere", digest) == "missing_file"


def test_a_corrupt_xgboost_model(tmp_path: Path, metadata: ModelMetadata) -> None:
    digest = write_artifact(
        tmp_path / "a", onnx_bytes=b"m", xgb_json_bytes=b"{not json", metadata=metadata
    )
    assert _reason(tmp_path / "a", digest) == "corrupt_model"


def test_bad_metadata(artifact: Artifact) -> None:
    directory, _ = artifact
    new_digest = _rewrite_metadata(directory, lambda doc: doc.pop("output_index"))
    assert _reason(directory, new_digest) == "bad_metadata"


def test_metadata_without_a_model_file_hash(artifact: Artifact) -> None:
    directory, _ = artifact
    new_digest = _rewrite_metadata(directory, lambda doc: doc["files"].pop("model.onnx"))
    assert _reason(directory, new_digest) == "bad_metadata"


def test_feature_set_mismatch(artifact: Artifact) -> None:
    directory, digest = artifact
    kwargs = {"expected_feature_set_version": "fs-ffffffffffff"}
    assert _reason(directory, digest, **kwargs) == "feature_set_mismatch"
    load_artifact(directory, expected_sha256=digest, expected_feature_set_version="fs-0123456789ab")


class TestSignature:
    key = Ed25519PrivateKey.generate()

    def test_a_valid_signature_loads(self, artifact: Artifact) -> None:
        directory, digest = artifact
        signature = sign_digest(self.key, digest)
        loaded = load_artifact(
            directory,
            expected_sha256=digest,
            public_key=self.key.public_key(),
            signature=signature,
        )
        assert loaded.digest == digest

    def test_a_signature_by_another_key(self, artifact: Artifact) -> None:
        directory, digest = artifact
        signature = sign_digest(Ed25519PrivateKey.generate(), digest)
        kwargs = {"public_key": self.key.public_key(), "signature": signature}
        assert _reason(directory, digest, **kwargs) == "bad_signature"

    @pytest.mark.parametrize("signature", [None, b""])
    def test_a_missing_signature_when_a_key_is_configured(
        self, artifact: Artifact, signature: bytes | None
    ) -> None:
        directory, digest = artifact
        kwargs = {"public_key": self.key.public_key(), "signature": signature}
        assert _reason(directory, digest, **kwargs) == "bad_signature"

    def test_a_republished_tampered_artifact_fails_the_signature(self, artifact: Artifact) -> None:
        directory, digest = artifact
        signature = sign_digest(self.key, digest)
        new_digest = _rewrite_metadata(directory, lambda doc: doc["thresholds"].update(review=0))
        kwargs = {"public_key": self.key.public_key(), "signature": signature}
        assert _reason(directory, new_digest, **kwargs) == "bad_signature"

    def test_without_a_key_the_signature_is_not_required(self, artifact: Artifact) -> None:
        directory, digest = artifact
        load_artifact(directory, expected_sha256=digest, signature=b"junk")
