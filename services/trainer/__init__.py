"""Trainer: turns labelled transactions into gated, carded, signed model versions.

Rooms:

* settings — :mod:`config` (``RISKSTREAM_TRAINER_*``);
* kernels — :mod:`evaluation` (calibration, ECE, thresholds), :mod:`metrics` (AUC,
  AP, Card Precision@k, recall at FPR), :mod:`segments` (bias audit), :mod:`gate`
  (the validation gate), :mod:`distributions` (reference distributions);
* data — :mod:`dataset` (simulated rows, feature sets), :mod:`training_set` (Feast
  point-in-time training set from the offline store), :mod:`fdh_replay`;
* the run — :mod:`pipeline` (split, grid, calibrate, export, holdout, gate, write),
  :mod:`export` (ONNX and parity), :mod:`baseline` (simulated first champion),
  :mod:`runner` (offline store → run → ``model-updates``), :mod:`handbook` (the
  handbook's evaluation protocol);
* wiring — :mod:`__main__` (the ``retrain-requests`` consumer), :mod:`errors`.

Heavy libraries (XGBoost, ONNX, Feast) load in the modules that need them; this
package imports none of them.
"""

from services.trainer.config import TrainerConfig
from services.trainer.errors import ParityError, TrainingFailed

__all__ = ["ParityError", "TrainerConfig", "TrainingFailed"]
