"""Fixtures shared by the trainer's integration tests."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis

from services.producer.config import handbook_dataset_path
from services.stack import StackConfig, load_stack_config
from services.trainer.fdh_replay import ReplayReport, replay_into_offline_store

#: 15 days of the handbook's simulator (one card in six): enough for 4 training days,
#: the 7-day label gap, 2 validation and 2 holdout days, and for the terminal risk
#: windows shifted by the label delay to see labels.
SLICE_START = datetime(2018, 4, 1, tzinfo=UTC)
SLICE_END = datetime(2018, 4, 16, tzinfo=UTC)


@dataclass(frozen=True)
class ReplayedSlice:
    """A slice of the dataset and the offline store the real pipeline made from it."""

    dataset: Path
    offline_root: Path
    report: ReplayReport
    start: datetime
    end: datetime


def _one_card_in_six(source: Path, target: Path) -> None:
    # The file is in time order: the first 15 days are within its first 160k rows.
    frame = pd.read_csv(source, parse_dates=["TX_DATETIME"], nrows=160_000)
    assert frame["TX_DATETIME"].max() >= SLICE_END.replace(tzinfo=None)
    frame = frame.loc[
        (frame["TX_DATETIME"] >= SLICE_START.replace(tzinfo=None))
        & (frame["TX_DATETIME"] < SLICE_END.replace(tzinfo=None))
        & (frame["CUSTOMER_ID"] % 6 == 0)
    ]
    with gzip.open(target, "wt") as handle:
        frame.to_csv(handle, index=False, date_format="%Y-%m-%d %H:%M:%S")


@pytest.fixture(scope="session")
def replayed_slice(
    running_stack: StackConfig, tmp_path_factory: pytest.TempPathFactory
) -> ReplayedSlice:
    """The slice through Kafka → the Flink feature job → the offline writer, once a session.

    The replay starts its own Flink job (a minute or two here), so the tests that need
    a real offline store share this one rather than each replaying. They only read it.
    """
    work = tmp_path_factory.mktemp("replayed-slice")
    dataset = work / "slice.csv.gz"
    _one_card_in_six(handbook_dataset_path(), dataset)
    root = work / "offline"
    report = replay_into_offline_store(
        dataset, root, start=SLICE_START, end=SLICE_END, stack=running_stack,
        work_dir=work / "replay", timeout_s=1200, progress=print,
    )  # fmt: skip
    return ReplayedSlice(dataset, root, report, SLICE_START, SLICE_END)


@pytest.fixture(scope="module")
def feast_project() -> Iterator[tuple[str, str]]:
    """The stack's Redis URL and a Feast project no one else uses (keys removed after)."""
    url = f"redis://127.0.0.1:{load_stack_config().redis.port}/0"
    name = f"rs_test_{uuid.uuid4().hex[:12]}"
    yield url, name
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=b"*" + name.encode(), count=1000))
    if keys:
        client.delete(*keys)
    client.close()
