"""Our 15 HANDBOOK_FEATURES equal the Fraud Detection Handbook's own feature code.

The handbook (Le Borgne et al., 2022), chapter 3 "Baseline feature transformation",
computes its features with pandas ``rolling`` over ``TX_DATETIME``, per customer and
per terminal (``groupby(...).apply``). Its functions are re-implemented below as
written in the book, on a few weeks of its dataset, for a seeded sample of customers
and terminals (the features of one customer or terminal depend on its transactions
only, and ``apply`` over all 15,000 groups would take minutes).

Deliberate differences, each one marked ``DIFFERENCE`` below:

1. Ties. The book sorts with ``sort_values('TX_DATETIME')`` (quicksort, not stable), so
   two transactions of one customer at the same second are in an arbitrary order,
   and ``rolling`` counts the earlier row, not the later one. Ours resolve ties by
   arrival (file) order, so the re-implementation sorts with ``kind="stable"``; with
   that, the values agree exactly, ties included.
2. Times. The book's ``TX_DATETIME`` is naive; ours is UTC. The replayer takes the
   naive times as UTC, so flags and windows are the same.
3. Frauds. The book reads ``TX_FRAUD`` of every past transaction (it knows every
   label); the stream knows a label once it has arrived. With labels delivered at
   event time + 7 days (the delay of the book's delayed windows), every label in the
   window (t - 7 - N days, t - 7 days] has arrived by t, so the two agree.
"""

# The book's code keeps its own names and signatures (upper-case locals, list defaults).
# ruff: noqa: N806, B006

from __future__ import annotations

import heapq
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from services.feature_store.aggregation import (
    CardAggregator,
    LabelEvent,
    TerminalAggregator,
    TxEvent,
    request_features,
)
from services.feature_store.definitions import HANDBOOK_FEATURES, LABEL_DELAY_S
from services.feature_store.reference import load_fdh, reference_features
from services.producer.config import handbook_dataset_path

FDH = handbook_dataset_path()
START, END = datetime(2018, 4, 1, tzinfo=UTC), datetime(2018, 4, 29, tzinfo=UTC)

#: Our name of each of the book's feature columns.
BOOK_NAMES = {
    "TX_AMOUNT": "tx_amount",
    "TX_DURING_WEEKEND": "tx_is_weekend",
    "TX_DURING_NIGHT": "tx_is_night",
    "CUSTOMER_ID_NB_TX_1DAY_WINDOW": "card_tx_count_1d",
    "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW": "card_amount_mean_1d",
    "CUSTOMER_ID_NB_TX_7DAY_WINDOW": "card_tx_count_7d",
    "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW": "card_amount_mean_7d",
    "CUSTOMER_ID_NB_TX_30DAY_WINDOW": "card_tx_count_30d",
    "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW": "card_amount_mean_30d",
    "TERMINAL_ID_NB_TX_1DAY_WINDOW": "terminal_delayed_tx_count_1d",
    "TERMINAL_ID_RISK_1DAY_WINDOW": "terminal_risk_1d",
    "TERMINAL_ID_NB_TX_7DAY_WINDOW": "terminal_delayed_tx_count_7d",
    "TERMINAL_ID_RISK_7DAY_WINDOW": "terminal_risk_7d",
    "TERMINAL_ID_NB_TX_30DAY_WINDOW": "terminal_delayed_tx_count_30d",
    "TERMINAL_ID_RISK_30DAY_WINDOW": "terminal_risk_30d",
}


# ---- the handbook's code (chapter 3), as in the book unless marked DIFFERENCE ----


def is_weekend(tx_datetime):
    # Transform date into weekday (0 is Monday, 6 is Sunday)
    weekday = tx_datetime.weekday()
    # Binary value: 0 if weekday, 1 if weekend
    is_weekend = weekday >= 5
    return int(is_weekend)


def is_night(tx_datetime):
    # Get the hour of the transaction
    tx_hour = tx_datetime.hour
    # Binary value: 1 if hour less than 6, and 0 otherwise
    is_night = tx_hour <= 6
    return int(is_night)


def get_customer_spending_behaviour_features(
    customer_transactions, windows_size_in_days=[1, 7, 30]
):
    # Let us first order transactions chronologically
    customer_transactions = customer_transactions.sort_values(
        "TX_DATETIME", kind="stable"
    )  # DIFFERENCE 1
    # The transaction date and time is set as the index, which will allow the use of the
    # rolling function
    customer_transactions.index = customer_transactions.TX_DATETIME
    # For each window size
    for window_size in windows_size_in_days:
        # Compute the sum of the transaction amounts and the number of transactions for the
        # given window size
        SUM_AMOUNT_TX_WINDOW = (
            customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "d").sum()
        )
        NB_TX_WINDOW = customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "d").count()
        # Compute the average transaction amount for the given window size
        # NB_TX_WINDOW is always >0 since current transaction is always included
        AVG_AMOUNT_TX_WINDOW = SUM_AMOUNT_TX_WINDOW / NB_TX_WINDOW
        # Save feature values
        customer_transactions["CUSTOMER_ID_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(
            NB_TX_WINDOW
        )
        customer_transactions["CUSTOMER_ID_AVG_AMOUNT_" + str(window_size) + "DAY_WINDOW"] = list(
            AVG_AMOUNT_TX_WINDOW
        )
    # Reindex according to transaction IDs
    customer_transactions.index = customer_transactions.TRANSACTION_ID
    # And return the dataframe with the new features
    return customer_transactions


def get_count_risk_rolling_window(
    terminal_transactions, delay_period=7, windows_size_in_days=[1, 7, 30], feature="TERMINAL_ID"
):
    terminal_transactions = terminal_transactions.sort_values(
        "TX_DATETIME", kind="stable"
    )  # DIFFERENCE 1
    terminal_transactions.index = terminal_transactions.TX_DATETIME
    NB_FRAUD_DELAY = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "d").sum()
    NB_TX_DELAY = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "d").count()
    for window_size in windows_size_in_days:
        NB_FRAUD_DELAY_WINDOW = (
            terminal_transactions["TX_FRAUD"].rolling(str(delay_period + window_size) + "d").sum()
        )
        NB_TX_DELAY_WINDOW = (
            terminal_transactions["TX_FRAUD"].rolling(str(delay_period + window_size) + "d").count()
        )
        NB_FRAUD_WINDOW = NB_FRAUD_DELAY_WINDOW - NB_FRAUD_DELAY
        NB_TX_WINDOW = NB_TX_DELAY_WINDOW - NB_TX_DELAY
        RISK_WINDOW = NB_FRAUD_WINDOW / NB_TX_WINDOW
        terminal_transactions[feature + "_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(
            NB_TX_WINDOW
        )
        terminal_transactions[feature + "_RISK_" + str(window_size) + "DAY_WINDOW"] = list(
            RISK_WINDOW
        )
    terminal_transactions.index = terminal_transactions.TRANSACTION_ID
    # Replace NA values with 0 (all undefined risk scores where NB_TX_WINDOW is 0)
    terminal_transactions.fillna(0, inplace=True)
    return terminal_transactions


# ---- the comparison ----


@pytest.fixture(scope="module")
def four_weeks() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(book frame, our transactions, our labels) for four weeks of the dataset."""
    if not FDH.is_file():
        pytest.fail(f"dataset not present: {FDH} (set RISKSTREAM_FDH_PATH)")
    transactions, labels = load_fdh(FDH, START, END, sorted_input=True)
    book = pd.DataFrame(
        {
            "TRANSACTION_ID": transactions["transaction_id"],
            "TX_DATETIME": transactions["event_time"].dt.tz_localize(None),  # DIFFERENCE 2
            "CUSTOMER_ID": transactions["card_id"],
            "TERMINAL_ID": transactions["terminal_id"],
            "TX_AMOUNT": transactions["amount"],
            "TX_FRAUD": labels["is_fraud"].astype(int),
        }
    )
    return book, transactions, labels


def book_features(book: pd.DataFrame, customers: np.ndarray, terminals: np.ndarray) -> pd.DataFrame:
    """The book's 15 features, by our names, indexed by transaction id.

    Customer columns (and the transaction's own) are filled for the sampled customers'
    rows, terminal columns for the sampled terminals' rows.
    """
    mine = book[book.CUSTOMER_ID.isin(customers)].copy()
    mine["TX_DURING_WEEKEND"] = mine.TX_DATETIME.apply(is_weekend)
    mine["TX_DURING_NIGHT"] = mine.TX_DATETIME.apply(is_night)
    by_customer = mine.groupby("CUSTOMER_ID", group_keys=False)
    customer = by_customer.apply(get_customer_spending_behaviour_features, include_groups=False)
    by_terminal = book[book.TERMINAL_ID.isin(terminals)].groupby("TERMINAL_ID", group_keys=False)
    terminal = by_terminal.apply(get_count_risk_rolling_window, include_groups=False)
    return pd.concat(
        [
            customer[[name for name in BOOK_NAMES if not name.startswith("TERMINAL")]],
            terminal[[name for name in BOOK_NAMES if name.startswith("TERMINAL")]],
        ],
        axis=1,
    ).rename(columns=BOOK_NAMES)


def assert_equal_on(
    ours: pd.DataFrame, book: pd.DataFrame, rows: pd.Index, names: list[str]
) -> None:
    got = ours.loc[rows, names].to_numpy(dtype=float)
    want = book.loc[rows, names].to_numpy(dtype=float)
    bad = np.abs(got - want) > 1e-9 * np.maximum(1.0, np.abs(want))
    assert not bad.any(), [
        (rows[r], names[c], got[r, c], want[r, c]) for r, c in zip(*np.nonzero(bad), strict=True)
    ][:5]


def test_handbook_features_are_the_book_features() -> None:
    assert tuple(BOOK_NAMES.values()) == HANDBOOK_FEATURES


def test_reference_and_kernel_equal_the_handbook_code(
    four_weeks: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    book, transactions, labels = four_weeks
    rng = np.random.default_rng(2022)
    # a seeded sample, plus every customer and terminal with two transactions at one time
    tied_customers = book.CUSTOMER_ID[book.duplicated(["CUSTOMER_ID", "TX_DATETIME"], keep=False)]
    tied_terminals = book.TERMINAL_ID[book.duplicated(["TERMINAL_ID", "TX_DATETIME"], keep=False)]
    assert tied_customers.nunique() > 0  # (no terminal has two at one time in these weeks)
    customers = np.union1d(
        rng.choice(book.CUSTOMER_ID.unique(), 120, replace=False), tied_customers
    )
    terminals = np.union1d(
        rng.choice(book.TERMINAL_ID.unique(), 200, replace=False), tied_terminals
    )
    expected = book_features(book, customers, terminals)

    reference = reference_features(transactions, labels).set_index("transaction_id")
    kernel = kernel_features(transactions, labels, customers, terminals)
    card_rows = pd.Index(book.TRANSACTION_ID[book.CUSTOMER_ID.isin(customers)])
    terminal_rows = pd.Index(book.TRANSACTION_ID[book.TERMINAL_ID.isin(terminals)])
    assert len(card_rows) > 5_000 and len(terminal_rows) > 4_000
    request = list(HANDBOOK_FEATURES[:3])
    card = list(HANDBOOK_FEATURES[3:9])
    terminal = list(HANDBOOK_FEATURES[9:])
    assert (expected.loc[terminal_rows, "terminal_risk_7d"] > 0).sum() > 10  # frauds are seen
    for ours in (reference, kernel):
        assert_equal_on(ours, expected, card_rows, request + card)
        assert_equal_on(ours, expected, terminal_rows, terminal)


def kernel_features(
    transactions: pd.DataFrame, labels: pd.DataFrame, customers: np.ndarray, terminals: np.ndarray
) -> pd.DataFrame:
    """The kernel's handbook features for the sampled cards and terminals (NaN elsewhere).

    Labels reach the terminals at event time + 7 days, before a transaction of the
    same instant, as the replayer sends them.
    """
    t_ms = (
        transactions["event_time"].dt.tz_localize(None).to_numpy("datetime64[ms]").astype(np.int64)
    )
    wanted_cards, wanted_terminals = set(customers), set(terminals)
    cards: dict[str, CardAggregator] = {}
    terms: dict[str, TerminalAggregator] = {}
    pending: list[tuple[int, int, LabelEvent]] = []
    out = np.full((len(transactions), len(HANDBOOK_FEATURES)), np.nan)
    card_at = [HANDBOOK_FEATURES.index(name) for name in HANDBOOK_FEATURES[:9]]
    terminal_at = [HANDBOOK_FEATURES.index(name) for name in HANDBOOK_FEATURES[9:]]
    columns = ["transaction_id", "card_id", "terminal_id", "amount"]
    rows = zip(transactions[columns].itertuples(index=False), t_ms, labels["is_fraud"], strict=True)
    for i, ((tx_id, card_id, term_id, amount), t, fraud) in enumerate(rows):
        while pending and pending[0][0] <= t:
            label = heapq.heappop(pending)[2]
            terms[label.terminal_id].add_label(label)
        event = TxEvent(tx_id, card_id, term_id, float(amount), int(t))
        if card_id in wanted_cards:
            features = request_features(event.amount, event.event_time_ms)
            features |= cards.setdefault(card_id, CardAggregator()).update(event)
            out[i, card_at] = [features[name] for name in HANDBOOK_FEATURES[:9]]
        if term_id in wanted_terminals:
            features = terms.setdefault(term_id, TerminalAggregator()).update(event)
            out[i, terminal_at] = [features[name] for name in HANDBOOK_FEATURES[9:]]
            label = LabelEvent(tx_id, term_id, event.event_time_ms, bool(fraud))
            heapq.heappush(pending, (event.event_time_ms + LABEL_DELAY_S * 1000, i, label))
    return pd.DataFrame(out, index=transactions["transaction_id"], columns=list(HANDBOOK_FEATURES))
