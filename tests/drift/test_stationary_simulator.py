"""The drift monitor on the simulator scored by a real model, at its default thresholds.

The synthetic tests (test_monitor.py) draw independent rows from fixed distributions.
A real stream is not like that: a window of 10,000 rows is a day of the same cards,
with the day's rhythm in it. This test trains the baseline through the full pipeline
(its reference.json is what the monitor compares against), then replays 18 further
days of the same simulator, scored as served (ONNX, then calibration), with each
label arriving a label delay after its transaction, through the monitor with
:class:`~services.drift.config.DriftConfig`'s defaults. The stream then drifts (the
simulator's new fraud pattern and amount shift) and the monitor must notice.

Rows are replayed one per millisecond of the monitor's clock, so windows close on
their row count (10,000), as they do under live traffic of more than ~170 rows/s.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.drift.config import DriftConfig
from services.drift.monitor import DriftMonitor, Labelled, Outcome, Scored
from services.drift.testing import champion_of
from services.feature_store.definitions import LABEL_DELAY_S
from services.registry.artifact import REFERENCE_FILE, load_artifact
from services.registry.store import LocalArtifactStore
from services.trainer.config import TrainerConfig
from services.trainer.dataset import BASELINE_FEATURES, DAY_COLUMN, simulate_features
from services.trainer.holdout import artifact_raw
from services.trainer.pipeline import train_candidate

pytestmark = pytest.mark.slow

TRAIN_DAYS, STATIONARY_DAYS, DRIFTED_DAYS = 45, 18, 6
DRIFT_DAY = TRAIN_DAYS + STATIONARY_DAYS
CONFIG = TrainerConfig(days=TRAIN_DAYS, trees=60, seed=5)  # 5,000 cards: ~10k tx a day


def _replay(monitor: DriftMonitor, stream: pd.DataFrame, score: np.ndarray, version: str):
    """Feed decisions and (a label delay later, in event time) labels; returns
    (event time of the decision, outcome) for each outcome with a report or request."""
    names = [n for n in monitor.champion.reference.features]  # type: ignore[union-attr]
    values = stream[names].to_numpy()
    event_ms = (stream["event_time"].astype("int64") // 1_000_000).to_numpy()
    label_ms = event_ms + LABEL_DELAY_S * 1000
    ids, fraud = stream["transaction_id"].to_numpy(), stream["is_fraud"].to_numpy()
    outcomes: list[tuple[int, Outcome]] = []
    labelled = 0
    for i in range(len(stream)):
        while labelled < len(stream) and label_ms[labelled] <= event_ms[i]:
            out = monitor.update(Labelled(ids[labelled], bool(fraud[labelled])))
            labelled += 1
            if out.request:
                outcomes.append((int(event_ms[i]), out))
        row = dict(zip(names, values[i].tolist(), strict=True))
        out = monitor.update(
            Scored(ids[i], i, int(event_ms[i]), version, "champion", float(score[i]), row)
        )
        if out.reports or out.request:
            outcomes.append((int(event_ms[i]), out))
    return outcomes


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory):
    days = TRAIN_DAYS + STATIONARY_DAYS + DRIFTED_DAYS
    frame, start = simulate_features(replace(CONFIG, days=days), drift_at=timedelta(days=DRIFT_DAY))
    store = LocalArtifactStore(tmp_path_factory.mktemp("models"))
    run = train_candidate(
        frame.loc[frame[DAY_COLUMN] < TRAIN_DAYS].reset_index(drop=True), CONFIG,
        features=BASELINE_FEATURES, end=start + timedelta(days=TRAIN_DAYS), store=store,
    )  # fmt: skip
    artifact = load_artifact(store.resolve(run.uri), expected_sha256=run.digest)
    reference = json.loads((Path(artifact.directory) / REFERENCE_FILE).read_text())
    stream = frame.loc[frame[DAY_COLUMN] >= TRAIN_DAYS].reset_index(drop=True)
    score = artifact.metadata.calibration.apply(artifact_raw(artifact, stream))

    config = DriftConfig(metrics_port=0, window_s=3_600.0, max_model_age_s=0.0,
                         max_data_age_s=0.0)  # fmt: skip
    assert (config.window_rows, config.min_psi) == (10_000, 0.05)  # the defaults
    monitor = DriftMonitor(config.monitor)
    monitor.follow(champion_of(reference, version=run.metadata.version))
    drift_ms = int((start + timedelta(days=DRIFT_DAY)).timestamp() * 1000)
    return monitor, _replay(monitor, stream, score, run.metadata.version), drift_ms


def test_a_stationary_simulator_stream_raises_no_retrain_request(replayed) -> None:
    _, outcomes, drift_ms = replayed
    before = [out for at, out in outcomes if at < drift_ms]
    judged = [r for out in before for r in out.reports if r.evaluated]
    assert len(judged) >= 15, "many windows of the stationary stream were judged"
    assert not any(out.request for out in before)
    assert not any(out.confirmed for out in before)
    # The calendar flags are not tested; the score is tested and reported only.
    tested = {r.column for r in judged[0].results}
    assert "tx_is_weekend" not in tested and "tx_is_night" not in tested
    assert "__score__" in tested and "tx_amount" in tested


def test_the_simulators_drift_raises_a_request_naming_the_amount_features(replayed) -> None:
    monitor, outcomes, drift_ms = replayed
    after = [(at, out) for at, out in outcomes if at >= drift_ms and out.request]
    assert after, "the drift raised a retrain request"
    at, first = after[0]
    assert at - drift_ms < 2 * 86_400_000, "within two simulated days of the drift"
    request = first.request
    assert request is not None and request.reason == "feature_drift"
    named = {e.feature for e in request.evidence}
    assert {"tx_amount", "card_amount_mean_1d"} <= named, named
    assert request.window_start_ms >= drift_ms - 86_400_000
    assert monitor.windows_judged >= 20
