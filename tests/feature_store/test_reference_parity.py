"""The streaming kernel and the pandas reference give the same features, event by event.

Labels reach the kernel as the replayer sends them (services.producer.events.merge_labels):
each at its due time, a label due at the same instant as a transaction before it.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from services.feature_store import reference as reference_module
from services.feature_store.aggregation import (
    CardAggregator,
    LabelEvent,
    TerminalAggregator,
    TxEvent,
    request_features,
)
from services.feature_store.definitions import DAY, HOUR, LABEL_DELAY_S, MINUTE
from services.feature_store.reference import FEATURE_COLUMNS, load_fdh, reference_features
from services.producer.config import handbook_dataset_path

FDH = handbook_dataset_path()
S = 1000
T0 = 1_522_540_800_000  # 2018-04-01 00:00 UTC


def kernel_features(
    transactions: pd.DataFrame,
    labels: pd.DataFrame | None,
    label_delay_s: int,
    label_due_ms: np.ndarray | None = None,
) -> pd.DataFrame:
    """Replays transactions (in row order) and their labels through the kernel.

    A transaction's label is due at ``label_due_ms`` (default: event time + delay).
    """
    t_ms = _ms(transactions["event_time"])
    fraud = (
        dict(zip(labels["transaction_id"], labels["is_fraud"], strict=True))
        if labels is not None
        else {}
    )
    due = t_ms + label_delay_s * S if label_due_ms is None else label_due_ms
    cards: dict[str, CardAggregator] = {}
    terms: dict[str, TerminalAggregator] = {}
    pending: list[tuple[int, int, LabelEvent]] = []
    rows = []
    columns = ["transaction_id", "card_id", "terminal_id", "amount"]
    for i, (tx_id, card_id, term_id, amount) in enumerate(
        transactions[columns].itertuples(index=False)
    ):
        t = int(t_ms[i])
        while pending and pending[0][0] <= t:
            label = heapq.heappop(pending)[2]
            terms.setdefault(label.terminal_id, TerminalAggregator(label_delay_s)).add_label(label)
        event = TxEvent(tx_id, card_id, term_id, float(amount), t)
        card = cards.setdefault(card_id, CardAggregator())
        term = terms.setdefault(term_id, TerminalAggregator(label_delay_s))
        features = request_features(event.amount, t) | card.update(event) | term.update(event)
        rows.append(tuple(features.values()))  # tuples of floats: no garbage-collector work
        if tx_id in fraud:
            label = LabelEvent(tx_id, term_id, t, bool(fraud[tx_id]))
            heapq.heappush(pending, (int(due[i]), i, label))
    return pd.DataFrame(rows, columns=list(FEATURE_COLUMNS))


def _ms(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy(dtype=np.int64)
    return (
        column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ms]").astype(np.int64)
    )


def assert_same(kernel: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Every feature equal within 1e-9, relative above 1 and absolute below."""
    got = kernel[list(FEATURE_COLUMNS)].to_numpy()
    want = reference[list(FEATURE_COLUMNS)].to_numpy()
    assert got.shape == want.shape
    bad = np.abs(got - want) > 1e-9 * np.maximum(1.0, np.abs(want))
    if bad.any():
        rows, cols = np.nonzero(bad)
        first = [
            (int(r), FEATURE_COLUMNS[c], got[r, c], want[r, c])
            for r, c in zip(rows[:5], cols[:5], strict=True)
        ]
        pytest.fail(f"{int(bad.sum())} values differ, first: {first}")


@pytest.fixture(scope="module")
def fdh_nine_days() -> tuple[pd.DataFrame, pd.DataFrame]:
    if not FDH.is_file():
        pytest.fail(f"dataset not present: {FDH} (set RISKSTREAM_FDH_PATH)")
    return load_fdh(
        FDH, datetime(2018, 4, 1, tzinfo=UTC), datetime(2018, 4, 10, tzinfo=UTC), sorted_input=True
    )


@pytest.mark.parametrize(("label_delay_s", "days"), [(LABEL_DELAY_S, 9), (2 * DAY, 4)])
def test_kernel_equals_reference_on_the_handbook_dataset(
    fdh_nine_days: tuple[pd.DataFrame, pd.DataFrame], label_delay_s: int, days: int
) -> None:
    transactions, labels = fdh_nine_days
    keep = transactions["event_time"] < pd.Timestamp("2018-04-01", tz="UTC") + pd.Timedelta(
        days=days
    )
    transactions, labels = transactions[keep], labels[keep]
    assert len(transactions) > days * 9_000
    reference = reference_features(transactions, labels, label_delay_s=label_delay_s)
    assert_same(kernel_features(transactions, labels, label_delay_s), reference)
    # the comparison covers frauds seen through the delayed windows
    risks = reference[["terminal_risk_1d", "terminal_risk_7d", "terminal_risk_30d"]]
    assert (risks > 0).any(axis=1).sum() >= 10
    assert reference["transaction_id"].tolist() == transactions["transaction_id"].tolist()


def test_load_fdh_maps_ids_like_the_replayer() -> None:
    if not FDH.is_file():
        pytest.fail(f"dataset not present: {FDH} (set RISKSTREAM_FDH_PATH)")
    from services.producer.replay import read_fdh_csv

    transactions, labels = load_fdh(
        FDH,
        datetime(2018, 4, 1, tzinfo=UTC),
        datetime(2018, 4, 1, 2, tzinfo=UTC),
        sorted_input=True,
    )
    replayed = list(read_fdh_csv(FDH, end=datetime(2018, 4, 1, 2, tzinfo=UTC), sorted_input=True))
    assert len(replayed) == len(transactions) > 50
    for item, row, fraud in zip(
        replayed, transactions.itertuples(), labels["is_fraud"], strict=True
    ):
        message = item.transaction
        assert (message.transaction_id, message.card_id, message.terminal_id) == (
            row.transaction_id,
            row.card_id,
            row.terminal_id,
        )
        assert message.amount == row.amount
        assert message.event_time.seconds * S == row.event_time.value // 1_000_000
        assert item.is_fraud == fraud


def _synthetic(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """On a 10-minute grid: many ties, and pairs exactly one window (or D + N) apart."""
    rng = np.random.default_rng(seed)
    t = np.sort(T0 + rng.integers(0, 50 * DAY // 600, n) * 600 * S)
    ids = [f"s-{i}" for i in range(n)]
    transactions = pd.DataFrame(
        {
            "transaction_id": ids,
            "card_id": rng.choice(["c1", "c2", "c3"], n, p=[0.6, 0.3, 0.1]),
            "terminal_id": rng.choice(["t1", "t2", "t3", "t4"], n),
            "amount": np.round(rng.choice([0.0, 0.01, 0.1, 19.99, 1e6], n) * rng.random(n), 2),
            "event_time": pd.to_datetime(t, unit="ms", utc=True),
        }
    )
    labels = pd.DataFrame({"transaction_id": ids, "is_fraud": rng.random(n) < 0.3})
    return transactions, labels


@pytest.mark.parametrize("label_delay_s", [LABEL_DELAY_S, HOUR, 1])
def test_kernel_equals_reference_with_ties_and_exact_boundaries(label_delay_s: int) -> None:
    transactions, labels = _synthetic(1500, seed=1)
    t = _ms(transactions["event_time"])
    assert (np.diff(t) == 0).sum() > 100
    reference = reference_features(transactions, labels, label_delay_s=label_delay_s)
    assert_same(kernel_features(transactions, labels, label_delay_s), reference)


def test_labels_may_arrive_any_time_up_to_the_delay() -> None:
    transactions, labels = _synthetic(800, seed=2)
    t = _ms(transactions["event_time"])
    rng = np.random.default_rng(3)
    # due at the event itself (before its transaction: held pending), anywhere up to D, or at D
    due = t + rng.choice([0, 1, 2], len(t)) * rng.integers(0, LABEL_DELAY_S * S // 2 + 1, len(t))
    reference = reference_features(transactions, labels)
    assert_same(kernel_features(transactions, labels, LABEL_DELAY_S, due), reference)


def test_golden_values_at_ties_and_window_edges() -> None:
    w10 = 10 * MINUTE * S
    transactions = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c", "d", "e"],
            "card_id": ["c"] * 5,
            "terminal_id": ["t1", "t2", "t1", "t2", "t1"],
            "amount": [1.0, 2.0, 4.0, 8.0, 16.0],
            "event_time": [T0, T0, T0 + w10, T0 + w10, T0 + LABEL_DELAY_S * S + DAY * S],
        }
    )
    labels = pd.DataFrame({"transaction_id": ["a", "c"], "is_fraud": [True, True]})
    reference = reference_features(transactions, labels)
    kernel = kernel_features(transactions, labels, LABEL_DELAY_S)
    assert_same(kernel, reference)
    assert reference["card_tx_count_10m"].tolist() == [1, 2, 1, 2, 1]  # a, b out at T0 + 10m
    assert reference["card_amount_sum_1h"].tolist() == [1, 3, 7, 15, 16]
    assert reference["card_amount_max_10m"].tolist() == [1, 2, 4, 8, 16]
    assert reference["card_distinct_terminals_1h"].tolist() == [1, 2, 2, 2, 1]
    assert reference["card_seconds_since_prev"].tolist() == [
        -1,
        0,
        600,
        0,
        pytest.approx(8 * 86_400 - 600),
    ]
    # e (t1) at T0 + 8d: delayed 1d window (T0, T0 + 1d] holds c, not a (exactly D + 1d back)
    assert reference["terminal_delayed_tx_count_1d"].tolist()[-1] == 1  # c only (t1)
    assert reference["terminal_risk_1d"].tolist()[-1] == 1.0
    assert reference["terminal_delayed_tx_count_7d"].tolist()[-1] == 2  # a and c
    assert reference["terminal_risk_7d"].tolist()[-1] == 1.0


def test_reference_searches_per_entity_when_keys_would_overflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transactions, labels = _synthetic(400, seed=4)
    fast = reference_features(transactions, labels, label_delay_s=HOUR)
    monkeypatch.setattr(reference_module, "_KEY_LIMIT", 0)
    slow = reference_features(transactions, labels, label_delay_s=HOUR)
    pd.testing.assert_frame_equal(fast, slow)


def test_reference_of_nothing_is_empty_and_times_truncate_to_milliseconds() -> None:
    empty = pd.DataFrame(
        {
            "transaction_id": pd.Series([], dtype=object),
            "card_id": pd.Series([], dtype=object),
            "terminal_id": pd.Series([], dtype=object),
            "amount": pd.Series([], dtype=float),
            "event_time": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )
    assert list(reference_features(empty).columns[4:]) == list(FEATURE_COLUMNS)
    assert len(reference_features(empty)) == 0
    naive = pd.DataFrame(
        {
            "transaction_id": ["a", "b"],
            "card_id": ["c", "c"],
            "terminal_id": ["t", "t"],
            "amount": [1.0, 2.0],
            "event_time": pd.to_datetime(["2018-04-01 00:00:00.0009", "2018-04-01 00:00:00.0019"]),
        }
    )
    out = reference_features(naive)
    assert out["card_seconds_since_prev"].tolist() == [-1.0, 0.001]
    assert out["event_time"].iloc[0] == pd.Timestamp("2018-04-01", tz="UTC")
