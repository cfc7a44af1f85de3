"""Settings of the feature-store processes (``RISKSTREAM_FEATURES_*``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import ConfigError
from services.stack.config import REPO_ROOT

_PREFIX = "RISKSTREAM_FEATURES_"
_FIELDS = {"OFFLINE_ROOT", "GROUP", "BATCH_SIZE"}


@dataclass(frozen=True)
class FeatureStoreConfig:
    """Where the offline store lives and how the offline writer consumes.

    Attributes:
        offline_root: root directory of the Parquet offline store.
        group_id: consumer group of the offline writer.
        batch_size: records per poll; one Parquet file per (topic, date) per batch.
    """

    offline_root: Path
    group_id: str = "riskstream-offline-writer"
    batch_size: int = 20_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FeatureStoreConfig:
        """Read ``RISKSTREAM_FEATURES_*``; unknown keys with that prefix are errors.

        The offline root defaults to ``$RISKSTREAM_HOME/offline`` (``.state/offline``).
        """
        env = os.environ if env is None else env
        unknown = {k[len(_PREFIX) :] for k in env if k.startswith(_PREFIX)} - _FIELDS
        if unknown:
            raise ConfigError(f"unknown settings: {sorted(_PREFIX + k for k in unknown)}")
        home = Path(env.get("RISKSTREAM_HOME", REPO_ROOT / ".state"))
        try:
            batch = int(env.get(_PREFIX + "BATCH_SIZE", "20000"))
        except ValueError as exc:
            raise ConfigError(f"{_PREFIX}BATCH_SIZE must be an integer") from exc
        if batch <= 0:
            raise ConfigError(f"{_PREFIX}BATCH_SIZE must be positive")
        return cls(
            offline_root=Path(env.get(_PREFIX + "OFFLINE_ROOT", home / "offline")).resolve(),
            group_id=env.get(_PREFIX + "GROUP", "riskstream-offline-writer"),
            batch_size=batch,
        )
