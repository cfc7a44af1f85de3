"""Trainer: turns labelled transactions into a verified, servable model artifact.

Today it holds the baseline procedure behind ``riskstream train-baseline``
(simulated data → reference features → XGBoost → calibration → thresholds → ONNX
with a parity check → registry artifact). Rooms: :mod:`config` (settings),
:mod:`dataset` (data and temporal split), :mod:`evaluation` (calibration, ECE,
thresholds; kernels), :mod:`export` (ONNX and parity), :mod:`baseline` (the
procedure), :mod:`errors`.
"""

from services.trainer.config import TrainerConfig
from services.trainer.dataset import BASELINE_FEATURES
from services.trainer.errors import ParityError, TrainingFailed

__all__ = ["BASELINE_FEATURES", "ParityError", "TrainerConfig", "TrainingFailed"]
