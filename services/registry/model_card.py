"""The model card: what a model version is for, what it was trained on, how good it is.

Kernel: no I/O. The trainer builds a :class:`ModelCard`, puts :meth:`ModelCard.to_json`
into ``ModelVersion.model_card_json`` and writes ``model_card.json`` and
``model_card.md`` into the artifact; ``riskstream models show`` reads it back from
the log with :meth:`ModelCard.from_json` and prints :meth:`ModelCard.to_markdown`.
The JSON is canonical (sorted keys, no whitespace) so the same card gives the same
bytes, and parsing validates every field, naming the first bad one: a card is what
a reviewer approves a high-impact model by, so a malformed one must not pass as
empty.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from services.registry.errors import ArtifactRejected, InvalidModelCard
from services.registry.metadata import TimeWindow

#: Version of the card's JSON layout; bump on incompatible changes.
CARD_SCHEMA_VERSION = 1

#: Gate keys with a fixed meaning; any other gate key is a numeric comparison.
GATE_FIXED_KEYS = ("passed", "reasons", "champion_version")


def _bad(name: str, problem: str) -> InvalidModelCard:
    return InvalidModelCard(field=name, problem=problem)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclass(frozen=True)
class ModelCard:
    """A model version's card; mappings are read-only copies of what was passed.

    Attributes:
        model_name: the model's family, e.g. ``"fraud-xgb"``.
        version: the version within ``model_name``.
        owner: the team or person answerable for the model.
        intended_use: what decisions the score may drive, and for whom.
        created_at: ISO-8601 UTC creation time.
        train_window: event-time span of the training rows.
        validation_window: event-time span of the validation rows.
        data_sources: where the rows came from (topics, offline-store tables, files).
        feature_set_version: ``definitions.FEATURE_SET_VERSION`` at training time.
        feature_names: the model's inputs, in order.
        metrics: overall validation metrics, name → value.
        segment_metrics: segment (``"amount_band=high"``) → metric → value; the bias
            audit compares these.
        calibration: ``method`` (string) and numbers such as ``ece``.
        gate: the validation gate's verdict: ``passed`` (bool), ``reasons`` (list of
            strings), ``champion_version`` (string or None), and any other key a
            numeric comparison (``ap_drop``, ``p99_latency_ms``...).
        limitations: known limits of use.
        failure_modes: known ways it fails.
        high_impact: needs an admin approval (``riskstream approve``) past canary.

    Raises:
        InvalidModelCard: a field is malformed; ``field`` names it.

    Examples:
        >>> card = ModelCard(
        ...     model_name="fraud-xgb", version="v7", owner="risk-ml",
        ...     intended_use="Card-present fraud triage; not for credit decisions.",
        ...     created_at="2026-02-04T12:00:00Z",
        ...     train_window=TimeWindow("2026-01-01T00:00:00Z", "2026-01-20T00:00:00Z"),
        ...     validation_window=TimeWindow("2026-01-27T00:00:00Z", "2026-02-03T00:00:00Z"),
        ...     data_sources=("offline-store:transactions",),
        ...     feature_set_version="fs-0123456789ab",
        ...     feature_names=("tx_amount", "card_tx_count_1h"),
        ...     metrics={"average_precision": 0.71, "roc_auc": 0.93},
        ...     segment_metrics={"amount_band=high": {"average_precision": 0.64}},
        ...     calibration={"method": "isotonic", "ece": 0.004},
        ...     gate={"passed": True, "reasons": [], "champion_version": "v6", "ap_drop": -0.02},
        ...     limitations=("Trained on simulated data",),
        ...     failure_modes=("New terminals have no history",),
        ... )
        >>> ModelCard.from_json(card.to_json()) == card
        True
        >>> card.to_json()[:44]
        b'{"calibration":{"ece":0.004,"method":"isoton'
        >>> print(card.to_markdown().splitlines()[0])
        # Model card: fraud-xgb v7
        >>> ModelCard.from_json(card.to_json().replace(b'"roc_auc":0.93', b'"roc_auc":"high"'))
        Traceback (most recent call last):
        ...
        services.registry.errors.InvalidModelCard: model card: metrics.roc_auc: 'high' is not a finite number
    """  # noqa: E501

    model_name: str
    version: str
    owner: str
    intended_use: str
    created_at: str
    train_window: TimeWindow
    validation_window: TimeWindow
    data_sources: tuple[str, ...]
    feature_set_version: str
    feature_names: tuple[str, ...]
    metrics: Mapping[str, float]
    segment_metrics: Mapping[str, Mapping[str, float]]
    calibration: Mapping[str, float | str]
    gate: Mapping[str, Any]
    limitations: tuple[str, ...] = ()
    failure_modes: tuple[str, ...] = ()
    high_impact: bool = False

    def __post_init__(self) -> None:
        for name in (
            "model_name",
            "version",
            "owner",
            "intended_use",
            "created_at",
            "feature_set_version",
        ):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise _bad(name, "must be a non-empty string")
        _check_utc(self.created_at, "created_at")
        for name in ("train_window", "validation_window"):
            if not isinstance(getattr(self, name), TimeWindow):
                raise _bad(name, "must be a TimeWindow")
        for name in ("data_sources", "feature_names", "limitations", "failure_modes"):
            object.__setattr__(self, name, _strings(getattr(self, name), name))
        if len(set(self.feature_names)) != len(self.feature_names):
            raise _bad("feature_names", "has duplicates")
        if not isinstance(self.high_impact, bool):
            raise _bad("high_impact", "must be true or false")
        object.__setattr__(self, "metrics", _numbers(self.metrics, "metrics"))
        if not isinstance(self.segment_metrics, Mapping):
            raise _bad("segment_metrics", "must map a segment to metrics")
        segments = {
            _key(segment, "segment_metrics"): _numbers(values, f"segment_metrics.{segment}")
            for segment, values in self.segment_metrics.items()
        }
        object.__setattr__(self, "segment_metrics", MappingProxyType(segments))
        object.__setattr__(self, "calibration", _calibration(self.calibration))
        object.__setattr__(self, "gate", _gate(self.gate))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the layout of ``model_card.json``)."""
        gate = dict(self.gate)
        gate["reasons"] = list(gate["reasons"])
        return {
            "schema_version": CARD_SCHEMA_VERSION,
            "model_name": self.model_name,
            "version": self.version,
            "owner": self.owner,
            "intended_use": self.intended_use,
            "created_at": self.created_at,
            "train_window": {"start": self.train_window.start, "end": self.train_window.end},
            "validation_window": {
                "start": self.validation_window.start,
                "end": self.validation_window.end,
            },
            "data_sources": list(self.data_sources),
            "feature_set_version": self.feature_set_version,
            "feature_names": list(self.feature_names),
            "metrics": dict(self.metrics),
            "segment_metrics": {s: dict(m) for s, m in self.segment_metrics.items()},
            "calibration": dict(self.calibration),
            "gate": gate,
            "limitations": list(self.limitations),
            "failure_modes": list(self.failure_modes),
            "high_impact": self.high_impact,
        }

    def to_json(self) -> bytes:
        """Canonical UTF-8 JSON: sorted keys, no insignificant whitespace."""
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> ModelCard:
        """Parse and validate a card (``model_card.json`` or ``model_card_json``).

        Raises:
            InvalidModelCard: not JSON, or a field is missing, unknown or malformed.
        """
        try:
            raw = json.loads(data, parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _bad("<document>", f"not valid JSON: {exc}") from exc
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: object) -> ModelCard:
        """Validate a parsed card document; see :meth:`from_json`."""
        if not isinstance(raw, dict):
            raise _bad("<document>", "must be a JSON object")
        missing, unknown = _CARD_KEYS - set(raw), set(raw) - _CARD_KEYS
        if missing:
            raise _bad("<document>", f"missing keys {sorted(missing)}")
        if unknown:
            raise _bad("<document>", f"unknown keys {sorted(unknown)}")
        version = raw["schema_version"]
        if version != CARD_SCHEMA_VERSION or isinstance(version, bool):
            raise _bad("schema_version", f"{version!r} is not supported")
        for name in ("data_sources", "feature_names", "limitations", "failure_modes"):
            if not isinstance(raw[name], list):
                raise _bad(name, "must be a list of strings")
        return cls(
            model_name=raw["model_name"],
            version=raw["version"],
            owner=raw["owner"],
            intended_use=raw["intended_use"],
            created_at=raw["created_at"],
            train_window=_window(raw["train_window"], "train_window"),
            validation_window=_window(raw["validation_window"], "validation_window"),
            data_sources=tuple(raw["data_sources"]),
            feature_set_version=raw["feature_set_version"],
            feature_names=tuple(raw["feature_names"]),
            metrics=raw["metrics"],
            segment_metrics=raw["segment_metrics"],
            calibration=raw["calibration"],
            gate=raw["gate"],
            limitations=tuple(raw["limitations"]),
            failure_modes=tuple(raw["failure_modes"]),
            high_impact=raw["high_impact"],
        )

    def to_markdown(self) -> str:
        """The card for people: one section per heading, segment metrics as a table."""
        lines = [f"# Model card: {self.model_name} {self.version}", ""]
        lines.append(f"Created {self.created_at}.")
        if self.high_impact:
            lines.append(
                "**High-impact model**: an admin must approve it (`riskstream approve`) "
                "before it goes past canary."
            )
        lines += ["", "## Owner", "", self.owner, "", "## Intended use", "", self.intended_use]
        lines += [
            "",
            "## Data",
            "",
            f"- Training window: {self.train_window.start} to {self.train_window.end}",
            f"- Validation window: {self.validation_window.start} to {self.validation_window.end}",
            f"- Sources: {', '.join(self.data_sources) or 'not recorded'}",
        ]
        lines += [
            "",
            "## Features",
            "",
            f"Feature-set version `{self.feature_set_version}`, "
            f"{len(self.feature_names)} features in model input order:",
            "",
            *(f"{i}. `{name}`" for i, name in enumerate(self.feature_names, 1)),
        ]
        lines += ["", "## Metrics", ""]
        lines += _table(
            ["metric", "value"], [[k, _fmt(v)] for k, v in sorted(self.metrics.items())]
        )
        lines += ["", "## Metrics by segment", ""]
        columns = sorted({m for values in self.segment_metrics.values() for m in values})
        if self.segment_metrics:
            rows = [
                [segment, *(_fmt(values[c]) if c in values else "" for c in columns)]
                for segment, values in sorted(self.segment_metrics.items())
            ]
            lines += _table(["segment", *columns], rows)
        else:
            lines.append("No segment metrics recorded.")
        lines += ["", "## Calibration", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in sorted(self.calibration.items())]
        lines += ["", "## Validation gate", ""]
        champion = self.gate["champion_version"]
        lines.append(
            f"**{'Passed' if self.gate['passed'] else 'Failed'}**, against "
            + (f"champion `{champion}`." if champion else "no champion (first version).")
        )
        lines += [f"- Reason: {reason}" for reason in self.gate["reasons"]]
        comparisons = sorted((k, v) for k, v in self.gate.items() if k not in GATE_FIXED_KEYS)
        lines += [f"- {k}: {_fmt(v)}" for k, v in comparisons]
        for title, items in (
            ("Limitations", self.limitations),
            ("Failure modes", self.failure_modes),
        ):
            lines += ["", f"## {title}", ""]
            lines += [f"- {item}" for item in items] or ["None recorded."]
        return "\n".join(lines) + "\n"


_CARD_KEYS = frozenset(ModelCard.__dataclass_fields__) | {"schema_version"}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _check_utc(value: str, name: str) -> None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _bad(name, f"{value!r} is not an ISO-8601 timestamp") from exc
    if parsed.utcoffset() != timedelta(0):
        raise _bad(name, f"{value!r} is not in UTC (end it with Z or +00:00)")


def _key(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(name, f"{value!r} is not a non-empty name")
    return value


def _strings(values: object, name: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, tuple | list):
        raise _bad(name, "must be a list of strings")
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise _bad(f"{name}[{i}]", "must be a non-empty string")
    return tuple(values)


def _numbers(values: object, name: str) -> Mapping[str, float]:
    if not isinstance(values, Mapping):
        raise _bad(name, "must map a name to a number")
    checked: dict[str, float] = {}
    for key, value in values.items():
        _key(key, name)
        if not _is_number(value):
            raise _bad(f"{name}.{key}", f"{value!r} is not a finite number")
        checked[key] = float(value)
    return MappingProxyType(checked)


def _calibration(values: object) -> Mapping[str, float | str]:
    if not isinstance(values, Mapping):
        raise _bad("calibration", "must be an object with a method")
    if not isinstance(values.get("method"), str) or not values["method"]:
        raise _bad("calibration.method", "must be a non-empty string")
    checked: dict[str, float | str] = {}
    for key, value in values.items():
        _key(key, "calibration")
        if isinstance(value, str):
            checked[key] = value
        elif _is_number(value):
            checked[key] = float(value)
        else:
            raise _bad(f"calibration.{key}", f"{value!r} is not a string or a finite number")
    return MappingProxyType(checked)


def _gate(values: object) -> Mapping[str, Any]:
    if not isinstance(values, Mapping):
        raise _bad("gate", "must be an object with passed, reasons and champion_version")
    missing = [k for k in GATE_FIXED_KEYS if k not in values]
    if missing:
        raise _bad("gate", f"missing keys {missing}")
    if not isinstance(values["passed"], bool):
        raise _bad("gate.passed", "must be true or false")
    champion = values["champion_version"]
    if champion is not None and (not isinstance(champion, str) or not champion):
        raise _bad("gate.champion_version", "must be a version or null")
    checked: dict[str, Any] = {
        "passed": values["passed"],
        "reasons": _strings(values["reasons"], "gate.reasons"),
        "champion_version": champion,
    }
    for key, value in values.items():
        if key in GATE_FIXED_KEYS:
            continue
        _key(key, "gate")
        if not _is_number(value):
            raise _bad(f"gate.{key}", f"{value!r} is not a finite number")
        checked[key] = float(value)
    return MappingProxyType(checked)


def _window(value: object, name: str) -> TimeWindow:
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise _bad(name, "must be an object with exactly start and end")
    for key in ("start", "end"):
        if not isinstance(value[key], str):
            raise _bad(f"{name}.{key}", "must be a string")
    try:
        return TimeWindow(start=value["start"], end=value["end"])
    except ArtifactRejected as exc:
        raise _bad(name, exc.detail) from exc


def _fmt(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *(line(r) for r in rows)]
