"""Training data: simulated labelled transactions through the reference features.

:func:`simulate_features` runs the producer's simulator (deterministic per seed) and
computes every feature with :func:`services.feature_store.reference.reference_features`,
the offline implementation proved equal to the streaming one;
:func:`services.trainer.pipeline.data_windows` cuts the rows in event time.
"""

from __future__ import annotations

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


def simulate_features(
    config: TrainerConfig, *, drift_at: timedelta | None = None
) -> tuple[pd.DataFrame, datetime]:
    """Simulate ``config.days`` days and compute every feature of every transaction.

    Args:
        config: the run's simulator settings (seed, days, cards, terminals).
        drift_at: when the simulator's drift begins (offset from its start); None
            for a stationary stream. Days before it are the same either way.

    Returns:
        The feature frame (one row per transaction, in event-time order, with
        ``is_fraud`` and ``day`` added) and the simulation's start (UTC midnight).
    """
    sim_config = SimulatorConfig(
        seed=config.seed,
        n_customers=config.n_customers,
        n_terminals=config.n_terminals,
        label_delay=timedelta(seconds=LABEL_DELAY_S),
        drift_at=drift_at,
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


#: Named feature sets a run can train on (``--features``): the baseline's,
#: the handbook's 15, and every streaming feature the definitions provide.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "baseline": BASELINE_FEATURES,
    "handbook": HANDBOOK_FEATURES,
    "full": (*REQUEST_FEATURES, *CARD_FEATURES, *TERMINAL_FEATURES),
}
