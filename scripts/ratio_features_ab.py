"""Offline A/B: the full streaming feature set with and without amount ratios derived
from its own card aggregates, through the handbook's chapter-5 protocol.

Not a pipeline feature set (yet): the ratios are computed here from the reference
implementation's rows, so this measures whether they are worth adding to the
definitions, the kernel, the Flink job and the scorer's request-time rules. Each
ratio is a pure function of aggregates the pipeline already stores:

* ``card_amount_mean_7_30d``: the card's mean amount over (t - 30 d, t - 7 d], from the
  30-day and 7-day counts and sums (the card's level before a recent compromise,
  which the handbook's compromised-card scenario inflates for 14 days);
* ``amount_to_mean_7_30d``, ``amount_to_mean_7d``, ``amount_to_mean_1d``: the
  transaction's amount over those means;
* ``max_7d_to_mean_7_30d``: the card's largest amount this week over the older mean.

A ratio whose denominator has no transactions is -1. Usage::

    .venv/bin/python scripts/ratio_features_ab.py [GRID [OUT.json [THREADS [SETS]]]]

GRID is a name in ``handbook.GRIDS`` (default ``handbook``); SETS is ``both`` (default)
or ``ratios`` (only the full set with the ratios, when the full set's own run under the
same grid is already on record).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd

from services.feature_store.reference import load_fdh, reference_features
from services.producer.config import handbook_dataset_path
from services.trainer import handbook

RATIO_FEATURES = (
    "card_amount_mean_7_30d",
    "amount_to_mean_7_30d",
    "amount_to_mean_7d",
    "amount_to_mean_1d",
    "max_7d_to_mean_7_30d",
)


def _ratio(numerator: pd.Series, denominator: pd.Series) -> np.ndarray:
    return np.where(denominator > 0, numerator / np.maximum(denominator, 1e-9), -1.0)


def add_ratio_features(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with :data:`RATIO_FEATURES` added (a copy)."""
    out = rows.copy()
    older_count = out["card_tx_count_30d"] - out["card_tx_count_7d"]
    older_sum = out["card_amount_sum_30d"] - out["card_amount_sum_7d"]
    out["card_amount_mean_7_30d"] = np.where(
        older_count > 0, older_sum / np.maximum(older_count, 1), -1.0
    )
    out["amount_to_mean_7_30d"] = _ratio(out["tx_amount"], out["card_amount_mean_7_30d"])
    out["amount_to_mean_7d"] = _ratio(out["tx_amount"], out["card_amount_mean_7d"])
    out["amount_to_mean_1d"] = _ratio(out["tx_amount"], out["card_amount_mean_1d"])
    out["max_7d_to_mean_7_30d"] = _ratio(out["card_amount_max_7d"], out["card_amount_mean_7_30d"])
    return out


def main(grid: str, out: str | None, nthread: int, sets: str = "both") -> None:
    began = time.time()
    start, end = handbook.replay_window()
    transactions, labels = load_fdh(handbook_dataset_path(), start, end, sorted_input=True)
    rows = reference_features(transactions, labels)
    known = labels.drop_duplicates("transaction_id", keep="last")[["transaction_id", "is_fraud"]]
    rows = rows.merge(known, on="transaction_id", how="left")
    rows["is_fraud"] = rows["is_fraud"].fillna(0).astype(int)
    first, last = handbook.rows_window()
    rows = rows.loc[(rows["event_time"] >= first) & (rows["event_time"] < last)]
    rows = add_ratio_features(rows.reset_index(drop=True))
    full = list(handbook.FEATURE_SETS["full"])
    results = {}
    runs = [("full", full)] if sets == "both" else []
    runs.append(("full+ratios", [*full, *RATIO_FEATURES]))
    for name, features in runs:
        summary = handbook.evaluate(rows, features, nthread=nthread, grid=grid).summary()
        results[name] = {m: summary[m] for m in handbook.METRICS}
        line = ", ".join(
            f"{m} {summary[m]['mean']:.4f} ± {summary[m]['std']:.4f}" for m in handbook.METRICS
        )
        print(f"{name}: {line} ({time.time() - began:.0f} s)", flush=True)
    if out:
        with open(out, "w") as handle:
            json.dump({"grid": grid, "results": results}, handle, indent=1)


if __name__ == "__main__":
    argv = sys.argv[1:]
    main(
        argv[0] if argv else "handbook",
        argv[1] if len(argv) > 1 else None,
        int(argv[2]) if len(argv) > 2 else 2,
        argv[3] if len(argv) > 3 else "both",
    )
