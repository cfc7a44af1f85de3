"""Fixtures of the scorer tests: a private artifact store and models in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.registry.store import LocalArtifactStore
from services.scoring.model_loader import LoaderSettings, ModelLoader
from services.scoring.testing import TestArtifact, build_test_artifact


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    """An empty artifact store of this test."""
    return LocalArtifactStore(tmp_path / "models")


@pytest.fixture
def loader(store: LocalArtifactStore) -> ModelLoader:
    """Loads from :func:`store` with small batches."""
    return ModelLoader(store, LoaderSettings(max_batch_size=16))


@pytest.fixture
def v1(store: LocalArtifactStore) -> TestArtifact:
    """A model version ``v1``."""
    return build_test_artifact(store, version="v1", seed=1)


@pytest.fixture
def v2(store: LocalArtifactStore) -> TestArtifact:
    """Another version, ``v2`` (different data, different scores)."""
    return build_test_artifact(store, version="v2", seed=2, trees=30)
