"""Request-time fold-in equals the stream's own features when no window expired."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.feature_store.definitions import CARD_FEATURES, CARD_RATIO_FEATURES, REQUEST_FEATURES
from services.feature_store.reference import reference_features
from services.scoring.vectorize import EMPTY, Request, Stored, VectorLayout

#: Features that folding reproduces exactly while every earlier event is in-window.
EXACT = tuple(
    n for n in (*REQUEST_FEATURES, *CARD_FEATURES) if not n.startswith("card_distinct_terminals")
)


def test_folding_the_next_event_onto_the_stored_row_gives_the_streams_row() -> None:
    rng = np.random.default_rng(3)
    n = 40
    t0 = 1_700_000_000_000
    times = t0 + np.cumsum(rng.integers(1_000, 20_000, size=n))  # all within 10 minutes
    tx = pd.DataFrame(
        {
            "transaction_id": [f"tx{i}" for i in range(n)],
            "card_id": ["c1"] * n,
            "terminal_id": [f"t{i % 3}" for i in range(n)],
            "amount": rng.gamma(2.0, 40.0, size=n).round(2),
            "event_time": times,
        }
    )
    ref = reference_features(tx)
    layout = VectorLayout(EXACT)
    for k in range(n):
        stored = (
            EMPTY
            if k == 0
            else Stored(ref.loc[k - 1, list(CARD_FEATURES)].to_dict(), int(times[k - 1]))
        )
        row = layout.build(Request(float(tx.amount[k]), int(times[k])), stored, EMPTY)
        expected = ref.loc[k, list(EXACT)].to_numpy(dtype=float)
        assert row == pytest.approx(expected, rel=1e-9, abs=1e-9), f"event {k}"


def test_unknown_feature_names_are_refused() -> None:
    with pytest.raises(ValueError, match="not a riskstream feature"):
        VectorLayout(("tx_amount", "shoe_size"))


def test_terminal_counts_include_the_transaction_and_delayed_risk_does_not() -> None:
    layout = VectorLayout(("terminal_tx_count_1d", "terminal_risk_7d"))
    terminal = Stored({"terminal_tx_count_1d": 4.0, "terminal_risk_7d": 0.25}, 0)
    assert layout.build(Request(1.0, 1), EMPTY, terminal) == [5.0, 0.25]


def test_card_ratios_fold_the_transaction_into_the_recent_means_but_not_the_older_one() -> None:
    layout = VectorLayout(CARD_RATIO_FEATURES)
    stored = Stored(
        {
            "card_tx_count_30d": 10.0, "card_amount_sum_30d": 300.0,  # older: 6 tx, 120
            "card_tx_count_7d": 4.0, "card_amount_sum_7d": 180.0, "card_amount_max_7d": 60.0,
            "card_tx_count_1d": 1.0, "card_amount_sum_1d": 20.0,
        },
        0,
    )  # fmt: skip
    row = layout.build(Request(100.0, 86_400_000), stored, EMPTY)
    assert row == pytest.approx([20.0, 5.0, 5.0, 100.0 / 60.0, 100.0 / 56.0])
    # A card never seen: no older level (-1), and the recent means are the amount.
    assert layout.build(Request(100.0, 1), EMPTY, EMPTY) == [-1.0, -1.0, -1.0, 1.0, 1.0]


def test_ratios_are_placed_by_name_among_other_features_and_computed_once_a_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import services.scoring.vectorize as vectorize

    names = ("card_amount_to_mean_7d", "tx_amount", "card_amount_mean_7_30d", "card_tx_count_1d")
    stored = Stored({"card_tx_count_30d": 3.0, "card_amount_sum_30d": 90.0}, 0)  # older: 3, 90
    calls = []
    real = vectorize._card_ratios
    monkeypatch.setattr(vectorize, "_card_ratios", lambda r, c: calls.append(1) or real(r, c))
    row = VectorLayout(names).build(Request(60.0, 1), stored, EMPTY)
    assert row == [1.0, 60.0, 30.0, 1.0] and len(calls) == 1
    assert VectorLayout(("tx_amount",)).build(Request(60.0, 1), stored, EMPTY) == [60.0]
    assert len(calls) == 1  # a model without ratios never computes them
