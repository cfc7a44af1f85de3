"""The Feast ``FeatureStore`` of riskstream, configured in code.

The only service module that imports Feast (13-23 s cold): the trainer's offline
retrieval and the tests use it; the scorer reads Redis through
:mod:`services.feature_store.online` and never imports this module.
``feast_repo/feature_store.yaml`` is the same configuration for the ``feast`` CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from feast import FeatureStore, RepoConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.repo_config import RegistryConfig

from services.feature_store.definitions import ENTITY_TYPES
from services.feature_store.feast_repo.repo import feast_objects, feature_log_dir
from services.feature_store.redis_layout import ONLINE_TTL_S, PROJECT

_REPO_DIR = Path(__file__).resolve().parent / "feast_repo"
#: Feast's offline store type. DuckDB joins point in time in SQL (a window per
#: entity); the ``file`` store's Dask join pairs every entity row with its entity's
#: whole history first, which made a month's retrieval take minutes and gigabytes.
OFFLINE_STORE = "duckdb"


def feast_connection_string(redis_url: str) -> str:
    """Feast's ``host:port[,db=N][,password=...]`` from ``redis://[:pw@]host:port[/db]``.

    A bare ``host:port`` is returned unchanged.

    Examples:
        >>> feast_connection_string("redis://127.0.0.1:6379/2")
        '127.0.0.1:6379,db=2'
        >>> feast_connection_string("localhost:16380")
        'localhost:16380'
    """
    if "://" not in redis_url:
        return redis_url
    url = urlsplit(redis_url)
    parts = [f"{url.hostname or '127.0.0.1'}:{url.port or 6379}"]
    db = url.path.strip("/")
    if db and db != "0":
        parts.append(f"db={int(db)}")
    if url.password:
        parts.append(f"password={unquote(url.password)}")
    if url.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def make_config(
    redis_url: str,
    registry_path: Path | str,
    *,
    project: str = PROJECT,
    key_ttl_s: int | None = ONLINE_TTL_S,
    offline_store: str = OFFLINE_STORE,
) -> RepoConfig:
    """The ``RepoConfig`` of ``feature_store.yaml``, pointed at the given Redis and registry."""
    return RepoConfig(
        project=project,
        provider="local",
        registry=RegistryConfig(
            registry_type="file",
            path=str(registry_path),
            cache_ttl_seconds=60,
            enable_online_feature_view_versioning=False,
        ),
        online_store=RedisOnlineStoreConfig(
            connection_string=feast_connection_string(redis_url), key_ttl_seconds=key_ttl_s
        ),
        offline_store={"type": offline_store},
        entity_key_serialization_version=3,
        repo_path=_REPO_DIR,
    )


def make_store(
    redis_url: str,
    offline_root: Path | str,
    registry_path: Path | str,
    *,
    project: str = PROJECT,
    key_ttl_s: int | None = ONLINE_TTL_S,
    offline_store: str = OFFLINE_STORE,
) -> FeatureStore:
    """A ``FeatureStore`` with riskstream's entities and feature views applied.

    Args:
        redis_url: ``redis://host:port[/db]`` or Feast's ``host:port[,...]``.
        offline_root: root of the offline store (the silver feature log lies below).
        registry_path: the registry file; created (with its directory) if missing.
            The feature log's directories are created too.
        project: Feast project; the Redis keys end with it.
        key_ttl_s: EXPIRE Feast sets on keys it writes (must match the writer's).
        offline_store: Feast's offline store type (``duckdb``; ``file`` for
            comparison).
    """
    Path(registry_path).parent.mkdir(parents=True, exist_ok=True)
    for entity_type in ENTITY_TYPES:  # Feast warns about, and cannot read, missing paths
        feature_log_dir(offline_root, entity_type).mkdir(parents=True, exist_ok=True)
    store = FeatureStore(
        config=make_config(
            redis_url,
            registry_path,
            project=project,
            key_ttl_s=key_ttl_s,
            offline_store=offline_store,
        )
    )
    objects: list[Any] = feast_objects(offline_root)
    store.apply(objects)
    return store
