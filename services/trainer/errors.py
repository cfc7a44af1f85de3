"""Errors of the trainer.

    RiskstreamError
    └── TrainingFailed        a training run cannot produce a servable model
        └── ParityError       ONNX and XGBoost disagree beyond the tolerance

Neither is retryable: the same data and settings fail the same way.
"""

from __future__ import annotations

from services.common.errors import RiskstreamError


class TrainingFailed(RiskstreamError):
    """A training run cannot produce a servable model.

    Attributes:
        stage: the phase that failed (``"data"``, ``"fit"``, ``"export"``...).
    """

    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(f"{stage}: {message}", retryable=False)
        self.stage = stage


class ParityError(TrainingFailed):
    """ONNX Runtime's probabilities differ from XGBoost's beyond the tolerance.

    Attributes:
        max_abs_diff: the largest |p_onnx - p_xgboost| over the checked rows.
        tolerance: the allowed difference.
        rows: how many rows were compared.
    """

    def __init__(self, *, max_abs_diff: float, tolerance: float, rows: int) -> None:
        super().__init__(
            f"ONNX and XGBoost probabilities differ by up to {max_abs_diff:.3g} "
            f"(> {tolerance:g}) over {rows} rows",
            stage="export",
        )
        self.max_abs_diff = max_abs_diff
        self.tolerance = tolerance
        self.rows = rows
