"""Fitting: XGBoost over a small grid chosen on validation rows, then calibration.

The grid is tree depth by fraud-row weight (``1``, a number, or ``sqrt`` of the
genuine/fraud ratio: class imbalance handled without over-weighting). Every point is
fitted on the training rows and scored on the validation rows only; the holdout is
never seen here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb

from services.registry.calibration import Calibration
from services.trainer.config import TrainerConfig
from services.trainer.evaluation import choose_calibration, fit_calibration
from services.trainer.metrics import average_precision
from services.trainer.rows import feature_matrix, label_array

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridPoint:
    """One fitted point of the hyper-parameter grid and its validation AP."""

    max_depth: int
    scale_pos_weight: float
    rule: str
    validation_ap: float


def _pos_weight(rule: str, y: np.ndarray) -> float:
    if rule == "sqrt":
        frauds = max(int(y.sum()), 1)
        return math.sqrt((len(y) - frauds) / frauds)
    return float(rule)


def fit_booster(
    x: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    config: TrainerConfig,
    *,
    max_depth: int,
    scale_pos_weight: float,
) -> xgb.Booster:
    """XGBoost ``binary:logistic`` (histogram trees), columns named ``features``."""
    params = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": max_depth,
        "eta": config.learning_rate,
        "scale_pos_weight": scale_pos_weight,
        "nthread": config.nthread,
        "seed": config.seed,
    }
    data = xgb.DMatrix(x, label=y, feature_names=list(features))
    return xgb.train(params, data, num_boost_round=config.trees)


def search_grid(
    train: pd.DataFrame, valid: pd.DataFrame, features: Sequence[str], config: TrainerConfig
) -> tuple[xgb.Booster, GridPoint, tuple[GridPoint, ...]]:
    """Fit every grid point on ``train``; keep the best validation AP (holdout unseen)."""
    x, y = feature_matrix(train, features), label_array(train)
    x_valid, y_valid = feature_matrix(valid, features), label_array(valid)
    best: tuple[xgb.Booster, GridPoint] | None = None
    points: list[GridPoint] = []
    for depth in config.max_depths():
        for rule in config.pos_weight_rules():
            weight = _pos_weight(rule, y)
            booster = fit_booster(x, y, features, config, max_depth=depth, scale_pos_weight=weight)
            raw = booster.predict(xgb.DMatrix(x_valid, feature_names=list(features)))
            point = GridPoint(depth, weight, rule, average_precision(y_valid, raw))
            points.append(point)
            log.info(
                "grid depth=%d pos_weight=%s: validation AP %.4f", depth, rule, point.validation_ap
            )
            if best is None or point.validation_ap > best[1].validation_ap:
                best = (booster, point)
    assert best is not None  # the config guarantees a non-empty grid
    return best[0], best[1], tuple(points)


def calibrate(
    raw: np.ndarray, y: np.ndarray, config: TrainerConfig
) -> tuple[Calibration, dict[str, float]]:
    """The configured map (``auto``: Platt or isotonic by held-out ECE) and the ECEs seen."""
    if config.calibration == "auto":
        choice = choose_calibration(raw, y, bins=config.ece_bins)
        return choice.calibration, dict(choice.heldout_ece)
    if config.calibration == "identity":
        return Calibration.identity(), {}
    return fit_calibration(raw, y, config.calibration), {}
