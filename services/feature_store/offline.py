"""ParquetOfflineWriter: the offline store, Parquet partitioned by event date.

Layout under the offline root (read by Feast's file offline store, the trainer and
backfills; see docs/FEATURE_LAYOUT.md)::

    bronze/transactions/date=YYYY-MM-DD/part-*.parquet      raw transactions
    bronze/labels/date=YYYY-MM-DD/part-*.parquet            labels, by the transaction's date
    silver/features/entity_type=<card|terminal>/date=YYYY-MM-DD/part-*.parquet   feature log

Files are written whole under a temporary name and renamed, so a reader never sees
half a file. Delivery from Kafka is at least once: a crash between a file's rename
and the offset commit writes those records again, so readers deduplicate on
``transaction_id`` (bronze) or (entity, ``transaction_id``) (silver).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskstream.v1 import events_pb2
from services.feature_store.definitions import FEATURES_BY_ENTITY, JOIN_KEYS

_TS = pa.timestamp("us", tz="UTC")

TRANSACTION_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("card_id", pa.string()),
        ("terminal_id", pa.string()),
        ("merchant_id", pa.string()),
        ("amount", pa.float64()),
        ("currency", pa.string()),
        ("merchant_category", pa.string()),
        ("channel", pa.string()),
        ("country", pa.string()),
        ("event_time", _TS),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("card_id", pa.string()),
        ("terminal_id", pa.string()),
        ("is_fraud", pa.bool_()),
        ("event_time", _TS),
        ("label_time", _TS),
        ("source", pa.string()),
        ("fraud_scenario", pa.string()),
    ]
)


def feature_schema(entity_type: str) -> pa.Schema:
    """Columns of one entity type's feature log: join key, provenance, times, features."""
    return pa.schema(
        [
            (JOIN_KEYS[entity_type], pa.string()),
            ("transaction_id", pa.string()),
            ("feature_set_version", pa.string()),
            ("event_time", _TS),
            ("computed_at", _TS),
            *[(name, pa.float64()) for name in FEATURES_BY_ENTITY[entity_type]],
        ]
    )


def _micros(ts: object) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000  # type: ignore[attr-defined]


def _date(ts: object) -> str:
    return _day_name(ts.seconds // 86_400)  # type: ignore[attr-defined]


@lru_cache(maxsize=1024)
def _day_name(day: int) -> str:
    # strftime per record cost more than the rest of a record's conversion
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


class ParquetOfflineWriter:
    """Append batches of events to the offline store.

    Args:
        root: the offline root directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files_written = 0

    def _write(self, directory: Path, table: pa.Table) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = directory / f".{name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        final = directory / name
        tmp.rename(final)
        self.files_written += 1
        return final

    def write_transactions(self, transactions: Sequence[events_pb2.Transaction]) -> list[Path]:
        """Bronze: raw transactions, one file per event date."""
        by_date: dict[str, list[events_pb2.Transaction]] = defaultdict(list)
        for tx in transactions:
            by_date[_date(tx.event_time)].append(tx)
        paths = []
        for date, txs in sorted(by_date.items()):
            table = pa.table(
                {
                    "transaction_id": [t.transaction_id for t in txs],
                    "card_id": [t.card_id for t in txs],
                    "terminal_id": [t.terminal_id for t in txs],
                    "merchant_id": [t.merchant_id for t in txs],
                    "amount": [t.amount for t in txs],
                    "currency": [t.currency for t in txs],
                    "merchant_category": [t.merchant_category for t in txs],
                    "channel": [events_pb2.Channel.Name(t.channel) for t in txs],
                    "country": [t.country for t in txs],
                    "event_time": pa.array([_micros(t.event_time) for t in txs], _TS),
                },
                schema=TRANSACTION_SCHEMA,
            )
            paths.append(self._write(self.root / "bronze" / "transactions" / f"date={date}", table))
        return paths

    def write_labels(self, labels: Sequence[events_pb2.Label]) -> list[Path]:
        """Bronze: labels, partitioned by the labelled transaction's date."""
        by_date: dict[str, list[events_pb2.Label]] = defaultdict(list)
        for label in labels:
            by_date[_date(label.event_time)].append(label)
        paths = []
        for date, rows in sorted(by_date.items()):
            table = pa.table(
                {
                    "transaction_id": [r.transaction_id for r in rows],
                    "card_id": [r.card_id for r in rows],
                    "terminal_id": [r.terminal_id for r in rows],
                    "is_fraud": [r.is_fraud for r in rows],
                    "event_time": pa.array([_micros(r.event_time) for r in rows], _TS),
                    "label_time": pa.array([_micros(r.label_time) for r in rows], _TS),
                    "source": [events_pb2.LabelSource.Name(r.source) for r in rows],
                    "fraud_scenario": [r.fraud_scenario for r in rows],
                },
                schema=LABEL_SCHEMA,
            )
            paths.append(self._write(self.root / "bronze" / "labels" / f"date={date}", table))
        return paths

    def write_feature_rows(self, rows: Iterable[events_pb2.FeatureRow]) -> list[Path]:
        """Silver: the feature log, one file per (entity type, event date).

        A feature missing from a row is written as null, never as 0.
        """
        groups: dict[tuple[str, str], list[events_pb2.FeatureRow]] = defaultdict(list)
        for row in rows:
            groups[(row.entity_type, _date(row.event_time))].append(row)
        paths = []
        for (entity_type, date), group in sorted(groups.items()):
            schema = feature_schema(entity_type)
            columns: dict[str, object] = {
                JOIN_KEYS[entity_type]: [r.entity_id for r in group],
                "transaction_id": [r.transaction_id for r in group],
                "feature_set_version": [r.feature_set_version for r in group],
                "event_time": pa.array([_micros(r.event_time) for r in group], _TS),
                "computed_at": pa.array([_micros(r.computed_at) for r in group], _TS),
            }
            for name in FEATURES_BY_ENTITY[entity_type]:
                columns[name] = pa.array([r.values.get(name) for r in group], pa.float64())
            table = pa.table(columns, schema=schema)
            paths.append(self._write(self._feature_dir(entity_type, date), table))
        return paths

    def write_feature_table(self, entity_type: str, table: pa.Table) -> list[Path]:
        """Silver from columns (a backfill's bulk path): one file per event date.

        Args:
            entity_type: ``card`` or ``terminal``.
            table: rows with exactly :func:`feature_schema` (``entity_type``)'s columns.

        Raises:
            ValueError: the table's schema is not the feature log's.
        """
        schema = feature_schema(entity_type)
        if not table.schema.equals(schema):
            raise ValueError(f"{entity_type} feature table: schema {table.schema} is not {schema}")
        dates = pc.strftime(table["event_time"], format="%Y-%m-%d")
        paths = []
        for date in sorted(pc.unique(dates).to_pylist()):
            part = table.filter(pc.equal(dates, date))
            paths.append(self._write(self._feature_dir(entity_type, date), part))
        return paths

    def _feature_dir(self, entity_type: str, date: str) -> Path:
        return self.root / "silver" / "features" / f"entity_type={entity_type}" / f"date={date}"
