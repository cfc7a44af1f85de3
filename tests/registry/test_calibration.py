"""Calibration maps: golden values per method, purity, validation, dict round trip."""

from __future__ import annotations

import numpy as np
import pytest

from services.registry import Calibration

P = np.array([0.0, 0.05, 0.2, 0.5, 0.9, 1.0])


def test_identity_returns_the_input_clipped() -> None:
    out = Calibration.identity().apply(np.array([-0.1, 0.0, 0.3, 1.0, 1.2]))
    assert out.tolist() == [0.0, 0.0, 0.3, 1.0, 1.0]
    assert out.dtype == np.float64


def test_platt_golden_values() -> None:
    # p' = 1 / (1 + exp(a * logit(p) + b)); logit(0.2) = ln(1/4), logit(0.9) = ln(9)
    out = Calibration.platt(a=-1.5, b=0.25).apply(np.array([0.2, 0.5, 0.9]))
    expected = [0.08871380070193699, 1 / (1 + np.exp(0.25)), 0.9546024514625787]
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_platt_with_a_minus_one_and_b_zero_is_the_identity() -> None:
    out = Calibration.platt(a=-1.0, b=0.0).apply(P)
    np.testing.assert_allclose(out, P, atol=1e-12)


def test_platt_is_finite_and_silent_at_the_extremes() -> None:
    with np.errstate(all="raise"):
        out = Calibration.platt(a=-40.0, b=5.0).apply(np.array([0.0, 1e-300, 1.0]))
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))


def test_isotonic_golden_values() -> None:
    iso = Calibration.isotonic(x=[0.1, 0.5, 0.9], y=[0.0, 0.3, 1.0])
    out = iso.apply(np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]))
    np.testing.assert_allclose(out, [0.0, 0.0, 0.15, 0.3, 0.65, 1.0, 1.0], rtol=1e-12)


@pytest.mark.parametrize(
    "calibration",
    [
        Calibration.identity(),
        Calibration.platt(a=-2.0, b=0.1),
        Calibration.isotonic(x=[0.0, 1.0], y=[0.0, 0.5]),
    ],
)
def test_apply_never_mutates_and_keeps_the_shape(calibration: Calibration) -> None:
    p = np.array([[0.1, 0.7], [0.4, 0.99]], dtype=np.float32)
    before = p.copy()
    out = calibration.apply(p)
    assert out.shape == p.shape and out.dtype == np.float64
    assert out is not p
    np.testing.assert_array_equal(p, before)
    assert Calibration.from_dict(calibration.to_dict()) == calibration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "beta"}, "method"),
        ({"method": "platt", "a": float("nan")}, "finite"),
        ({"method": "identity", "a": 1.0}, "only for platt"),
        ({"method": "isotonic"}, "non-empty"),
        ({"method": "isotonic", "x": (0.5, 0.1), "y": (0.0, 1.0)}, "non-decreasing"),
        ({"method": "isotonic", "x": (0.1, 0.5), "y": (0.0, 1.5)}, r"\[0, 1\]"),
        ({"method": "platt", "x": (0.1,), "y": (0.2,)}, "only for isotonic"),
    ],
)
def test_invalid_parameters_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Calibration(**kwargs)


@pytest.mark.parametrize(
    "data",
    [
        {"method": "platt", "a": -1.0},
        {"method": "platt", "a": -1.0, "b": 0.0, "x": []},
        {"method": "platt", "a": "1", "b": 0.0},
        {"method": "platt", "a": True, "b": 0.0},
        {"method": "isotonic", "x": "0.1", "y": [0.2]},
        {},
    ],
)
def test_from_dict_rejects_malformed_documents(data: dict) -> None:
    with pytest.raises(ValueError):
        Calibration.from_dict(data)
