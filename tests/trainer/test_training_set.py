"""The training set through real Feast (file offline store) over a small real offline
store written by the project's :class:`ParquetOfflineWriter`.

Leakage: the labelled transaction's card and terminal have feature rows *after* it
with very different values; its training row must hold the values as of it. Loss:
rows that Feast's own join would drop or collapse are all in the training set.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskstream.v1 import events_pb2
from services.feature_store.aggregation import CardAggregator, TerminalAggregator, TxEvent
from services.feature_store.definitions import (
    CARD,
    CARD_FEATURES,
    HANDBOOK_FEATURES,
    TERMINAL,
    TERMINAL_FEATURES,
)
from services.feature_store.offline import ParquetOfflineWriter
from services.trainer.training_set import (
    TrainingSetIncomplete,
    build_training_set,
    load_labelled_transactions,
)

pytestmark = [pytest.mark.integration]

T0 = datetime(2018, 5, 10, 12, 0, tzinfo=UTC)
DELAY = timedelta(days=7)
FEATURES = [*HANDBOOK_FEATURES, "card_amount_max_1h", "card_seconds_since_prev"]


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _tx(tid: str, card: str, terminal: str, amount: float, when: datetime):
    tx = events_pb2.Transaction(
        transaction_id=tid, card_id=card, terminal_id=terminal, merchant_id="m",
        amount=amount, currency="EUR",
    )  # fmt: skip
    tx.event_time.FromMilliseconds(_ms(when))
    return tx


def _label(tx, fraud: bool, delay: timedelta = DELAY):
    label = events_pb2.Label(
        transaction_id=tx.transaction_id, card_id=tx.card_id, terminal_id=tx.terminal_id,
        is_fraud=fraud,
    )  # fmt: skip
    label.event_time.CopyFrom(tx.event_time)
    label.label_time.FromMilliseconds(
        tx.event_time.ToMilliseconds() + int(delay / timedelta(milliseconds=1))
    )
    return label


def _row(entity_type: str, tx, value: float, *, computed_offset_ms: int = 0):
    """A feature row at ``tx`` whose every feature equals ``value``."""
    names = CARD_FEATURES if entity_type == CARD else TERMINAL_FEATURES
    row = events_pb2.FeatureRow(
        entity_type=entity_type,
        entity_id=tx.card_id if entity_type == CARD else tx.terminal_id,
        transaction_id=tx.transaction_id, feature_set_version="test",
    )  # fmt: skip
    row.event_time.CopyFrom(tx.event_time)
    row.computed_at.FromMilliseconds(tx.event_time.ToMilliseconds() + 500 + computed_offset_ms)
    row.values.update({name: value for name in names})
    return row


def _store(root: Path, project: tuple[str, str], offline_store: str | None = None):
    from services.feature_store.feast_store import OFFLINE_STORE, make_store  # slow import

    url, name = project
    registry = root.parent / f"registry-{uuid.uuid4().hex[:6]}.db"
    return make_store(
        url, root, registry, project=name, offline_store=offline_store or OFFLINE_STORE
    )


def test_features_come_from_at_or_before_the_transaction_never_after(
    tmp_path: Path, feast_project: tuple[str, str]
) -> None:
    root = tmp_path / "offline"
    card, terminal = "card-L", "term-L"
    before = _tx("before", card, terminal, 20.0, T0 - timedelta(days=1))
    labelled = _tx("labelled", card, terminal, 10.0, T0)
    after = [  # same card and terminal, later, with wildly different values
        _tx("after-1s", card, terminal, 9000.0, T0 + timedelta(seconds=1)),
        _tx("after-1h", card, terminal, 9000.0, T0 + timedelta(hours=1)),
        _tx("after-2d", card, terminal, 9000.0, T0 + timedelta(days=2)),
    ]
    everything = [before, labelled, *after]
    writer = ParquetOfflineWriter(root)
    writer.write_transactions(everything)
    writer.write_labels([_label(tx, fraud=tx is labelled) for tx in everything])
    values = {
        "before": 1.0,
        "labelled": 2.0,
        "after-1s": 900.0,
        "after-1h": 901.0,
        "after-2d": 902.0,
    }
    for entity_type in (CARD, TERMINAL):
        # The later rows are even written first and computed later: order must not matter.
        writer.write_feature_rows(
            [_row(entity_type, tx, values[tx.transaction_id]) for tx in reversed(everything)]
        )

    store = _store(root, feast_project)
    out = build_training_set(
        store, root, start=T0 - timedelta(hours=1), end=T0 + timedelta(minutes=1),
        features=FEATURES,
    )  # fmt: skip

    assert out["transaction_id"].tolist() == ["labelled", "after-1s"]
    row = out.iloc[0]
    assert row["is_fraud"] == 1 and row["amount"] == 10.0
    for name in FEATURES:
        if name in CARD_FEATURES or name in TERMINAL_FEATURES:
            assert row[name] == 2.0, f"{name}: {row[name]} is not the value as of the transaction"
    assert out.iloc[1]["card_tx_count_1d"] == 900.0  # one second later: its own row
    assert row["tx_amount"] == 10.0 and row["tx_is_weekend"] == 0.0 and row["tx_is_night"] == 0.0
    assert out["event_time"].dtype == "datetime64[ns, UTC]" and out["is_fraud"].dtype == np.int8
    report = out.attrs["report"]
    assert report.uncovered == {CARD: 0, TERMINAL: 0} and report.restored == {CARD: 0, TERMINAL: 0}

    # as_of: only labels known by then are entity rows.
    known = build_training_set(
        store, root, start=T0 - timedelta(days=2), end=T0 + timedelta(days=3),
        features=FEATURES, as_of=T0 + DELAY + timedelta(seconds=30),
    )  # fmt: skip
    assert known["transaction_id"].tolist() == ["before", "labelled", "after-1s"]


def test_no_labelled_row_is_lost_where_feasts_join_would_lose_it(
    tmp_path: Path, feast_project: tuple[str, str]
) -> None:
    root = tmp_path / "offline"
    # Same card, same second, two terminals: one row per (card, time) in Feast's dedup.
    twin_a = _tx("twin-a", "card-T", "term-A", 11.0, T0)
    twin_b = _tx("twin-b", "card-T", "term-B", 12.0, T0)
    # The job never logged this one, and its card and terminal have rows only after it:
    # Feast drops the entity row.
    unlogged = _tx("unlogged", "card-U", "term-U", 33.0, T0 + timedelta(minutes=5))
    later_u = _tx("later-u", "card-U", "term-U", 44.0, T0 + timedelta(hours=2))
    # Never logged, no rows at all for its card and terminal: Feast returns nulls.
    unknown = _tx("unknown", "card-N", "term-N", 55.0, T0 + timedelta(minutes=7))
    # Logged a day earlier, not at the transaction: Feast gives the stale earlier vector.
    stale_prev = _tx("stale-prev", "card-S", "term-S", 5.0, T0 - timedelta(days=1))
    stale = _tx("stale", "card-S", "term-S", 6.0, T0 + timedelta(minutes=9))
    everything = [twin_a, twin_b, unlogged, later_u, unknown, stale_prev, stale]
    writer = ParquetOfflineWriter(root)
    writer.write_transactions(everything)
    writer.write_labels([_label(tx, fraud=tx.transaction_id == "unlogged") for tx in everything])
    logged = [twin_a, twin_b, later_u, stale_prev]
    for entity_type in (CARD, TERMINAL):
        writer.write_feature_rows(
            [
                _row(entity_type, tx, float(i + 1), computed_offset_ms=i)
                for i, tx in enumerate(logged)
            ]
        )
    store = _store(root, feast_project)
    window = {"start": T0, "end": T0 + timedelta(hours=1)}
    labelled, _ = load_labelled_transactions(root, **window)
    assert len(labelled) == 5

    # The trap, shown with Feast's file store alone: both views at once lose rows. (With
    # "unknown" among them, whose entities have no row at all, its Dask join raises.)
    entity_df = labelled.loc[labelled["transaction_id"] != "unknown"]
    entity_df = entity_df.rename(columns={"event_time": "event_timestamp"})[
        ["card_id", "terminal_id", "event_timestamp"]
    ]
    refs = ["card_features:card_tx_count_1d", "terminal_features:terminal_risk_7d"]
    file_store = _store(root, feast_project, offline_store="file")
    raw = file_store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    assert len(raw) < len(entity_df)

    with pytest.raises(TrainingSetIncomplete) as failed:
        build_training_set(store, root, features=FEATURES, **window)
    assert failed.value.report.uncovered == {CARD: 3, TERMINAL: 3}

    out = build_training_set(store, root, features=FEATURES, max_incomplete_share=1.0, **window)
    assert sorted(out["transaction_id"]) == sorted(labelled["transaction_id"])
    assert not out[FEATURES].isna().any().any()
    report = out.attrs["report"]
    assert report.restored == {CARD: 2, TERMINAL: 2}  # unlogged and unknown
    by_id = out.set_index("transaction_id")
    # The twins keep their own terminals' values; the card value is the later-computed one.
    assert by_id.loc["twin-a", "terminal_risk_7d"] == 1.0
    assert by_id.loc["twin-b", "terminal_risk_7d"] == 2.0
    assert by_id.loc["twin-a", "card_tx_count_1d"] == by_id.loc["twin-b", "card_tx_count_1d"] == 2.0
    # Restored rows hold what the kernel gives a transaction with no history.
    for tx in (unlogged, unknown):
        event = TxEvent(
            tx.transaction_id, tx.card_id, tx.terminal_id, tx.amount, tx.event_time.ToMilliseconds()
        )
        want = {**CardAggregator().update(event), **TerminalAggregator().update(event)}
        got = by_id.loc[tx.transaction_id]
        for name in FEATURES:
            if name in want:
                assert got[name] == want[name], (tx.transaction_id, name)
    assert by_id.loc["unlogged", "is_fraud"] == 1
    # The stale one is kept (with the earlier vector) and counted as uncovered.
    assert by_id.loc["stale", "card_tx_count_1d"] == 4.0


def test_unknown_feature_and_naive_times_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown feature"):
        build_training_set(None, tmp_path, start=T0, end=T0 + DELAY, features=["nope"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        load_labelled_transactions(tmp_path, start=datetime(2018, 5, 1), end=T0)
    empty, orphans = load_labelled_transactions(tmp_path, start=T0, end=T0 + DELAY)
    assert empty.empty and orphans == 0
    assert list(pd.DataFrame(empty).columns)[:2] == ["transaction_id", "card_id"]
