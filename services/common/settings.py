"""Typed settings from ``RISKSTREAM_<SERVICE>_*`` environment variables, one parser.

Every service keeps its settings in one frozen dataclass; this module turns the
environment into that class's keyword arguments, typed by each field's annotation,
so that a typo (an unknown key) or a bad value is an error naming the variable
instead of a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from services.common.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(key: str, raw: str, annotation: str) -> object:
    """``raw`` as the field type named by ``annotation`` (``int``, ``float``, ``bool``,
    ``Path``, ``Path | None``; anything else stays a string).

    Raises:
        ConfigError: ``raw`` is not a value of that type; the message names ``key``.

    Examples:
        >>> parse_value("X_ON", "Yes", "bool"), parse_value("X_N", "3", "int")
        (True, 3)
        >>> parse_value("X_FILE", "", "Path | None") is None
        True
        >>> parse_value("X_N", "three", "int")
        Traceback (most recent call last):
        ...
        services.common.errors.ConfigError: X_N='three' is not a valid int
    """
    try:
        if annotation == "int":
            return int(raw)
        if annotation == "float":
            return float(raw)
        if annotation == "bool":
            text = raw.strip().lower()
            if text not in _TRUE | _FALSE:
                raise ValueError(raw)
            return text in _TRUE
        if annotation.startswith("Path"):
            return Path(raw) if raw else None
        return raw
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is not a valid {annotation}") from exc


def env_settings(cls: type[Any], prefix: str, env: Mapping[str, str]) -> dict[str, object]:
    """Field name → typed value for every ``<prefix><FIELD>`` variable in ``env``.

    Raises:
        ConfigError: a variable with the prefix names no field, or has a bad value.
    """
    if not is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    annotations = {f.name: str(f.type) for f in fields(cls)}
    values: dict[str, object] = {}
    for key, raw in env.items():
        if not key.startswith(prefix):
            continue
        name = key.removeprefix(prefix).lower()
        if name not in annotations:
            raise ConfigError(f"unknown setting {key}")
        values[name] = parse_value(key, raw, annotations[name])
    return values
