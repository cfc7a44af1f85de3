"""``train-baseline``: a first model from simulated data, through the full pipeline.

The producer's simulator (deterministic per seed) gives ``config.days`` days of
labelled transactions; the reference implementation of the feature definitions
(proved equal to the streaming job) computes their features; the first
``burn_in_days`` are dropped (30-day windows still filling), and the rest goes
through :func:`services.trainer.pipeline.train_candidate` like any other run:
grid, calibration, ONNX export, holdout metrics, gate, model card, reference
distributions, signed artifact. This is how a stack with no model gets its first
champion (the demo, the load tests); ``riskstream train`` trains from the offline
store instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.registry.artifact import LoadedArtifact
from services.registry.store import LocalArtifactStore
from services.trainer.config import TrainerConfig
from services.trainer.dataset import BASELINE_FEATURES, simulate_features
from services.trainer.pipeline import TrainingRun, train_candidate


def train_baseline(
    config: TrainerConfig,
    *,
    store: LocalArtifactStore,
    signing_key: Ed25519PrivateKey | None = None,
    champion: LoadedArtifact | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> TrainingRun:
    """Simulate, compute features, and run the pipeline on :data:`BASELINE_FEATURES`.

    Raises:
        TrainingFailed: a side of the split holds one class, or the export failed.
        ParityError: ONNX and XGBoost disagree beyond ``config.parity_tolerance``.
    """
    frame, start = simulate_features(config)
    return train_candidate(
        frame,
        config,
        features=BASELINE_FEATURES,
        end=start + timedelta(days=config.days),
        store=store,
        champion=champion,
        signing_key=signing_key,
        data_sources=(
            f"riskstream simulator, seed {config.seed}, {config.days} days, "
            f"{config.n_customers} cards, {config.n_terminals} terminals",
            "features: services.feature_store.reference (equal to the Flink job's)",
        ),
        trainer="baseline",
        version_prefix="baseline-",
        clock=clock,
    )
