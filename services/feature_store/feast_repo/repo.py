"""Feast objects of riskstream, derived from ``services.feature_store.definitions``.

Feature names, join keys, view names and the TTL come from the definitions and the
Redis layout module, never listed here. :func:`feast_objects` builds them for any
offline root (``make_store`` and tests use it); the module-level names exist for the
``feast`` CLI (``feast -c services/feature_store/feast_repo apply``), which collects
them from this module, with the offline root of :class:`FeatureStoreConfig` (the one
the offline writer writes to: ``RISKSTREAM_FEATURES_OFFLINE_ROOT``, by default
``.state/offline``).

Offline layout (the silver feature log, Hive-partitioned Parquet; see
``docs/FEATURE_LAYOUT.md``)::

    <offline_root>/silver/features/entity_type=<card|terminal>/date=YYYY-MM-DD/part-*.parquet
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float64, String

from services.feature_store.config import FeatureStoreConfig
from services.feature_store.definitions import (
    ENTITY_TYPES,
    FEATURE_SET_VERSION,
    FEATURES_BY_ENTITY,
    JOIN_KEYS,
)
from services.feature_store.redis_layout import FEATURE_VIEWS, ONLINE_TTL_S

#: Event time of a feature row: the transaction at which the vector was computed.
TIMESTAMP_FIELD = "event_time"
#: When the row was computed; Feast keeps the latest of rows with equal event times.
CREATED_FIELD = "computed_at"


def feature_log_dir(offline_root: Path | str, entity_type: str) -> Path:
    """Directory of one entity type's feature log (its ``date=`` partitions below it)."""
    return Path(offline_root) / "silver" / "features" / f"entity_type={entity_type}"


def feast_objects(offline_root: Path | str) -> list[Entity | FeatureView]:
    """The entities and feature views (card, terminal), sources under ``offline_root``."""
    objects: list[Entity | FeatureView] = []
    for entity_type in ENTITY_TYPES:
        join_key = JOIN_KEYS[entity_type]
        entity = Entity(
            name=entity_type,
            join_keys=[join_key],
            value_type=ValueType.STRING,
            description=f"{entity_type} id as on the transactions topic",
        )
        source = FileSource(
            name=f"{FEATURE_VIEWS[entity_type]}_log",
            path=str(feature_log_dir(offline_root, entity_type)),
            file_format=ParquetFormat(),
            timestamp_field=TIMESTAMP_FIELD,
            created_timestamp_column=CREATED_FIELD,
        )
        view = FeatureView(
            name=FEATURE_VIEWS[entity_type],
            entities=[entity],
            ttl=timedelta(seconds=ONLINE_TTL_S),
            schema=[Field(name=join_key, dtype=String)]
            + [Field(name=f, dtype=Float64) for f in FEATURES_BY_ENTITY[entity_type]],
            source=source,
            online=True,
            tags={"feature_set_version": FEATURE_SET_VERSION},
        )
        objects += [entity, view]
    return objects


# For the feast CLI only (it collects module-level objects).
card, card_features, terminal, terminal_features = feast_objects(
    FeatureStoreConfig.from_env().offline_root
)
