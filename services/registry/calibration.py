"""Probability calibration: the map from the model's raw probability to the served score.

Kernel: numpy only, no I/O, no scikit-learn (fitting lives in the trainer), so the
scorer can import it cheaply. Three methods:

* ``identity`` — the raw probability, clipped to [0, 1].
* ``platt`` — ``p' = 1 / (1 + exp(a * logit(p) + b))``, the sign convention of Platt
  (1999) and scikit-learn's ``CalibratedClassifierCV(method="sigmoid")``. For an
  XGBoost ``binary:logistic`` model ``logit(p)`` is the margin, so this is Platt
  scaling on the margin; ``a < 0`` for a useful model (``a = -1, b = 0`` is the
  identity). ``p`` is clipped to [1e-15, 1 - 1e-15] before the logit.
* ``isotonic`` — piecewise-linear interpolation through breakpoints ``(x, y)``
  with :func:`numpy.interp` (constant beyond the end points), which is what
  scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` predicts from its
  ``X_thresholds_`` and ``y_thresholds_``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

Method = Literal["identity", "platt", "isotonic"]
METHODS: tuple[Method, ...] = ("identity", "platt", "isotonic")
_EPS = 1e-15
_KEYS = {"identity": {"method"}, "platt": {"method", "a", "b"}, "isotonic": {"method", "x", "y"}}


def _sigmoid(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # tanh form: no overflow warnings for large |t|
    return 0.5 * (1.0 + np.tanh(0.5 * t))


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration map; :meth:`apply` is its one verb.

    Attributes:
        method: ``"identity"``, ``"platt"`` or ``"isotonic"``.
        a: Platt slope (on ``logit(p)``); 0 for the other methods.
        b: Platt intercept; 0 for the other methods.
        x: isotonic breakpoints (raw probabilities, non-decreasing); empty otherwise.
        y: isotonic values at ``x`` (in [0, 1], non-decreasing); empty otherwise.

    Raises:
        ValueError: parameters that do not fit the method.

    Examples:
        >>> import numpy as np
        >>> p = np.array([0.0, 0.2, 0.5, 1.0])
        >>> Calibration.identity().apply(p).tolist()
        [0.0, 0.2, 0.5, 1.0]
        >>> sharpen = Calibration.platt(a=-2.0, b=0.0)  # p^2 / (p^2 + (1 - p)^2)
        >>> np.round(sharpen.apply(p), 6).tolist()
        [0.0, 0.058824, 0.5, 1.0]
        >>> iso = Calibration.isotonic(x=[0.1, 0.5, 0.9], y=[0.0, 0.3, 1.0])
        >>> np.round(iso.apply(np.array([0.05, 0.3, 0.7, 0.95])), 6).tolist()
        [0.0, 0.15, 0.65, 1.0]
        >>> Calibration.from_dict(iso.to_dict()) == iso
        True
        >>> rng = np.random.default_rng(7)
        >>> raw = rng.uniform(size=5)
        >>> bool(np.all(np.diff(sharpen.apply(np.sort(raw))) >= 0))
        True
    """

    method: Method = "identity"
    a: float = 0.0
    b: float = 0.0
    x: tuple[float, ...] = field(default=())
    y: tuple[float, ...] = field(default=())
    # The breakpoints as arrays, built once: np.interp would convert the tuples on
    # every call (half of a one-row apply on the scorer's hot path).
    _xs: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)
    _ys: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", tuple(float(v) for v in self.x))
        object.__setattr__(self, "y", tuple(float(v) for v in self.y))
        object.__setattr__(self, "a", float(self.a))
        object.__setattr__(self, "b", float(self.b))
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        if not (math.isfinite(self.a) and math.isfinite(self.b)):
            raise ValueError("a and b must be finite")
        if self.method != "platt" and (self.a != 0.0 or self.b != 0.0):
            raise ValueError(f"a and b are only for platt, not {self.method}")
        if self.method != "isotonic":
            if self.x or self.y:
                raise ValueError(f"x and y are only for isotonic, not {self.method}")
            return
        if not self.x or len(self.x) != len(self.y):
            raise ValueError("isotonic x and y must be non-empty and of equal length")
        xs, ys = np.asarray(self.x), np.asarray(self.y)
        xs.flags.writeable = ys.flags.writeable = False
        object.__setattr__(self, "_xs", xs)
        object.__setattr__(self, "_ys", ys)
        if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
            raise ValueError("isotonic x and y must be finite")
        if np.any(np.diff(xs) < 0) or np.any(np.diff(ys) < 0):
            raise ValueError("isotonic x and y must be non-decreasing")
        if ys[0] < 0.0 or ys[-1] > 1.0:
            raise ValueError("isotonic y must lie in [0, 1]")

    @classmethod
    def identity(cls) -> Calibration:
        """The calibration that changes nothing."""
        return cls("identity")

    @classmethod
    def platt(cls, *, a: float, b: float) -> Calibration:
        """Platt scaling ``1 / (1 + exp(a * logit(p) + b))``."""
        return cls("platt", a=a, b=b)

    @classmethod
    def isotonic(cls, *, x: Sequence[float], y: Sequence[float]) -> Calibration:
        """Isotonic map through breakpoints ``(x, y)``."""
        return cls("isotonic", x=tuple(x), y=tuple(y))

    def apply(self, p: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Calibrated probabilities for raw probabilities ``p``.

        Args:
            p: raw probabilities, any shape; never modified.

        Returns:
            A new float64 array of the same shape, in [0, 1] (NaN stays NaN).
        """
        raw = np.array(p, dtype=np.float64, copy=True)
        if self.method == "platt":
            q = np.clip(raw, _EPS, 1.0 - _EPS)
            logit = np.log(q) - np.log1p(-q)
            raw = _sigmoid(-(self.a * logit + self.b))
        elif self.method == "isotonic":
            raw = np.interp(raw, self._xs, self._ys).astype(np.float64)
        return cast("npt.NDArray[np.float64]", np.clip(raw, 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; only the parameters of the method are present."""
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        if self.method == "isotonic":
            return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}
        return {"method": "identity"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: unknown method, unknown or missing keys, wrong types.
        """
        method = data.get("method")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {method!r}")
        keys = _KEYS[method]
        if set(data) != keys:
            raise ValueError(f"{method} expects keys {sorted(keys)}, got {sorted(data)}")
        if method == "platt":
            return cls.platt(a=_number(data["a"], "a"), b=_number(data["b"], "b"))
        if method == "isotonic":
            return cls.isotonic(x=_numbers(data["x"], "x"), y=_numbers(data["y"], "y"))
        return cls.identity()


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {type(value).__name__}")
    return float(value)


def _numbers(value: object, name: str) -> list[float]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of numbers")
    return [_number(v, f"{name}[{i}]") for i, v in enumerate(value)]
