"""Calibration fitting, ECE and the threshold rule, on seeded synthetic scores."""

from __future__ import annotations

import numpy as np
import pytest

from services.registry import Calibration
from services.trainer.evaluation import (
    choose_calibration,
    choose_thresholds,
    expected_calibration_error,
    fit_calibration,
)


def _miscalibrated(n: int = 40_000, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores whose true probability is Platt(a=-0.5, b=1.0) of the score."""
    rng = np.random.default_rng(seed)
    raw = rng.beta(0.5, 4.0, size=n)
    truth = Calibration.platt(a=-0.5, b=1.0).apply(raw)
    return raw, (rng.uniform(size=n) < truth).astype(np.int8)


def test_ece_golden_values() -> None:
    assert expected_calibration_error(np.array([0.25, 0.75]), np.array([0, 1]), bins=2) == 0.25
    assert expected_calibration_error(np.array([0.5, 0.5]), np.array([0, 1]), bins=10) == 0.0
    assert expected_calibration_error(np.array([1.0]), np.array([1]), bins=10) == 0.0


def test_platt_fit_recovers_the_generating_parameters() -> None:
    raw, y = _miscalibrated()
    fitted = fit_calibration(raw, y, "platt")
    assert fitted.method == "platt"
    assert fitted.a == pytest.approx(-0.5, abs=0.05)
    assert fitted.b == pytest.approx(1.0, abs=0.15)


def test_isotonic_fit_is_monotone_and_calibrates() -> None:
    raw, y = _miscalibrated()
    fitted = fit_calibration(raw, y, "isotonic")
    assert fitted.method == "isotonic" and np.all(np.diff(fitted.y) >= 0)
    assert expected_calibration_error(fitted.apply(raw), y) < expected_calibration_error(raw, y)


def test_the_lower_heldout_ece_wins() -> None:
    raw, y = _miscalibrated()
    choice = choose_calibration(raw, y)
    assert set(choice.heldout_ece) == {"identity", "platt", "isotonic"}
    winner = choice.calibration.method
    assert choice.heldout_ece[winner] == min(
        choice.heldout_ece["platt"], choice.heldout_ece["isotonic"]
    )
    assert choice.heldout_ece[winner] < choice.heldout_ece["identity"]


def test_unknown_method() -> None:
    with pytest.raises(ValueError):
        fit_calibration(np.array([0.1, 0.9]), np.array([0, 1]), "beta")


def test_thresholds_never_split_a_tie() -> None:
    # 100 rows: 3 at 0.9 (all fraud), 4 tied at 0.5 (1 fraud), the rest at 0.1.
    score = np.array([0.9] * 3 + [0.5] * 4 + [0.1] * 93)
    y = np.array([1] * 3 + [1, 0, 0, 0] + [0] * 93)
    t = choose_thresholds(score, y, review_rate=0.05, decline_precision=0.8, decline_max_rate=0.03)
    # review budget 5 rows: the 0.5 tie would make it 7, so only 0.9 qualifies
    assert (t.review, t.decline) == (0.9, 0.9)
    t = choose_thresholds(score, y, review_rate=0.08, decline_precision=0.8, decline_max_rate=0.02)
    # decline budget 2 rows < the 3-row tie at the top: nothing is declined
    assert t.review == 0.5 and t.decline > 0.9
    assert float(np.mean(score >= t.decline)) == 0.0


def test_decline_falls_back_to_one_when_precision_is_never_reached() -> None:
    score = np.linspace(0, 1, 100)
    y = np.zeros(100, dtype=int)
    y[::10] = 1
    t = choose_thresholds(score, y, review_rate=0.1, decline_precision=0.9, decline_max_rate=0.5)
    assert t.decline == 1.0 and t.review <= t.decline
