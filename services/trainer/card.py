"""The model card of a training run: who, what for, on which data, how well, where not.

Builds :class:`services.registry.model_card.ModelCard` from a run's results; the
registry renders it (Markdown) and carries it on ``model-updates``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.feature_store.definitions import FEATURE_SET_VERSION
from services.registry.metadata import ModelMetadata
from services.registry.model_card import ModelCard
from services.trainer.config import TrainerConfig
from services.trainer.gate import GateResult
from services.trainer.holdout import HoldoutResult

INTENDED_USE = (
    "Real-time fraud score for card-present and card-not-present payment authorisations, "
    "served by riskstream's scorer to approve, send to manual review or decline. Not for "
    "credit decisions, customer profiling or any use outside payment fraud screening."
)
LIMITATIONS = (
    "Trained on labels known after a fixed label delay: fraud patterns newer than the "
    "training window are not represented.",
    "Terminal fraud risk features lag by the label delay and are 0 for new terminals.",
    "Card history features start empty for new cards: first transactions of a card are "
    "scored mainly on amount and time.",
    "Calibration holds for the fraud rate of the training period; a shift in base rate "
    "moves the meaning of the thresholds.",
)
FAILURE_MODES = (
    "Redis unavailable or slow: the scorer falls back to amount/velocity rules "
    "(route=fallback), not this model.",
    "Feature pipeline lag: stale card features understate velocity (the response carries "
    "the feature age).",
    "Card-testing bursts faster than the 10-minute window's refresh are seen late.",
    "Segments with few frauds in the holdout (see metrics by segment) have unreliable "
    "recall estimates.",
)

#: Champion holdout metrics repeated in the card's gate section, for comparison.
CHAMPION_IN_CARD = ("roc_auc", "card_precision_at_100", "ece", "decline_rate")


def build_model_card(
    metadata: ModelMetadata,
    config: TrainerConfig,
    *,
    holdout: HoldoutResult,
    heldout_ece: Mapping[str, float],
    gate: GateResult,
    champion_metrics: Mapping[str, float],
    data_sources: Sequence[str],
) -> ModelCard:
    """The card of the version ``metadata`` describes."""
    return ModelCard(
        model_name=metadata.model_name,
        version=metadata.version,
        owner=config.owner,
        intended_use=INTENDED_USE,
        created_at=metadata.created_at,
        train_window=metadata.train_window,
        validation_window=metadata.validation_window,
        data_sources=tuple(data_sources),
        feature_set_version=FEATURE_SET_VERSION,
        feature_names=metadata.feature_names,
        metrics=dict(metadata.metrics),
        segment_metrics={
            name: {k: float(v) for k, v in entry.items()}
            for name, entry in holdout.audit.metrics.items()
        },
        calibration={
            "method": metadata.calibration.method,
            "ece_holdout": float(holdout.metrics["ece"]),
            "ece_raw_holdout": float(holdout.metrics["ece_raw"]),
            **{f"ece_heldout_{m}": float(v) for m, v in heldout_ece.items()},
        },
        gate={
            **gate.to_dict(),
            **{
                f"champion_{k}": float(v)
                for k, v in champion_metrics.items()
                if k in CHAMPION_IN_CARD
            },
        },
        limitations=LIMITATIONS,
        failure_modes=FAILURE_MODES,
        high_impact=config.high_impact,
    )
