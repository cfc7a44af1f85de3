"""LocalArtifactStore: content-addressed put, idempotent, resolve and its URI schemes."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.registry import ArtifactRejected, load_artifact
from services.registry.store import LocalArtifactStore, default_model_root

Artifact = tuple[Path, str]


def test_put_then_resolve_and_load(tmp_path: Path, artifact: Artifact) -> None:
    source, digest = artifact
    store = LocalArtifactStore(tmp_path / "store")
    uri = store.put(source)
    assert uri == (tmp_path / "store" / digest).resolve().as_uri()
    assert uri.startswith("file:///")
    directory = store.resolve(uri)
    assert directory == (tmp_path / "store" / digest).resolve()
    assert sorted(p.name for p in directory.iterdir()) == [
        "metadata.json",
        "model.onnx",
        "model.xgb.json",
    ]
    assert load_artifact(directory, expected_sha256=digest).digest == digest
    assert store.put(source) == uri  # idempotent
    assert [p.name for p in (tmp_path / "store").iterdir()] == [digest]  # no staging left


def test_other_schemes_are_unsupported(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    for uri in ("s3://bucket/models/abc", "https://example.com/a", "file://otherhost/x", "/a/b"):
        with pytest.raises(ArtifactRejected) as caught:
            store.resolve(uri)
        assert caught.value.reason == "unsupported_uri"


def test_resolve_decodes_percent_escapes(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    assert store.resolve((tmp_path / "with space").as_uri()) == tmp_path / "with space"


def test_put_needs_metadata(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactRejected) as caught:
        LocalArtifactStore(tmp_path / "store").put(tmp_path / "empty")
    assert caught.value.reason == "missing_file"


def test_default_root_is_under_riskstream_home(tmp_path: Path) -> None:
    assert default_model_root({"RISKSTREAM_HOME": str(tmp_path)}) == tmp_path.resolve() / "models"
