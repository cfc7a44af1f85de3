"""Labelled rows of a run: the event-time windows and the arrays cut from them.

Kernel: frames in, arrays out, no I/O. Rows are split in event time, newest last:
train | gap (the label delay) | validation | holdout (:func:`data_windows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from services.registry.metadata import TimeWindow
from services.trainer.config import TrainerConfig
from services.trainer.errors import TrainingFailed

LABEL = "is_fraud"


@dataclass(frozen=True)
class DataWindows:
    """Event-time spans of one run's rows, each ``[start, end)`` in UTC."""

    train: tuple[datetime, datetime]
    validation: tuple[datetime, datetime]
    holdout: tuple[datetime, datetime]


def data_windows(end: datetime, config: TrainerConfig) -> DataWindows:
    """Spans ending at ``end``: holdout, validation before it, the gap, then training.

    Training covers ``config.train_days`` days.

    Examples:
        >>> w = data_windows(datetime(2026, 3, 1, tzinfo=UTC), TrainerConfig(days=30,
        ...     burn_in_days=0, validation_days=3, holdout_days=2))
        >>> [f"{a:%m-%d}..{b:%m-%d}" for a, b in (w.train, w.validation, w.holdout)]
        ['01-30..02-17', '02-24..02-27', '02-27..03-01']
    """
    holdout = (end - timedelta(days=config.holdout_days), end)
    validation = (holdout[0] - timedelta(days=config.validation_days), holdout[0])
    train_end = validation[0] - timedelta(days=config.gap_days)
    return DataWindows(
        train=(train_end - timedelta(days=config.train_days), train_end),
        validation=validation,
        holdout=holdout,
    )


def rows_in(frame: pd.DataFrame, span: tuple[datetime, datetime]) -> pd.DataFrame:
    """The rows of ``frame`` whose ``event_time`` is in ``[start, end)``."""
    times = frame["event_time"]
    return frame.loc[(times >= span[0]) & (times < span[1])].reset_index(drop=True)


def utc_text(when: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_window(span: tuple[datetime, datetime]) -> TimeWindow:
    """The registry's form of a span."""
    return TimeWindow(utc_text(span[0]), utc_text(span[1]))


def feature_matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """float32, C-contiguous, columns in ``features`` order (what ONNX and XGBoost take)."""
    return np.ascontiguousarray(frame.loc[:, list(features)].to_numpy(dtype=np.float32))


def label_array(frame: pd.DataFrame) -> np.ndarray:
    """0/1 labels as int8."""
    return frame[LABEL].to_numpy(dtype=np.int8)


def require_both_classes(frame: pd.DataFrame, side: str) -> None:
    """Raise :class:`TrainingFailed` unless ``frame`` holds frauds and genuine rows."""
    y = label_array(frame)
    if len(y) == 0 or y.min() == y.max():
        raise TrainingFailed(
            f"{side} rows hold one class only ({len(y)} rows, {int(y.sum())} frauds)",
            stage="data",
        )
