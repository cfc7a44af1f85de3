"""Settings of the registry commands (``RISKSTREAM_REGISTRY_*``), read once per command."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.common.errors import ConfigError
from services.registry.publish import MODEL_UPDATES_TOPIC

_PREFIX = "RISKSTREAM_REGISTRY_"
_FIELDS = {"KEEP_VERSIONS", "TOPIC", "MODEL_NAME", "READ_TIMEOUT_S"}


@dataclass(frozen=True)
class RegistryConfig:
    """Where the registry's log is and how many old versions it keeps.

    Attributes:
        keep_versions: versions of a model kept out of the archive besides the
            champion, last good, canary and shadows (count, >= 0).
        topic: the registry's event log (``model-updates``; tests use their own).
        model_name: the model the commands act on unless ``--model`` says otherwise.
        read_timeout_s: how long reading the log to its end may take, seconds.
    """

    keep_versions: int = 5
    topic: str = MODEL_UPDATES_TOPIC
    model_name: str = "fraud-xgb"
    read_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.keep_versions < 0:
            raise ConfigError(f"{_PREFIX}KEEP_VERSIONS must be >= 0, got {self.keep_versions}")
        if self.read_timeout_s <= 0:
            raise ConfigError(f"{_PREFIX}READ_TIMEOUT_S must be positive")
        if not self.topic or not self.model_name:
            raise ConfigError(f"{_PREFIX}TOPIC and {_PREFIX}MODEL_NAME must not be empty")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RegistryConfig:
        """Read ``RISKSTREAM_REGISTRY_*``; unknown keys with that prefix are errors.

        Raises:
            ConfigError: an unknown key or a value out of range.
        """
        env = os.environ if env is None else env
        unknown = {k[len(_PREFIX) :] for k in env if k.startswith(_PREFIX)} - _FIELDS
        if unknown:
            raise ConfigError(f"unknown settings: {sorted(_PREFIX + k for k in unknown)}")
        try:
            keep = int(env.get(_PREFIX + "KEEP_VERSIONS", cls.keep_versions))
            timeout = float(env.get(_PREFIX + "READ_TIMEOUT_S", cls.read_timeout_s))
        except ValueError as exc:
            raise ConfigError(f"{_PREFIX}*: {exc}") from exc
        return cls(
            keep_versions=keep,
            topic=env.get(_PREFIX + "TOPIC", cls.topic),
            model_name=env.get(_PREFIX + "MODEL_NAME", cls.model_name),
            read_timeout_s=timeout,
        )
