"""Settings of the local stack, read once from ``infra/local/stack.toml``.

Environment variables override the file so tests and a second stack on the same
machine can move ports and the state directory without editing it:

==============================  ==========================================
``RISKSTREAM_STACK_CONFIG``     path of the TOML file (default: the repo's)
``RISKSTREAM_HOME``             state directory: data, logs, pid files
``RISKSTREAM_JAR_CACHE``        where fetched jars are cached
``RISKSTREAM_KAFKA_PORT``       broker port
``RISKSTREAM_KAFKA_CONTROLLER_PORT``  KRaft controller port
``RISKSTREAM_KAFKA_HEAP_MB``    broker heap cap, MiB
``RISKSTREAM_REDIS_PORT``       redis-server port
``RISKSTREAM_PROMETHEUS_PORT``  Prometheus port
==============================  ==========================================
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.errors import ConfigError
from services.common.kafka import KafkaClientSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_PATH = REPO_ROOT / "infra" / "local" / "stack.toml"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic as the stack creates it.

    Attributes:
        name: topic name.
        partitions: partition count.
        retention_ms: retention in milliseconds; -1 keeps records forever.
        cleanup_policy: "delete" or "compact".
    """

    name: str
    partitions: int
    retention_ms: int
    cleanup_policy: str = "delete"

    def kafka_config(self) -> dict[str, str]:
        """Topic-level configuration in Kafka's own key names."""
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


@dataclass(frozen=True)
class KafkaSettings:
    """The single local broker (combined broker + KRaft controller)."""

    version: str
    port: int
    controller_port: int
    heap_mb: int
    start_timeout_s: float

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class RedisSettings:
    """The local redis-server."""

    port: int
    maxmemory_mb: int
    start_timeout_s: float

    @property
    def url(self) -> str:
        """``redis://`` URL of database 0: the default online store of every service."""
        return f"redis://{HOST}:{self.port}/0"


@dataclass(frozen=True)
class PrometheusSettings:
    """The local Prometheus server."""

    port: int
    retention: str
    scrape_interval_s: int
    start_timeout_s: float


@dataclass(frozen=True)
class StackConfig:
    """Everything ``riskstream up`` needs; built by :func:`load_stack_config`."""

    state_dir: Path
    jar_cache: Path
    kafka: KafkaSettings
    redis: RedisSettings
    prometheus: PrometheusSettings
    metrics_ports: Mapping[str, int]
    topics: tuple[TopicSpec, ...] = field(default_factory=tuple)

    def topic(self, name: str) -> TopicSpec:
        """The spec of topic ``name``.

        Raises:
            ConfigError: no such topic is configured.
        """
        for spec in self.topics:
            if spec.name == name:
                return spec
        raise ConfigError(f"topic {name!r} is not in the stack configuration")


def _section(data: Mapping[str, Any], name: str, keys: set[str]) -> dict[str, Any]:
    section = data.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"[{name}] section is missing from the stack configuration")
    unknown = set(section) - keys
    if unknown:
        raise ConfigError(f"[{name}] has unknown keys: {sorted(unknown)}")
    missing = keys - set(section)
    if missing:
        raise ConfigError(f"[{name}] is missing keys: {sorted(missing)}")
    return dict(section)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def _topics(raw: Mapping[str, Any]) -> tuple[TopicSpec, ...]:
    allowed = {"partitions", "retention_ms", "cleanup_policy", "dlq", "dlq_retention_ms"}
    specs: list[TopicSpec] = []
    for name, item in raw.items():
        unknown = set(item) - allowed
        if unknown:
            raise ConfigError(f"[topics.{name}] has unknown keys: {sorted(unknown)}")
        policy = item.get("cleanup_policy", "delete")
        if policy not in ("delete", "compact"):
            raise ConfigError(f"[topics.{name}] cleanup_policy must be delete or compact")
        partitions = int(item["partitions"])
        specs.append(TopicSpec(name, partitions, int(item["retention_ms"]), policy))
        if item.get("dlq", False):
            retention = int(item.get("dlq_retention_ms", item["retention_ms"]))
            specs.append(TopicSpec(f"{name}.dlq", partitions, retention))
    return tuple(specs)


def load_stack_config(env: Mapping[str, str] | None = None) -> StackConfig:
    """Read the stack configuration file and apply environment overrides.

    Args:
        env: the environment to read overrides from (``os.environ`` by default).

    Returns:
        The frozen configuration.

    Raises:
        ConfigError: the file is missing, malformed or has unknown keys.
    """
    env = os.environ if env is None else env
    path = Path(env.get("RISKSTREAM_STACK_CONFIG", DEFAULT_CONFIG_PATH))
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read stack configuration {path}: {exc}") from exc
    unknown = set(data) - {"kafka", "redis", "prometheus", "metrics_ports", "topics"}
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}")

    k = _section(
        data, "kafka", {"version", "port", "controller_port", "heap_mb", "start_timeout_s"}
    )
    r = _section(data, "redis", {"port", "maxmemory_mb", "start_timeout_s"})
    p = _section(data, "prometheus", {"port", "retention", "scrape_interval_s", "start_timeout_s"})
    cache_home = Path(env.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return StackConfig(
        state_dir=Path(env.get("RISKSTREAM_HOME", REPO_ROOT / ".state")).resolve(),
        jar_cache=Path(env.get("RISKSTREAM_JAR_CACHE", cache_home / "riskstream" / "jars")),
        kafka=KafkaSettings(
            version=str(k["version"]),
            port=_env_int(env, "RISKSTREAM_KAFKA_PORT", int(k["port"])),
            controller_port=_env_int(
                env, "RISKSTREAM_KAFKA_CONTROLLER_PORT", int(k["controller_port"])
            ),
            heap_mb=_env_int(env, "RISKSTREAM_KAFKA_HEAP_MB", int(k["heap_mb"])),
            start_timeout_s=float(k["start_timeout_s"]),
        ),
        redis=RedisSettings(
            port=_env_int(env, "RISKSTREAM_REDIS_PORT", int(r["port"])),
            maxmemory_mb=int(r["maxmemory_mb"]),
            start_timeout_s=float(r["start_timeout_s"]),
        ),
        prometheus=PrometheusSettings(
            port=_env_int(env, "RISKSTREAM_PROMETHEUS_PORT", int(p["port"])),
            retention=str(p["retention"]),
            scrape_interval_s=int(p["scrape_interval_s"]),
            start_timeout_s=float(p["start_timeout_s"]),
        ),
        metrics_ports={str(k2): int(v) for k2, v in data.get("metrics_ports", {}).items()},
        topics=_topics(data.get("topics", {})),
    )


def local_kafka_settings(
    client_id: str, env: Mapping[str, str] | None = None
) -> KafkaClientSettings:
    """Kafka client settings from ``RISKSTREAM_KAFKA_*``, defaulting to this stack's broker.

    With ``RISKSTREAM_KAFKA_BOOTSTRAP`` set, that broker (and its security settings)
    wins; otherwise the broker of the local stack configuration.
    """
    env = os.environ if env is None else env
    settings = KafkaClientSettings.from_env(env, client_id=client_id)
    if "RISKSTREAM_KAFKA_BOOTSTRAP" in env:
        return settings
    return dataclasses.replace(
        settings, bootstrap_servers=load_stack_config(env).kafka.bootstrap_servers
    )
