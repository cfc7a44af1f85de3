"""The point-in-time-correct training set, through Feast's offline store.

Entity rows are the labelled transactions landed in the offline store (see
:mod:`services.feature_store.offline`): bronze labels joined to bronze transactions
on ``transaction_id``, each side deduplicated (delivery is at least once; of several
labels of one transaction the one with the latest ``label_time`` wins, a correction
overriding a first verdict). Card and terminal features come from
``FeatureStore.get_historical_features`` over the silver feature log: for a
transaction at time t, the entity's latest feature row with event time <= t, never
one from after it. Request features (amount, weekend, night) come from the
transaction itself, through the same kernel the scorer uses.

Three ways Feast's offline stores could lose or corrupt a row (seen with its file
store; the builder does not rely on the DuckDB store behaving better), each handled
here:

1. Its de-duplication keeps one row per (join keys seen so far, timestamp): two
   transactions of one card at the same second but at different terminals would
   collapse into one row when both views are asked for at once. So each view is
   asked for separately, with unique (entity, timestamp) rows, and the answers are
   joined back onto every labelled row.
2. It drops an entity row whose entity has feature rows, all of them after its
   timestamp or older than the view's TTL (the architecture's "10,000 in, 8,331
   out"), and its Dask join fails outright (``NotImplementedError`` on null created
   timestamps) on one whose entity has no feature row at all. So rows whose entity
   has no logged row at or before them are not sent to Feast, and those and any
   row Feast drops are *restored*: a labelled transaction whose entity has no
   feature row at or before it has, by the definitions, an empty history, so its
   features are those of the transaction alone in its windows, computed by the
   streaming kernel itself (:class:`~services.feature_store.aggregation.CardAggregator`;
   the scorer folds a never-seen card onto the same empty state). Restored rows are
   counted and logged at WARNING.
3. When the feature job never computed a row *at* a transaction (an event sent to the
   DLQ as late, a store that is behind), Feast silently returns the vector of the
   entity's previous transaction. The builder checks every labelled transaction
   against the feature log's ``transaction_id`` column; such *uncovered* rows are kept
   (with what Feast returned, or restored) but counted, logged, and when their share
   exceeds ``max_incomplete_share`` the build fails with
   :class:`TrainingSetIncomplete`. Labels whose transaction has not landed in bronze
   count towards the same bound (they cannot become rows: no amount).

So no labelled row is ever dropped silently: it is in the frame, or the build fails.

Equal event times: Feast picks, among an entity's rows at the same instant, the one
computed last (``computed_at``), so of two transactions of one card in the same
second the first gets the second's vector (which includes both). The definitions
count only those received before it; on the handbook's dataset this concerns a
handful of rows in a million (timestamps are whole seconds).

Cost. The store is Feast's DuckDB offline store
(:data:`services.feature_store.feast_store.OFFLINE_STORE`), which joins point in time
in SQL. The file (Dask) store joined each entity row with *every* feature row of its
entity before filtering by time, so its memory grew with rows * history length.
Entity rows are still sent in chunks of ``chunk_rows`` (in time order) to bound
memory; see docs/BENCHMARKS.md ("Offline retrieval") for both stores measured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from services.feature_store.aggregation import CardAggregator, TerminalAggregator, TxEvent
from services.feature_store.definitions import (
    CARD,
    FEATURES_BY_ENTITY,
    JOIN_KEYS,
    REQUEST_FEATURES,
    TERMINAL,
)
from services.feature_store.redis_layout import FEATURE_VIEWS
from services.feature_store.time_flags import request_features
from services.trainer.errors import TrainingFailed

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = [
    "LABEL",
    "TrainingSetIncomplete",
    "TrainingSetReport",
    "build_training_set",
    "load_labelled_transactions",
]

log = logging.getLogger(__name__)

#: The label column of a training set (int8, 0/1).
LABEL = "is_fraud"
#: Columns before the features, in order.
KEY_COLUMNS = ("transaction_id", "card_id", "terminal_id", "event_time", "amount")
_TS = "event_timestamp"  # Feast's entity-dataframe timestamp column
_EMPTY_HISTORY = {CARD: CardAggregator, TERMINAL: TerminalAggregator}
_ALL_HISTORY = pd.Timedelta(days=3650)  # a view without TTL reads back this far


class TrainingSetIncomplete(TrainingFailed):
    """Too many labelled transactions lack a feature row computed at them, or lack the
    transaction itself: the offline store is behind or lost events.

    Attributes:
        report: what was found.
    """

    def __init__(self, message: str, *, report: TrainingSetReport) -> None:
        super().__init__(message, stage="data")
        self.report = report


@dataclass(frozen=True)
class TrainingSetReport:
    """How a training set was built (also in the frame's ``attrs["report"]``).

    Attributes:
        rows: labelled rows in the set.
        labels_without_transaction: labels in the window whose transaction is not in
            bronze (not in the set: no amount).
        uncovered: entity type → rows whose transaction has no feature row of that
            entity in the log (Feast gave an earlier vector, or nothing).
        restored: entity type → rows Feast returned no value for, filled with the
            empty-history values.
        seconds: phase → seconds (``labels``, then each entity type: reading its
            log for coverage, Feast, restoring).
    """

    rows: int
    labels_without_transaction: int = 0
    uncovered: Mapping[str, int] = field(default_factory=dict)
    restored: Mapping[str, int] = field(default_factory=dict)
    seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def incomplete_share(self) -> float:
        """(labels without transaction + worst view's uncovered rows) / labels."""
        bad = self.labels_without_transaction + max(self.uncovered.values(), default=0)
        return bad / max(self.rows + self.labels_without_transaction, 1)


def build_training_set(
    store: FeatureStore,
    offline_root: Path,
    *,
    start: datetime,
    end: datetime,
    features: Sequence[str],
    as_of: datetime | None = None,
    chunk_rows: int = 25_000,
    max_incomplete_share: float = 0.001,
) -> pd.DataFrame:
    """Labelled transactions in ``[start, end)`` with point-in-time-correct features.

    Args:
        store: a Feast store whose card and terminal views read ``offline_root``'s
            feature log (:func:`services.feature_store.feast_store.make_store`).
        offline_root: the offline store's root (bronze transactions and labels).
        start: first event time (inclusive, timezone-aware).
        end: last event time (exclusive, timezone-aware).
        features: names from :mod:`services.feature_store.definitions` (request,
            card or terminal features), in the order wanted.
        as_of: keep only labels known by then (``label_time <= as_of``); None: all.
        chunk_rows: entity rows per Feast call (bounds its memory).
        max_incomplete_share: largest :attr:`TrainingSetReport.incomplete_share`
            accepted.

    Returns:
        One row per labelled transaction, ordered by event time (then id): columns
        ``transaction_id``, ``card_id``, ``terminal_id``, ``event_time``
        (datetime64[ns, UTC]), ``amount``, the features (float64) and ``is_fraud``
        (int8); ``attrs["report"]`` holds the :class:`TrainingSetReport`.

    Raises:
        ValueError: naive times, an empty window or an unknown feature name.
        TrainingSetIncomplete: the incomplete share exceeds ``max_incomplete_share``.
    """
    names = list(dict.fromkeys(features))
    by_entity = _split_features(names)
    seconds: dict[str, float] = {}
    mark = time.monotonic()
    rows, orphans = load_labelled_transactions(offline_root, start=start, end=end, as_of=as_of)
    seconds["labels"] = time.monotonic() - mark

    frame = rows.copy()
    times_ms = _epoch_ms(frame["event_time"])
    wanted_request = [n for n in names if n in REQUEST_FEATURES]
    if wanted_request:
        flags = [request_features(a, t) for a, t in zip(frame["amount"], times_ms, strict=True)]
        for name in wanted_request:
            frame[name] = np.fromiter((f[name] for f in flags), np.float64, len(flags))

    uncovered: dict[str, int] = {}
    restored: dict[str, int] = {}
    for entity_type, wanted in by_entity.items():
        mark = time.monotonic()
        key = JOIN_KEYS[entity_type]
        view = store.get_feature_view(FEATURE_VIEWS[entity_type])
        history = pd.Timedelta(view.ttl) if view.ttl else _ALL_HISTORY
        logged = _read_window(
            _feature_log(offline_root, entity_type),
            _aware("start", start) - history,
            _aware("end", end),
            [key, "transaction_id", "event_time"],
        )
        uncovered[entity_type] = int(
            (~frame["transaction_id"].isin(logged["transaction_id"])).sum()
        )
        first = frame[key].map(logged.groupby(key)["event_time"].min())
        askable = (first <= frame["event_time"]).to_numpy()
        values = _historical(store, frame.loc[askable], entity_type, wanted, chunk_rows)
        found = np.full((len(frame), len(wanted)), np.nan)
        found[askable] = values[wanted].to_numpy(dtype=np.float64)
        missing = np.isnan(found).any(axis=1)
        if missing.any():
            found[missing] = _empty_history(
                frame.loc[missing], times_ms[missing], entity_type, wanted
            )
        frame[wanted] = found
        restored[entity_type] = int(missing.sum())
        seconds[entity_type] = time.monotonic() - mark

    report = TrainingSetReport(len(frame), orphans, uncovered, restored, seconds)
    if report.labels_without_transaction or any(uncovered.values()) or any(restored.values()):
        log.warning(
            "training set %s..%s: %d rows; %d labels without their transaction; rows "
            "without a feature row computed at them: %s; restored with empty-history "
            "values: %s",
            start, end, len(frame), orphans, uncovered, restored,
        )  # fmt: skip
    if report.incomplete_share > max_incomplete_share:
        raise TrainingSetIncomplete(
            f"{report.incomplete_share:.2%} of the labelled transactions in "
            f"[{start}, {end}) lack their transaction or a feature row computed at them "
            f"(bound {max_incomplete_share:.2%}): {orphans} labels without transaction, "
            f"uncovered rows by entity {uncovered}; is the feature job behind?",
            report=report,
        )
    out = frame[[*KEY_COLUMNS, *names, LABEL]].sort_values(
        ["event_time", "transaction_id"], kind="stable", ignore_index=True
    )
    out.attrs["report"] = report
    return out


def load_labelled_transactions(
    offline_root: Path,
    *,
    start: datetime,
    end: datetime,
    as_of: datetime | None = None,
) -> tuple[pd.DataFrame, int]:
    """Bronze labels joined to bronze transactions, both deduplicated.

    Returns:
        ``(rows, orphans)``: rows with ``transaction_id``, ``card_id``,
        ``terminal_id``, ``event_time`` (datetime64[ns, UTC]), ``amount``,
        ``is_fraud`` (int8), in no particular order; and how many labels in the
        window have no transaction in bronze.

    Raises:
        ValueError: naive times or an empty window.
    """
    lower, upper = _aware("start", start), _aware("end", end)
    if upper <= lower:
        raise ValueError(f"empty window [{start}, {end})")
    cutoff = None if as_of is None else _aware("as_of", as_of)
    root = Path(offline_root) / "bronze"
    tx = _read_window(
        root / "transactions",
        lower,
        upper,
        ["transaction_id", "card_id", "terminal_id", "amount", "event_time"],
    )
    labels = _read_window(
        root / "labels", lower, upper, ["transaction_id", "is_fraud", "event_time", "label_time"]
    )
    if cutoff is not None:
        labels = labels.loc[labels["label_time"] <= cutoff]
    labels = labels.sort_values("label_time", kind="stable").drop_duplicates(
        "transaction_id", keep="last"
    )
    tx = tx.drop_duplicates("transaction_id", keep="first")
    rows = tx.merge(labels[["transaction_id", LABEL]], on="transaction_id", how="inner")
    rows[LABEL] = rows[LABEL].astype(np.int8)
    return rows, len(labels) - len(rows)


def _split_features(names: Sequence[str]) -> dict[str, list[str]]:
    """Entity type → its requested features; raises on a name no definition has."""
    known = {n: e for e, group in FEATURES_BY_ENTITY.items() for n in group}
    unknown = [n for n in names if n not in known and n not in REQUEST_FEATURES]
    if unknown:
        raise ValueError(f"unknown feature(s): {unknown}")
    out: dict[str, list[str]] = {}
    for name in names:
        if name in known:
            out.setdefault(known[name], []).append(name)
    return out


def _historical(
    store: FeatureStore,
    frame: pd.DataFrame,
    entity_type: str,
    wanted: list[str],
    chunk_rows: int,
) -> pd.DataFrame:
    """Feast's values for each row of ``frame`` (NaN where Feast has none), in its order."""
    key = JOIN_KEYS[entity_type]
    refs = [f"{FEATURE_VIEWS[entity_type]}:{name}" for name in wanted]
    asked = (
        frame[[key, "event_time"]]
        .rename(columns={"event_time": _TS})
        .drop_duplicates()
        .sort_values(_TS, kind="stable", ignore_index=True)
    )
    answers = []
    for lo in range(0, len(asked), chunk_rows):
        chunk = asked.iloc[lo : lo + chunk_rows]
        got = store.get_historical_features(entity_df=chunk, features=refs).to_df()
        answers.append(got[[key, _TS, *wanted]])
    found = (
        pd.concat(answers, ignore_index=True)
        if answers
        else pd.DataFrame(columns=[key, _TS, *wanted])
    )
    found[_TS] = pd.to_datetime(found[_TS], utc=True).astype("datetime64[ns, UTC]")
    found = found.drop_duplicates([key, _TS], keep="last")
    left = frame[[key, "event_time"]].rename(columns={"event_time": _TS})
    return left.merge(found, on=[key, _TS], how="left", validate="many_to_one")


def _empty_history(
    rows: pd.DataFrame, times_ms: np.ndarray, entity_type: str, wanted: list[str]
) -> np.ndarray:
    """Each row's features as the kernel computes them for an entity with no history."""
    out = np.empty((len(rows), len(wanted)))
    aggregator = _EMPTY_HISTORY[entity_type]
    columns = (rows["transaction_id"], rows["card_id"], rows["terminal_id"], rows["amount"])
    for i, (tid, card, terminal, amount, t) in enumerate(zip(*columns, times_ms, strict=True)):
        values = aggregator().update(TxEvent(tid, card, terminal, float(amount), int(t)))
        out[i] = [values[name] for name in wanted]
    return out


def _feature_log(offline_root: Path, entity_type: str) -> Path:
    return Path(offline_root) / "silver" / "features" / f"entity_type={entity_type}"


def _read_window(
    directory: Path, lower: pd.Timestamp, upper: pd.Timestamp, columns: list[str]
) -> pd.DataFrame:
    """Rows of the ``date=`` partitions under ``directory`` with lower <= event_time < upper."""
    last = (upper - pd.Timedelta(microseconds=1)).date()
    files: list[str] = []
    day = lower.date()
    while day <= last:
        files += sorted(str(p) for p in (directory / f"date={day}").glob("part-*.parquet"))
        day += timedelta(days=1)
    if not files:
        return pd.DataFrame({c: pd.Series(dtype=_EMPTY_DTYPES.get(c, object)) for c in columns})
    dataset = pads.dataset(files, format="parquet")
    when = pads.field("event_time")
    table = dataset.to_table(
        columns=columns,
        filter=(when >= pa.scalar(lower.to_pydatetime(), pa.timestamp("us", tz="UTC")))
        & (when < pa.scalar(upper.to_pydatetime(), pa.timestamp("us", tz="UTC"))),
    )
    frame = table.to_pandas()
    for column in ("event_time", "label_time"):
        if column in frame:
            frame[column] = frame[column].astype("datetime64[ns, UTC]")
    return frame


_EMPTY_DTYPES: Mapping[str, Any] = {
    "amount": np.float64,
    "is_fraud": bool,
    "event_time": "datetime64[ns, UTC]",
    "label_time": "datetime64[ns, UTC]",
}


def _epoch_ms(column: pd.Series) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(column).as_unit("ns").asi8 // 1_000_000, dtype=np.int64)


def _aware(name: str, value: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{name}: must be timezone-aware")
    return stamp.tz_convert("UTC")
