"""Feast's point-in-time join over our offline feature log returns the logged values.

The feature log (silver Parquet, written by :class:`ParquetOfflineWriter` exactly as
the offline writer lands the ``features`` topic) holds, for each transaction, the
card's and the terminal's vectors as of that transaction. Asking Feast's
``get_historical_features`` for (entity, event time) must give back those values:
what training sees is what serving saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskstream.v1 import events_pb2
from services.feature_store.definitions import (
    CARD,
    CARD_FEATURES,
    FEATURE_SET_VERSION,
    TERMINAL,
    TERMINAL_FEATURES,
)
from services.feature_store.offline import ParquetOfflineWriter
from services.feature_store.redis_layout import FEATURE_VIEWS
from services.feature_store.reference import load_fdh, reference_features
from services.producer.config import handbook_dataset_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATASET = handbook_dataset_path()


def _rows(features: pd.DataFrame, entity_type: str, names: tuple[str, ...]) -> list:
    key = "card_id" if entity_type == CARD else "terminal_id"
    rows = []
    event_ms = features["event_time"].astype("int64").to_numpy() // 1_000_000
    for i, record in enumerate(features.itertuples(index=False)):
        row = events_pb2.FeatureRow(
            entity_type=entity_type, entity_id=getattr(record, key),
            transaction_id=record.transaction_id, feature_set_version=FEATURE_SET_VERSION,
        )  # fmt: skip
        row.event_time.FromMilliseconds(int(event_ms[i]))
        # Arrival order decides between rows with equal event times, as in the stream.
        row.computed_at.FromMilliseconds(1_700_000_000_000 + i)
        row.values.update({name: float(getattr(record, name)) for name in names})
        rows.append(row)
    return rows


def test_get_historical_features_equals_the_feature_log(
    redis_url: str, project: str, tmp_path: Path
) -> None:
    transactions, labels = load_fdh(
        DATASET,
        start=pd.Timestamp("2018-05-01", tz="UTC"),
        end=pd.Timestamp("2018-05-03", tz="UTC"),
    )
    logged = reference_features(transactions, labels)
    writer = ParquetOfflineWriter(tmp_path / "offline")
    writer.write_feature_rows(_rows(logged, CARD, CARD_FEATURES))
    writer.write_feature_rows(_rows(logged, TERMINAL, TERMINAL_FEATURES))

    from services.feature_store.feast_store import make_store  # feast: 15-25 s cold

    store = make_store(redis_url, tmp_path / "offline", tmp_path / "registry.db", project=project)
    # At equal event times the later arrival is what the log holds last: keep those.
    last = logged.drop_duplicates(subset=["card_id", "event_time"], keep="last")
    last = last.drop_duplicates(subset=["terminal_id", "event_time"], keep="last")
    sample = last.sample(n=1500, random_state=7).reset_index(drop=True)
    entity_df = pd.DataFrame(
        {
            "card_id": sample["card_id"],
            "terminal_id": sample["terminal_id"],
            "event_timestamp": sample["event_time"],
            "row": np.arange(len(sample)),
        }
    )
    refs = [f"{FEATURE_VIEWS[CARD]}:{n}" for n in CARD_FEATURES] + [
        f"{FEATURE_VIEWS[TERMINAL]}:{n}" for n in TERMINAL_FEATURES
    ]
    got = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    assert len(got) == len(sample), "no labelled row may be dropped by the join"
    got = got.sort_values("row").reset_index(drop=True)
    for name in (*CARD_FEATURES, *TERMINAL_FEATURES):
        np.testing.assert_allclose(
            got[name].to_numpy(dtype=float), sample[name].to_numpy(dtype=float),
            rtol=1e-9, atol=1e-9, err_msg=name,
        )  # fmt: skip
