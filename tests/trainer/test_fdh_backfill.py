"""The reference backfill fills an offline store that Feast reads back as the reference.

A small handbook-format file (two weeks, a dozen cards, frauds, so the delayed
terminal windows see labels) is backfilled; the training set built through Feast
(DuckDB offline store, the stack's Redis as its online store) for the second week
must equal :func:`reference_features` of the same transactions, every feature.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from services.feature_store.definitions import CARD, FEATURE_SET_VERSION, TERMINAL
from services.feature_store.reference import load_fdh, reference_features
from services.trainer.fdh_backfill import backfill_offline_store
from services.trainer.handbook import FEATURE_SETS
from services.trainer.training_set import build_training_set

pytestmark = [pytest.mark.integration]

START = datetime(2018, 4, 2, tzinfo=UTC)  # a Monday: weekends fall inside
DAYS = 15
ROWS_FROM = START + timedelta(days=8)  # after the label delay: terminal risks are known


def _dataset(path: Path, rows_per_day: int = 60, seed: int = 7) -> Path:
    """A time-ordered handbook CSV (gzip) with unique seconds and ~4 % frauds."""
    rng = np.random.default_rng(seed)
    n = DAYS * rows_per_day
    seconds = np.sort(rng.choice(DAYS * 86_400, size=n, replace=False))
    fraud = rng.random(n) < 0.04
    frame = pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(n),
            "TX_DATETIME": (pd.Timestamp(START).tz_localize(None) + pd.to_timedelta(seconds, "s"))
            .strftime("%Y-%m-%d %H:%M:%S"),
            "CUSTOMER_ID": rng.integers(0, 12, n),
            "TERMINAL_ID": rng.integers(0, 6, n),
            "TX_AMOUNT": np.round(rng.gamma(2.0, 40.0, n), 2),
            "TX_TIME_SECONDS": seconds,
            "TX_TIME_DAYS": seconds // 86_400,
            "TX_FRAUD": fraud.astype(int),
            "TX_FRAUD_SCENARIO": np.where(fraud, 3, 0),
        }
    )  # fmt: skip
    with gzip.open(path, "wt") as out:
        frame.to_csv(out, index=False)
    return path


def test_backfilled_store_gives_the_reference_features_through_feast(
    tmp_path: Path, feast_project: tuple[str, str]
) -> None:
    from services.feature_store.feast_store import make_store  # slow import

    dataset = _dataset(tmp_path / "fdh.csv.gz")
    root = tmp_path / "offline"
    end = START + timedelta(days=DAYS)
    report = backfill_offline_store(dataset, root, start=START, end=end)
    assert report.transactions == DAYS * 60 and report.feature_rows == 2 * report.transactions

    for entity_type in (CARD, TERMINAL):  # one row per transaction, in arrival order
        log = pads.dataset(
            root / "silver" / "features" / f"entity_type={entity_type}", format="parquet"
        ).to_table().to_pandas().sort_values("computed_at")  # fmt: skip
        assert len(log) == report.transactions and log["computed_at"].is_unique
        assert log["event_time"].is_monotonic_increasing
        assert set(log["feature_set_version"]) == {FEATURE_SET_VERSION}

    url, project = feast_project
    store = make_store(url, root, tmp_path / "registry.db", project=project)
    features = FEATURE_SETS["full"]
    rows = build_training_set(store, root, start=ROWS_FROM, end=end, features=features)
    built = rows.attrs["report"]
    assert built.uncovered == {CARD: 0, TERMINAL: 0} and built.restored == {CARD: 0, TERMINAL: 0}

    transactions, labels = load_fdh(dataset)
    expected = reference_features(transactions, labels)
    expected = expected.loc[expected["event_time"] >= ROWS_FROM].reset_index(drop=True)
    assert rows["transaction_id"].tolist() == expected["transaction_id"].tolist()
    assert (rows["event_time"] == expected["event_time"]).all()
    is_fraud = labels.set_index("transaction_id").loc[rows["transaction_id"], "is_fraud"]
    assert (rows["is_fraud"].to_numpy() == is_fraud.to_numpy()).all()
    assert rows["is_fraud"].sum() > 0 and expected["terminal_risk_7d"].gt(0).any()
    got, want = rows[list(features)].to_numpy(), expected[list(features)].to_numpy()
    differ = [f for i, f in enumerate(features) if not np.allclose(got[:, i], want[:, i],
                                                                   rtol=0, atol=1e-9)]  # fmt: skip
    assert differ == []
