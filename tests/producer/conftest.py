"""Shared helpers of the producer tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pytest

from services.producer import LabelledTransaction

Table = dict[str, np.ndarray]


def _table(items: Iterable[LabelledTransaction], start_s: int) -> Table:
    """Labelled transactions as parallel numpy columns, for statistics."""
    cols: dict[str, list] = {
        name: []
        for name in (
            "event_s",
            "day",
            "card",
            "terminal",
            "amount",
            "scenario",
            "is_fraud",
            "channel",
            "mcc",
            "country",
            "label_ns",
            "transaction_id",
        )
    }
    for lt in items:
        tx = lt.transaction
        event_s = tx.event_time.seconds
        cols["event_s"].append(event_s)
        cols["day"].append((event_s - start_s) // 86_400)
        cols["card"].append(int(tx.card_id.removeprefix("card-")))
        cols["terminal"].append(int(tx.terminal_id.removeprefix("term-")))
        cols["amount"].append(tx.amount)
        cols["scenario"].append(lt.fraud_scenario)
        cols["is_fraud"].append(lt.is_fraud)
        cols["channel"].append(tx.channel)
        cols["mcc"].append(tx.merchant_category)
        cols["country"].append(tx.country)
        cols["label_ns"].append(lt.label_time_ns)
        cols["transaction_id"].append(tx.transaction_id)
    return {name: np.array(values) for name, values in cols.items()}


@pytest.fixture(scope="session")
def table_of() -> Callable[[Iterable[LabelledTransaction], int], Table]:
    """Returns ``table(items, start_s)``: labelled transactions as numpy columns."""
    return _table
