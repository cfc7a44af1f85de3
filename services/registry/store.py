"""Where artifacts live: a content-addressed directory tree, addressed by URI.

``LocalArtifactStore`` keeps each artifact in ``<root>/<digest>/`` and names it
``file://<root>/<digest>``; the default root is ``<RISKSTREAM_HOME>/models``, the
local stack's state directory. Other schemes (``s3://`` later) are rejected with
``unsupported_uri`` until a store for them exists.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from services.registry.artifact import METADATA_FILE, sha256_hex, write_artifact
from services.registry.errors import ArtifactRejected, RejectReason
from services.registry.metadata import ModelMetadata
from services.stack.config import load_stack_config


def default_model_root(env: Mapping[str, str] | None = None) -> Path:
    """``<state dir>/models``, the state dir resolved as ``riskstream up`` does."""
    return load_stack_config(env).state_dir / "models"


class LocalArtifactStore:
    """Artifacts under ``root``, one directory per digest, never overwritten."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (Path(root) if root is not None else default_model_root()).resolve()

    def put(self, source_dir: Path) -> str:
        """Copy the artifact in ``source_dir`` into the store.

        Idempotent: putting the same artifact twice returns the same URI.

        Returns:
            ``file://<root>/<digest>``.

        Raises:
            ArtifactRejected: ``missing_file`` when ``source_dir`` has no metadata.
        """
        source_dir = Path(source_dir)
        try:
            digest = sha256_hex((source_dir / METADATA_FILE).read_bytes())
        except OSError as exc:
            raise ArtifactRejected(
                reason=RejectReason.MISSING_FILE, detail=f"{source_dir}: {exc}"
            ) from exc
        target = self.root / digest
        if not target.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            # Copy beside the target, then rename: readers never see half an artifact.
            staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=self.root))
            try:
                staging.chmod(0o755)  # mkdtemp's 0700 would hide it from a scorer's user
                for item in sorted(source_dir.iterdir()):
                    if item.is_file():
                        shutil.copyfile(item, staging / item.name)
                os.rename(staging, target)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                if not target.exists():
                    raise
        return target.as_uri()

    def add(
        self,
        *,
        onnx_bytes: bytes,
        xgb_json_bytes: bytes,
        metadata: ModelMetadata,
        extra_files: Mapping[str, bytes] | None = None,
    ) -> tuple[str, str]:
        """Write an artifact (:func:`write_artifact`) straight into the store.

        Returns:
            ``(uri, digest)``.
        """
        with tempfile.TemporaryDirectory(prefix="riskstream-artifact-") as tmp:
            digest = write_artifact(
                Path(tmp) / "artifact",
                onnx_bytes=onnx_bytes,
                xgb_json_bytes=xgb_json_bytes,
                metadata=metadata,
                extra_files=extra_files,
            )
            return self.put(Path(tmp) / "artifact"), digest

    def resolve(self, uri: str) -> Path:
        """The local directory of ``uri``.

        Raises:
            ArtifactRejected: ``unsupported_uri`` for anything but a local ``file://``
                URI.
        """
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise ArtifactRejected(
                reason=RejectReason.UNSUPPORTED_URI,
                detail=f"{uri!r}: only local file:// URIs are supported",
            )
        return Path(unquote(parsed.path))
