"""Training data: simulated labelled transactions through the reference features.

:func:`simulate_features` runs the producer's simulator (deterministic per seed) and
computes every feature with :func:`services.feature_store.reference.reference_features`,
the offline implementation proved equal to the streaming one. :func:`temporal_split`
(pure) cuts the rows by simulated day into burn-in | train | gap | validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from services.feature_store.definitions import (
    CARD_FEATURES,
    HANDBOOK_FEATURES,
    LABEL_DELAY_S,
    REQUEST_FEATURES,
    TERMINAL_FEATURES,
)
from services.feature_store.reference import reference_features
from services.producer import SimulatorConfig, TransactionSimulator
from services.trainer.config import TrainerConfig

#: The baseline model's inputs, in order: the handbook's 15 features, then card
#: velocity and terminal volume features that catch card testing and bursts.
BASELINE_FEATURES: tuple[str, ...] = (
    *HANDBOOK_FEATURES,
    "card_tx_count_10m",
    "card_tx_count_1h",
    "card_amount_sum_1h",
    "card_amount_max_1d",
    "card_seconds_since_prev",
    "card_distinct_terminals_1h",
    "card_distinct_terminals_1d",
    "card_amount_to_mean_30d",
    "terminal_tx_count_1d",
)
KNOWN_FEATURES = frozenset((*REQUEST_FEATURES, *CARD_FEATURES, *TERMINAL_FEATURES))
LABEL = "is_fraud"
DAY_COLUMN = "day"


@dataclass(frozen=True)
class Split:
    """Rows of one side of the split and the event-time span they cover.

    Attributes:
        frame: the rows (features, ``is_fraud``, ``day``, ``event_time``).
        start: first instant of the span (UTC midnight of its first day).
        end: end of the span (exclusive; UTC midnight after its last day).
    """

    frame: pd.DataFrame
    start: datetime
    end: datetime

    def matrix(self, features: tuple[str, ...] = BASELINE_FEATURES) -> np.ndarray:
        """The feature matrix, float32, columns in ``features`` order."""
        return self.frame.loc[:, list(features)].to_numpy(dtype=np.float32)

    def labels(self) -> np.ndarray:
        """0/1 labels as int8."""
        return self.frame[LABEL].to_numpy(dtype=np.int8)


def simulate_features(config: TrainerConfig) -> tuple[pd.DataFrame, datetime]:
    """Simulate ``config.days`` days and compute every feature of every transaction.

    Returns:
        The feature frame (one row per transaction, in event-time order, with
        ``is_fraud`` and ``day`` added) and the simulation's start (UTC midnight).
    """
    sim_config = SimulatorConfig(
        seed=config.seed,
        n_customers=config.n_customers,
        n_terminals=config.n_terminals,
        label_delay=timedelta(seconds=LABEL_DELAY_S),
    )
    simulator = TransactionSimulator(sim_config)
    columns: dict[str, list[object]] = {
        "transaction_id": [],
        "card_id": [],
        "terminal_id": [],
        "amount": [],
        "event_time": [],
        LABEL: [],
        DAY_COLUMN: [],
    }
    for day, items in enumerate(simulator.iter_days(0, config.days)):
        for item in items:
            tx = item.transaction
            columns["transaction_id"].append(tx.transaction_id)
            columns["card_id"].append(tx.card_id)
            columns["terminal_id"].append(tx.terminal_id)
            columns["amount"].append(tx.amount)
            columns["event_time"].append(
                tx.event_time.seconds * 1000 + tx.event_time.nanos // 10**6
            )
            columns[LABEL].append(item.is_fraud)
            columns[DAY_COLUMN].append(day)
    transactions = pd.DataFrame(
        {
            "transaction_id": columns["transaction_id"],
            "card_id": columns["card_id"],
            "terminal_id": columns["terminal_id"],
            "amount": np.asarray(columns["amount"], dtype=np.float64),
            "event_time": np.asarray(columns["event_time"], dtype=np.int64),
        }
    )
    labels = pd.DataFrame({"transaction_id": transactions["transaction_id"], LABEL: columns[LABEL]})
    features = reference_features(transactions, labels, label_delay_s=LABEL_DELAY_S)
    features[LABEL] = np.asarray(columns[LABEL], dtype=np.int8)
    features[DAY_COLUMN] = np.asarray(columns[DAY_COLUMN], dtype=np.int32)
    return features, sim_config.start


def temporal_split(
    features: pd.DataFrame, start: datetime, config: TrainerConfig
) -> tuple[Split, Split]:
    """Cut rows by day: burn-in | train | gap | validation (see :class:`TrainerConfig`).

    Returns:
        ``(train, validation)``.
    """
    train_lo = config.burn_in_days
    train_hi = train_lo + config.train_days
    valid_lo = train_hi + config.gap_days
    valid_hi = valid_lo + config.validation_days
    day = features[DAY_COLUMN].to_numpy()

    def side(lo: int, hi: int) -> Split:
        rows = features.loc[(day >= lo) & (day < hi)].reset_index(drop=True)
        return Split(rows, start + timedelta(days=lo), start + timedelta(days=hi))

    return side(train_lo, train_hi), side(valid_lo, valid_hi)
