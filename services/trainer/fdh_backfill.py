"""Fill an offline store from a handbook-format dataset without Kafka or Flink.

The replay (:mod:`services.trainer.fdh_replay`) takes 25-90 minutes for the
handbook's evaluation window; this takes a few. Its features come from the
reference implementation
(:func:`services.feature_store.reference.reference_features`), which equals the
feature job's log on the handbook features (0 differences on the 737,289 rows of
the folds, docs/BENCHMARKS.md). Everything is written through the offline writer's
own :class:`~services.feature_store.offline.ParquetOfflineWriter`, so Feast and the
training-set builder read exactly the layout a replay leaves:

* bronze transactions and labels built by the replayer's own reader
  (:func:`services.producer.replay.read_fdh_csv`): the same ids, merchant, currency,
  and label time = event time + the label delay;
* silver: per transaction one card row and one terminal row, as the feature job
  emits them (entity id, ``transaction_id``, the transaction's ``event_time``, the
  entity's features, :data:`~services.feature_store.definitions.FEATURE_SET_VERSION`),
  handed to the writer as columns (a million ``FeatureRow`` messages with their
  value maps would cost more time than everything else together).

``computed_at``: the job stamps the wall clock when it computes a row, so of one
entity's rows at the same instant the one that arrived later carries the later
``computed_at`` (and is the one Feast picks). Here it is the backfill's start plus
the transaction's position in the input, in microseconds: the same order, and no
two rows equal.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from services.feature_store.definitions import FEATURE_SET_VERSION, FEATURES_BY_ENTITY, JOIN_KEYS
from services.feature_store.offline import ParquetOfflineWriter, feature_schema
from services.feature_store.reference import load_fdh, reference_features
from services.producer.events import LabelledTransaction, RejectedRow
from services.producer.replay import read_fdh_csv
from services.trainer.errors import TrainingFailed

__all__ = ["BackfillReport", "backfill_offline_store"]

_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class BackfillReport:
    """What a backfill put into the offline store.

    Attributes:
        transactions: transactions written (each with its label).
        feature_rows: feature rows written (two per transaction).
        files: Parquet files written.
        seconds: phase → seconds (``features``, ``write``, ``total``).
    """

    transactions: int
    feature_rows: int
    files: int
    seconds: Mapping[str, float]


def backfill_offline_store(
    dataset: Path,
    offline_root: Path,
    *,
    start: datetime,
    end: datetime,
    label_delay: timedelta = timedelta(days=7),
    progress: Callable[[str], None] | None = None,
) -> BackfillReport:
    """Writes ``[start, end)`` of ``dataset`` with its features into ``offline_root``.

    Args:
        dataset: the CSV (handbook format, time-ordered, gzip or plain).
        offline_root: the offline store's root (created if missing).
        start: first event time (aware).
        end: last event time, exclusive (aware).
        label_delay: from a transaction to its label (also the delayed terminal
            windows' delay, as in the feature job).
        progress: receives one-line progress messages.

    Returns:
        The counts and timings.

    Raises:
        TrainingFailed: the replayer rejects a row of the dataset, or its reader and
            the reference loader disagree on the rows (the file is not time-ordered).
    """
    say = progress or (lambda _: None)
    began = time.monotonic()
    transactions, labels = load_fdh(dataset, start, end, sorted_input=True)
    features = reference_features(
        transactions, labels, label_delay_s=int(label_delay.total_seconds())
    )
    seconds = {"features": time.monotonic() - began}
    say(f"reference features of {len(features):,} transactions in {seconds['features']:.0f} s")

    mark = time.monotonic()
    writer = ParquetOfflineWriter(offline_root)
    stamp_us = time.time_ns() // 1000
    tables = _feature_tables(features, stamp_us)
    items = read_fdh_csv(dataset, start=start, end=end, label_delay=label_delay, sorted_input=True)
    position = 0
    for day, group in itertools.groupby(items, key=_event_day):
        batch = _transactions(group)
        ids = features["transaction_id"].iloc[position : position + len(batch)]
        if ids.tolist() != [b.transaction.transaction_id for b in batch]:
            raise TrainingFailed(
                f"{dataset}: the replayer's and the reference loader's rows differ on "
                f"{day} (is the file in time order?)",
                stage="data",
            )
        writer.write_transactions([b.transaction for b in batch])
        writer.write_labels([b.label() for b in batch])
        for entity_type, table in tables.items():
            writer.write_feature_table(entity_type, table.slice(position, len(batch)))
        position += len(batch)
    if position != len(features):
        raise TrainingFailed(
            f"{dataset}: the replayer read {position:,} rows, the reference loader "
            f"{len(features):,}",
            stage="data",
        )
    seconds["write"] = time.monotonic() - mark
    seconds["total"] = time.monotonic() - began
    say(f"wrote {position:,} transactions, labels and feature rows in {seconds['write']:.0f} s")
    return BackfillReport(position, 2 * position, writer.files_written, seconds)


def _event_day(item: LabelledTransaction | RejectedRow) -> int:
    if isinstance(item, RejectedRow):
        raise TrainingFailed(f"the replayer rejects a row: {item}", stage="data")
    return int(item.transaction.event_time.seconds) // 86_400


def _transactions(group: Iterator[LabelledTransaction | RejectedRow]) -> list[LabelledTransaction]:
    return [item for item in group if isinstance(item, LabelledTransaction)]


def _feature_tables(features: pd.DataFrame, stamp_us: int) -> dict[str, pa.Table]:
    """Per entity type, the feature log of every transaction (input order), as the
    feature job emits it: entity id, transaction id, version, times, the features."""
    n = len(features)
    event_us = pd.DatetimeIndex(features["event_time"]).as_unit("us").asi8
    computed_us = stamp_us + np.arange(n, dtype=np.int64)
    out = {}
    for entity_type, names in FEATURES_BY_ENTITY.items():
        key = JOIN_KEYS[entity_type]
        columns: dict[str, object] = {
            key: pa.array(features[key].to_numpy(), pa.string()),
            "transaction_id": pa.array(features["transaction_id"].to_numpy(), pa.string()),
            "feature_set_version": pa.array([FEATURE_SET_VERSION] * n, pa.string()),
            "event_time": pa.array(event_us, _TS),
            "computed_at": pa.array(computed_us, _TS),
        }
        for name in names:
            columns[name] = pa.array(features[name].to_numpy(dtype=np.float64), pa.float64())
        out[entity_type] = pa.table(columns, schema=feature_schema(entity_type))
    return out
