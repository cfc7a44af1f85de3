"""Typed settings from ``RISKSTREAM_<SERVICE>_*`` environment variables, one parser.

Every service keeps its settings in one frozen dataclass; this module turns the
environment into that class's keyword arguments, typed by each field's annotation,
so that a typo (an unknown key) or a bad value is an error naming the variable
instead of a silent default.

A field annotated :data:`BindHost` is an address a server listens on (the gRPC port,
a metrics endpoint): loopback by default in every service, so that the local stack
exposes nothing; a container sets ``0.0.0.0`` for its ports to be reachable. A field
annotated :data:`RedisUrl` is where a service finds Redis: the local stack's by
default, the ``redis`` service or pod in a container.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from services.common.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")

#: The annotation of a listen address: an IP literal or a host name (no port).
BindHost: TypeAlias = str
#: Where a server listens unless told otherwise: this machine only.
LOOPBACK = "127.0.0.1"
#: The annotation of a Redis address: ``redis://[:password@]host[:port][/db]``
#: (``rediss://`` with TLS).
RedisUrl: TypeAlias = str


def bind_host(key: str, raw: str) -> str:
    """``raw`` if a server can listen on it: an IPv4 or IPv6 literal, or a host name.

    Raises:
        ConfigError: empty, with a port or a scheme, or otherwise not an address;
            the message names ``key``.

    Examples:
        >>> bind_host("X_HOST", "0.0.0.0"), bind_host("X_HOST", "::")
        ('0.0.0.0', '::')
        >>> bind_host("X_HOST", "0.0.0.0:80")
        Traceback (most recent call last):
        ...
        services.common.errors.ConfigError: X_HOST='0.0.0.0:80' is not an IP address or host name
    """
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if len(raw) > 253 or not _HOST_NAME.fullmatch(raw):
            raise ConfigError(f"{key}={raw!r} is not an IP address or host name") from None
    return raw


def redis_url(key: str, raw: str) -> str:
    """``raw`` if it is a ``redis://`` or ``rediss://`` URL with a host.

    Raises:
        ConfigError: another scheme, no host, a bad port or database number; the
            message names ``key`` but not the value (it may hold a password).

    Examples:
        >>> redis_url("X_URL", "redis://redis:6379/0")
        'redis://redis:6379/0'
        >>> redis_url("X_URL", "redis:6379")
        Traceback (most recent call last):
        ...
        services.common.errors.ConfigError: X_URL is not a redis:// or rediss:// URL with a host
    """
    try:
        url = urlsplit(raw)
        ok = url.scheme in ("redis", "rediss") and bool(url.hostname)
        _ = url.port  # ValueError when not a number in range
        db = url.path.strip("/")
        ok = ok and (not db or db.isdigit())
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{key} is not a redis:// or rediss:// URL with a host")
    return raw


def parse_value(key: str, raw: str, annotation: str) -> object:
    """``raw`` as the field type named by ``annotation`` (``int``, ``float``, ``bool``,
    ``Path``, ``Path | None``, ``BindHost``, ``RedisUrl``; anything else stays a
    string).

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
        if annotation == "BindHost":
            return bind_host(key, raw)
        if annotation == "RedisUrl":
            return redis_url(key, raw)
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
