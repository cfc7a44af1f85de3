"""The validation gate on real training runs: a worse or uncalibrated candidate is
rejected with the reason named; a good one passes against the champion.

One small simulation is shared; each candidate is a real pipeline run (XGBoost,
calibration, ONNX export, holdout scoring of candidate and champion on the same rows).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from riskstream.v1 import events_pb2
from services.registry.artifact import LoadedArtifact, load_artifact
from services.registry.store import LocalArtifactStore
from services.trainer.config import TrainerConfig
from services.trainer.dataset import BASELINE_FEATURES, simulate_features
from services.trainer.gate import GateBounds, HoldoutReport, evaluate_gate
from services.trainer.pipeline import TrainingRun, publication, train_candidate

CONFIG = TrainerConfig(days=26, burn_in_days=3, validation_days=4, holdout_days=4,
                       n_customers=2000, n_terminals=4000, trees=60, seed=5,
                       grid_max_depth="4", grid_scale_pos_weight="sqrt")  # fmt: skip


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, object]:
    frame, start = simulate_features(CONFIG)
    return frame, start + timedelta(days=CONFIG.days)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path_factory.mktemp("gate-store"))


def _run(data, store, config=CONFIG, features=BASELINE_FEATURES, champion=None) -> TrainingRun:
    frame, end = data
    return train_candidate(
        frame, config, features=features, end=end, store=store, champion=champion
    )


def _loaded(run: TrainingRun, store: LocalArtifactStore) -> LoadedArtifact:
    return load_artifact(store.resolve(run.uri), expected_sha256=run.digest)


@pytest.fixture(scope="module")
def champion(data, store) -> LoadedArtifact:
    run = _run(data, store)
    assert run.gate.passed, run.gate.reasons
    return _loaded(run, store)


def test_an_equally_good_candidate_passes_against_the_champion(data, store, champion) -> None:
    run = _run(data, store, config=replace(CONFIG, seed=6), champion=champion)
    assert run.gate.passed, run.gate.reasons
    assert run.gate.champion_version == champion.metadata.version
    # Both were scored on the very same holdout rows.
    assert run.champion_metrics["rows"] == run.holdout_metrics["rows"]
    event = publication(run, CONFIG, has_champion=True, reason="test")
    assert event.status == events_pb2.MODEL_STATUS_CANARY
    assert event.rollout.canary_weight == CONFIG.canary_weight and not event.rejection_reasons
    assert event.model_card_json and event.sha256 == run.digest


def test_a_worse_candidate_is_rejected_naming_average_precision(data, store, champion) -> None:
    # Amount and time flags only: no card or terminal history.
    run = _run(data, store, features=("tx_amount", "tx_is_weekend", "tx_is_night"),
               champion=champion)  # fmt: skip
    assert not run.gate.passed
    assert any(r.startswith("average_precision:") for r in run.gate.reasons), run.gate.reasons
    assert champion.metadata.version in " ".join(run.gate.reasons)
    event = publication(run, CONFIG, has_champion=True, reason="test")
    assert event.status == events_pb2.MODEL_STATUS_REJECTED
    assert list(event.rejection_reasons) == list(run.gate.reasons)
    assert event.rollout.canary_weight == 0.0
    assert '"passed":false' in event.model_card_json


def test_an_uncalibrated_candidate_is_rejected_naming_ece(data, store, champion) -> None:
    # Fraud rows weighted 50x and no calibration map: scores far above the fraud rate.
    loud = replace(CONFIG, grid_scale_pos_weight="50", calibration="identity")
    run = _run(data, store, config=loud, champion=champion)
    assert not run.gate.passed
    assert any(r.startswith("ece:") for r in run.gate.reasons), run.gate.reasons
    assert run.holdout_metrics["ece"] > CONFIG.gate_max_ece


def test_every_failed_check_is_reported_not_just_the_first() -> None:
    bounds = GateBounds(max_ap_drop=0.01, max_ece=0.02, max_disparity=0.05,
                        parity_tolerance=1e-5, latency_budget_ms=1.0)  # fmt: skip
    candidate = HoldoutReport("", {"average_precision": 0.5, "ece": 0.1},
                              {"amount_band": 0.2, "day_type": 0.01})  # fmt: skip
    champ = HoldoutReport("v1", {"average_precision": 0.7, "ece": 0.01})
    result = evaluate_gate(candidate, champ, parity_max_diff=1e-3, latency_p99_ms=5.0,
                           bounds=bounds)  # fmt: skip
    kinds = [r.split(":")[0] for r in result.reasons]
    assert kinds == ["average_precision", "ece", "disparity", "parity", "latency"]
    assert "amount_band" in result.reasons[2] and "day_type" not in " ".join(result.reasons)


def test_without_a_champion_only_absolute_checks_apply(tmp_path: Path) -> None:
    bounds = GateBounds(0.01, 0.02, 0.05, 1e-5, 1.0)
    alone = HoldoutReport("", {"average_precision": 0.1, "ece": 0.01})
    result = evaluate_gate(alone, None, parity_max_diff=0.0, latency_p99_ms=0.1, bounds=bounds)
    assert result.passed and result.champion_version is None
