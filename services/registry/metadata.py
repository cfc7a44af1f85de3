"""``metadata.json``: what a model artifact says about itself.

Kernel: no I/O. :meth:`ModelMetadata.to_json` is canonical (sorted keys, no
whitespace, ASCII), so the same metadata always gives the same bytes and the
artifact's digest (the sha256 of those bytes) changes whenever any file, threshold,
the calibration or the feature order changes.

Serving contract: the ONNX model takes a float32 tensor ``[batch, len(feature_names)]``
named ``input_name`` with columns in ``feature_names`` order and returns the *raw*
fraud probability in column ``output_index`` of the float tensor ``output_name``; the
served score is ``calibration.apply(raw)``, and ``thresholds`` apply to that score
(``score >= decline`` declines, else ``score >= review`` reviews).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from services.registry.calibration import Calibration
from services.registry.errors import ArtifactRejected, RejectReason

#: Version of the metadata.json layout itself; bump on incompatible changes.
METADATA_SCHEMA_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _bad(field_name: str, problem: str) -> ArtifactRejected:
    return ArtifactRejected(reason=RejectReason.BAD_METADATA, detail=f"{field_name}: {problem}")


def _check_utc(value: str, field_name: str) -> None:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise _bad(field_name, f"{value!r} is not an ISO-8601 timestamp") from exc
    if parsed.utcoffset() != timedelta(0):
        raise _bad(field_name, f"{value!r} is not in UTC (end it with Z or +00:00)")


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds on the calibrated score, ``0 <= review <= decline <= 1``."""

    review: float
    decline: float

    def __post_init__(self) -> None:
        for name in ("review", "decline"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _bad(f"thresholds.{name}", f"{value!r} is not a number in [0, 1]")
            if not 0.0 <= value <= 1.0:
                raise _bad(f"thresholds.{name}", f"{value!r} is not a number in [0, 1]")
            object.__setattr__(self, name, float(value))
        if self.review > self.decline:
            raise _bad("thresholds", f"review {self.review} is above decline {self.decline}")


@dataclass(frozen=True)
class TimeWindow:
    """A span of event time, ISO-8601 UTC strings with ``start <= end``."""

    start: str
    end: str

    def __post_init__(self) -> None:
        _check_utc(self.start, "window.start")
        _check_utc(self.end, "window.end")
        if datetime.fromisoformat(self.start) > datetime.fromisoformat(self.end):
            raise _bad("window", f"start {self.start} is after end {self.end}")


@dataclass(frozen=True)
class ModelMetadata:
    """Everything a scorer needs to know about a model besides its bytes.

    Attributes:
        model_name: the model's family, e.g. ``"fraud-xgb"``.
        version: unique version within ``model_name``.
        feature_names: the model's input columns, in order (unique, non-empty).
        feature_set_version: ``definitions.FEATURE_SET_VERSION`` at training time.
        thresholds: review / decline thresholds on the calibrated score.
        calibration: raw probability → served score.
        input_name: name of the ONNX input tensor.
        output_name: name of the ONNX float output holding probabilities.
        output_index: column of the fraud (positive) class in ``output_name``.
        train_window: event-time span of the training rows.
        validation_window: event-time span of the validation rows.
        metrics: validation metrics (``roc_auc``, ``average_precision``, ``ece``...).
        created_at: ISO-8601 UTC creation time.
        framework: library versions and export settings (``{"xgboost": "3.2.0",
            "onnx_opset": 15}``).
        files: artifact file name → lowercase sha256 hex; filled by
            :func:`services.registry.artifact.write_artifact`.

    Raises:
        ArtifactRejected: (``reason="bad_metadata"``) a field is out of range; the
            detail names it.

    Examples:
        >>> meta = ModelMetadata(
        ...     model_name="fraud-xgb",
        ...     version="v1",
        ...     feature_names=("tx_amount", "card_tx_count_1h"),
        ...     feature_set_version="fs-0123456789ab",
        ...     thresholds=Thresholds(review=0.3, decline=0.8),
        ...     calibration=Calibration.platt(a=-1.5, b=0.25),
        ...     input_name="input",
        ...     output_name="probabilities",
        ...     output_index=1,
        ...     train_window=TimeWindow("2026-01-01T00:00:00Z", "2026-01-20T00:00:00Z"),
        ...     validation_window=TimeWindow("2026-01-27T00:00:00Z", "2026-02-03T00:00:00Z"),
        ...     metrics={"roc_auc": 0.9},
        ...     created_at="2026-02-04T12:00:00Z",
        ... )
        >>> ModelMetadata.from_json(meta.to_json()) == meta
        True
        >>> meta.to_json()[:40]
        b'{"calibration":{"a":-1.5,"b":0.25,"metho'
        >>> ModelMetadata.from_json(meta.to_json().replace(b'"review":0.3', b'"review":2'))
        Traceback (most recent call last):
        ...
        services.registry.errors.ArtifactRejected: artifact rejected (bad_metadata): thresholds.review: 2 is not a number in [0, 1]
    """  # noqa: E501

    model_name: str
    version: str
    feature_names: tuple[str, ...]
    feature_set_version: str
    thresholds: Thresholds
    calibration: Calibration
    input_name: str
    output_name: str
    output_index: int
    train_window: TimeWindow
    validation_window: TimeWindow
    metrics: Mapping[str, float]
    created_at: str
    framework: Mapping[str, str | int] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only copies: callers' dicts are neither kept nor mutated.
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        object.__setattr__(self, "framework", MappingProxyType(dict(self.framework)))
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        for name in ("model_name", "version", "feature_set_version", "input_name", "output_name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise _bad(name, "must be a non-empty string")
        if not self.feature_names:
            raise _bad("feature_names", "must not be empty")
        for i, name in enumerate(self.feature_names):
            if not isinstance(name, str) or not name:
                raise _bad(f"feature_names[{i}]", "must be a non-empty string")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise _bad("feature_names", "has duplicates")
        if isinstance(self.output_index, bool) or not isinstance(self.output_index, int):
            raise _bad("output_index", "must be an integer")
        if self.output_index < 0:
            raise _bad("output_index", "must be >= 0")
        for key, metric in self.metrics.items():
            if not isinstance(key, str) or isinstance(metric, bool):
                raise _bad(f"metrics.{key}", "must map a name to a number")
            if not (isinstance(metric, int | float) and math.isfinite(metric)):
                raise _bad(f"metrics.{key}", f"{metric!r} is not a finite number")
        for key, info in self.framework.items():
            if isinstance(info, bool) or not isinstance(info, str | int):
                raise _bad(f"framework.{key}", "must be a string or an integer")
        for name, digest in self.files.items():
            if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
                raise _bad("files", f"{name!r} is not a plain file name")
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
                raise _bad(f"files.{name}", "must be a lowercase sha256 hex digest")
        _check_utc(self.created_at, "created_at")

    def with_files(self, files: Mapping[str, str]) -> ModelMetadata:
        """A copy whose ``files`` are ``files``."""
        return replace(self, files=dict(files))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the layout of ``metadata.json``)."""
        return {
            "schema_version": METADATA_SCHEMA_VERSION,
            "model_name": self.model_name,
            "version": self.version,
            "feature_names": list(self.feature_names),
            "feature_set_version": self.feature_set_version,
            "thresholds": {"review": self.thresholds.review, "decline": self.thresholds.decline},
            "calibration": self.calibration.to_dict(),
            "input_name": self.input_name,
            "output_name": self.output_name,
            "output_index": self.output_index,
            "train_window": {"start": self.train_window.start, "end": self.train_window.end},
            "validation_window": {
                "start": self.validation_window.start,
                "end": self.validation_window.end,
            },
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "created_at": self.created_at,
            "framework": dict(self.framework),
            "files": dict(self.files),
        }

    def to_json(self) -> bytes:
        """Canonical UTF-8 JSON: sorted keys, no insignificant whitespace."""
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes) -> ModelMetadata:
        """Parse and validate ``metadata.json`` bytes.

        Raises:
            ArtifactRejected: ``reason="bad_metadata"``; the detail names the field.
        """
        try:
            raw = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _bad("<document>", f"not valid JSON: {exc}") from exc
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: object) -> ModelMetadata:
        """Validate the parsed JSON document; see :meth:`from_json`."""
        doc = _object(raw, "<document>", _TOP_KEYS)
        if doc["schema_version"] != METADATA_SCHEMA_VERSION or isinstance(
            doc["schema_version"], bool
        ):
            raise _bad("schema_version", f"{doc['schema_version']!r} is not supported")
        thresholds = _object(doc["thresholds"], "thresholds", {"review", "decline"})
        try:
            calibration = Calibration.from_dict(_object(doc["calibration"], "calibration", None))
        except ValueError as exc:
            raise _bad("calibration", str(exc)) from exc
        features = doc["feature_names"]
        if not isinstance(features, list):
            raise _bad("feature_names", "must be a list of strings")
        return cls(
            model_name=_string(doc, "model_name"),
            version=_string(doc, "version"),
            feature_names=tuple(features),
            feature_set_version=_string(doc, "feature_set_version"),
            thresholds=Thresholds(review=thresholds["review"], decline=thresholds["decline"]),
            calibration=calibration,
            input_name=_string(doc, "input_name"),
            output_name=_string(doc, "output_name"),
            output_index=doc["output_index"],
            train_window=_window(doc["train_window"], "train_window"),
            validation_window=_window(doc["validation_window"], "validation_window"),
            metrics=_object(doc["metrics"], "metrics", None),
            created_at=_string(doc, "created_at"),
            framework=_object(doc["framework"], "framework", None),
            files=_object(doc["files"], "files", None),
        )


_TOP_KEYS = frozenset(ModelMetadata.__dataclass_fields__) | {"schema_version"}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _object(value: object, name: str, keys: set[str] | frozenset[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(name, "must be a JSON object")
    if keys is not None:
        missing, unknown = set(keys) - set(value), set(value) - set(keys)
        if missing:
            raise _bad(name, f"missing keys {sorted(missing)}")
        if unknown:
            raise _bad(name, f"unknown keys {sorted(unknown)}")
    return value


def _string(doc: Mapping[str, Any], name: str) -> str:
    value = doc[name]
    if not isinstance(value, str):
        raise _bad(name, "must be a string")
    return value


def _window(value: object, name: str) -> TimeWindow:
    span = _object(value, name, {"start", "end"})
    for key in ("start", "end"):
        if not isinstance(span[key], str):
            raise _bad(f"{name}.{key}", "must be a string")
    try:
        return TimeWindow(start=span["start"], end=span["end"])
    except ArtifactRejected as exc:
        raise _bad(name, exc.detail) from exc
