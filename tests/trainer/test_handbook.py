"""The handbook protocol: folds and the test-set rule on small frames, the whole grid on a
synthetic frame, and the replay → offline store → training-set path on a few real days
(Kafka, the Flink feature job, the offline writer, Feast)."""

from __future__ import annotations

import doctest
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from services.feature_store.definitions import HANDBOOK_FEATURES
from services.feature_store.reference import load_fdh, reference_features
from services.stack import StackConfig
from services.trainer import handbook
from services.trainer.handbook import TEST_FOLDS, VALIDATION_FOLDS, Fold, fold_sets

if TYPE_CHECKING:
    from tests.trainer.conftest import ReplayedSlice


def test_doctests() -> None:
    assert doctest.testmod(handbook).failed == 0


def test_folds_are_the_handbooks() -> None:
    assert [f.train_start.date().isoformat() for f in TEST_FOLDS] == [
        "2018-08-15", "2018-08-08", "2018-08-01", "2018-07-25",
    ]  # fmt: skip
    assert [f.test_start.date().isoformat() for f in TEST_FOLDS] == [
        "2018-08-29", "2018-08-22", "2018-08-15", "2018-08-08",
    ]  # fmt: skip
    assert [f.train_start.date().isoformat() for f in VALIDATION_FOLDS] == [
        "2018-07-11", "2018-07-04", "2018-06-27", "2018-06-20",
    ]  # fmt: skip
    # Every validation test week ends before the first test fold's training starts
    # would leak test labels into selection: they may overlap training weeks only.
    assert max(f.test_end for f in VALIDATION_FOLDS) <= min(f.test_start for f in TEST_FOLDS)
    start, end = handbook.replay_window()
    assert (start, end) == (datetime(2018, 5, 13, tzinfo=UTC), datetime(2018, 9, 5, tzinfo=UTC))


CARDS = ("trained", "gap0", "gap5", "gap6", "clean")


def test_known_compromised_cards_leave_the_test_set_day_by_day() -> None:
    fold = Fold(datetime(2018, 8, 1, tzinfo=UTC))
    day = timedelta(days=1)

    def at(offset_days: float) -> pd.Timestamp:
        return pd.Timestamp(fold.train_start + offset_days * day)

    rows = pd.DataFrame(
        [
            (at(0.5), "trained", 1),  # fraud in training: never tested
            (at(7.5), "gap0", 1),  # fraud on gap day 0: known from test day 1
            (at(12.5), "gap5", 1),  # fraud on gap day 5: known from test day 6
            (at(13.5), "gap6", 1),  # gap day 6: known only after the test week
            *[(at(14 + d + 0.5), c, 0) for d in range(7) for c in CARDS],
            (at(21.5), "after", 0),  # after the test week
        ],
        columns=["event_time", "card_id", "is_fraud"],
    )  # fmt: skip
    rows["event_time"] = pd.to_datetime(rows["event_time"], utc=True)
    sets = fold_sets(rows, fold)
    assert sets.train["card_id"].tolist() == ["trained"]
    test_day = ((sets.test["event_time"] - pd.Timestamp(fold.test_start)) // day).tolist()
    tested = {(d, c) for d, c in zip(test_day, sets.test["card_id"], strict=True)}
    for d in range(7):
        assert (d, "trained") not in tested and (d, "clean") in tested and (d, "gap6") in tested
        assert ((d, "gap0") in tested) == (d == 0)
        assert ((d, "gap5") in tested) == (d < 6)
    assert "after" not in set(sets.test["card_id"])


def test_evaluate_picks_on_validation_and_reports_every_test_fold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two grid points and two tree counts keep it short; the selection is the same.
    grid = {"max_depth": (2, 3), "learning_rate": (0.3,), "class_weight": ("none",)}
    monkeypatch.setitem(handbook.GRIDS, "test", (grid, (10, 30)))
    rng = np.random.default_rng(3)
    start, end = handbook.rows_window()
    n = 12_000
    seconds = rng.uniform(0, (end - start).total_seconds(), n)
    rows = pd.DataFrame(
        {
            "event_time": pd.Timestamp(start) + pd.to_timedelta(np.sort(seconds), unit="s"),
            "card_id": rng.integers(0, 300, n).astype(str),
            "signal": rng.normal(size=n),
            "noise": rng.normal(size=n),
        }
    )
    rows["is_fraud"] = (rows["signal"] + 0.3 * rng.normal(size=n) > 2.0).astype(np.int8)
    result = handbook.evaluate(rows, ["signal", "noise"], nthread=1, grid="test")
    summary = result.summary()
    for metric in handbook.METRICS:
        assert len(summary[metric]["folds"]) == 4
        assert summary[metric]["chosen"]["n_estimators"] in (10, 30)
        assert summary[metric]["chosen"]["max_depth"] in (2, 3)
    assert summary["roc_auc"]["mean"] > 0.95 and summary["average_precision"]["mean"] > 0.5
    starts = [f["train_start"] for f in summary["folds"]]
    assert starts == ["2018-08-15", "2018-08-08", "2018-08-01", "2018-07-25"]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_replayed_days_land_in_the_offline_store_and_train_as_the_reference(
    running_stack: StackConfig, replayed_slice: ReplayedSlice, tmp_path: Path
) -> None:
    """15 days through Kafka → Flink → offline writer; the last two days' training set
    (through Feast) equals the reference implementation on the handbook's features,
    the terminal risk windows (shifted by the 7-day label delay) included."""
    from services.feature_store.feast_store import make_store
    from services.trainer.training_set import build_training_set

    dataset, root = replayed_slice.dataset, replayed_slice.offline_root
    start, end = replayed_slice.start, replayed_slice.end
    report = replayed_slice.report
    assert report.rejected == 0 and report.job_dead_letters == 0
    assert report.feature_rows >= 2 * report.transactions and report.labels == report.transactions

    redis_url = f"redis://127.0.0.1:{running_stack.redis.port}/0"
    store = make_store(redis_url, root, tmp_path / "registry.db",
                       project=f"rs_test_{uuid.uuid4().hex[:10]}")  # fmt: skip
    checked_from = end - timedelta(days=2)
    rows = build_training_set(store, root, start=checked_from, end=end, features=HANDBOOK_FEATURES)
    assert rows.attrs["report"].uncovered == {"card": 0, "terminal": 0}

    transactions, labels = load_fdh(dataset, start, end, sorted_input=True)
    want = reference_features(transactions, labels)
    want["is_fraud"] = labels["is_fraud"].astype(np.int8).to_numpy()
    want = want.loc[want["event_time"] >= checked_from].sort_values(
        ["event_time", "transaction_id"], kind="stable", ignore_index=True
    )
    assert want["terminal_risk_7d"].max() > 0, "no terminal risk: the check would be weak"
    assert rows["transaction_id"].tolist() == want["transaction_id"].tolist()
    assert (rows["is_fraud"].to_numpy() == want["is_fraud"].to_numpy()).all()
    for name in HANDBOOK_FEATURES:
        np.testing.assert_allclose(
            rows[name].to_numpy(), want[name].to_numpy(), rtol=1e-9, atol=1e-9, err_msg=name
        )


def test_the_cli_offers_every_grid() -> None:
    from services.cli.__main__ import build_parser

    parser = build_parser()
    for name in handbook.GRIDS:
        args = parser.parse_args(["evaluate", "--dataset", "x.csv", "--grid", name])
        assert args.grid == name
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--dataset", "x.csv", "--grid", "nope"])
