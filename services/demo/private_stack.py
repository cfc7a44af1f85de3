"""The demo's own stack: a state directory and free ports, so it never meets another.

``riskstream up`` reads every port from one TOML file (``RISKSTREAM_STACK_CONFIG``)
plus a few ``RISKSTREAM_*`` overrides. The demo copies the repository's file with
every port (broker, controller, Redis, Prometheus, each service's metrics) moved to
a free one, and moves the scorer's gRPC port: a shared stack on the default ports,
or a second demo, keeps running untouched.
"""

from __future__ import annotations

import json
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.stack.config import DEFAULT_CONFIG_PATH


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports nothing listens on right now (the kernel picks them)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _toml_value(value: Any) -> str:
    # Strings, numbers and booleans are all the stack file holds; JSON spells them
    # the way TOML does.
    return json.dumps(value)


def render_toml(data: Mapping[str, Any]) -> str:
    """The stack configuration's shape back to TOML (tables of scalars, nested once)."""
    lines: list[str] = []
    for section, table in data.items():
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        nested = {k: v for k, v in table.items() if isinstance(v, dict)}
        if scalars or not nested:
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
            lines.append("")
        for name, sub in nested.items():
            lines.append(f"[{section}.{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in sub.items()]
            lines.append("")
    return "\n".join(lines)


def private_stack_env(home: Path, *, source: Path = DEFAULT_CONFIG_PATH) -> dict[str, str]:
    """Write ``<home>/stack.toml`` with free ports; return the environment that selects it.

    Args:
        home: the private stack's state directory (created).
        source: the configuration to copy (topics, heaps, timeouts stay as they are).

    Returns:
        ``RISKSTREAM_*`` variables: the state directory, the configuration file, the
        scorer's gRPC port and the services' metrics ports that have their own
        variables.
    """
    data = tomllib.loads(source.read_text())
    metrics = dict(data.get("metrics_ports", {}))
    ports = iter(free_ports(5 + len(metrics)))
    data["kafka"]["port"] = next(ports)
    data["kafka"]["controller_port"] = next(ports)
    data["redis"]["port"] = next(ports)
    data["prometheus"]["port"] = next(ports)
    data["metrics_ports"] = {name: next(ports) for name in metrics}
    scoring_port = next(ports)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "stack.toml"
    path.write_text(render_toml(data))
    return {
        "RISKSTREAM_HOME": str(home),
        "RISKSTREAM_STACK_CONFIG": str(path),
        "RISKSTREAM_SCORING_PORT": str(scoring_port),
        # Variables win over the file: set them too, in case the caller's shell has some.
        "RISKSTREAM_KAFKA_PORT": str(data["kafka"]["port"]),
        "RISKSTREAM_KAFKA_CONTROLLER_PORT": str(data["kafka"]["controller_port"]),
        "RISKSTREAM_REDIS_PORT": str(data["redis"]["port"]),
        "RISKSTREAM_PROMETHEUS_PORT": str(data["prometheus"]["port"]),
        # These services read their port from their own variable first.
        "RISKSTREAM_SCORING_METRICS_PORT": str(data["metrics_ports"].get("scoring", 0)),
        "RISKSTREAM_CONTROLLER_METRICS_PORT": str(data["metrics_ports"].get("controller", 0)),
        "RISKSTREAM_FLINK_METRICS_PORT": str(data["metrics_ports"].get("feature_job", 0)),
    }
