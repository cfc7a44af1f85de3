"""Bring the local stack up, down, and report on it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from services.common.errors import InfraError, PortInUseError
from services.stack.components import Component, all_components
from services.stack.config import StackConfig
from services.stack.process import port_holder, port_open, wait_until
from services.stack.topics import TopicReport, ensure_topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentStatus:
    """One line of ``riskstream status``."""

    name: str
    running: bool  # a process we started is alive
    healthy: bool  # it answers its protocol
    pid: int | None
    ports: tuple[int, ...]
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Stack:
    """The local stack described by a :class:`StackConfig`.

    Args:
        config: ports, state directory and topics.
        only: names of the components to act on (all when empty).
        progress: called with one human-readable line per step.
    """

    def __init__(
        self,
        config: StackConfig,
        *,
        only: Sequence[str] = (),
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.config = config
        components = all_components(config)
        unknown = set(only) - {c.name for c in components}
        if unknown:
            raise InfraError(f"unknown components {sorted(unknown)}", component="stack")
        self.components = [c for c in components if not only or c.name in only]
        self.progress = progress

    def up(self) -> TopicReport | None:
        """Start every component that is not running, then create missing topics.

        Idempotent: components already running (ours) are only health-checked.

        Returns:
            What happened to the topics, or None when Kafka is not part of this stack.

        Raises:
            PortInUseError: a port is held by a process we did not start.
            InfraError: a component did not become healthy in time (its log tail
                is in the message; the half-started process is stopped).
        """
        report = None
        for component in self.components:
            self._start(component)
            if component.name == "kafka":
                # Topics before any consumer starts: nothing may subscribe to a missing one.
                report = ensure_topics(self.config.kafka.bootstrap_servers, self.config.topics)
                self.progress(
                    f"topics: {len(report.created)} created, {len(report.existing)} already present"
                )
        return report

    def _start(self, component: Component) -> None:
        started = time.monotonic()
        if component.process.alive():
            if not wait_until(lambda: component.health().ok, timeout_s=component.start_timeout_s):
                raise InfraError(
                    f"running (pid {component.process.pid()}) but not answering: "
                    f"{component.health().detail}",
                    component=component.name,
                )
            self.progress(f"{component.name}: already running (pid {component.process.pid()})")
            return
        for port in component.ports:
            if port_open(port):
                raise PortInUseError(component=component.name, port=port, holder=port_holder(port))
        argv = component.prepare()
        pid = component.process.spawn(argv, env=component.environment())
        self.progress(f"{component.name}: starting (pid {pid}) ...")
        healthy = wait_until(
            lambda: component.process.alive() and component.health().ok,
            timeout_s=component.start_timeout_s,
        )
        if not healthy:
            tail = component.process.log_tail()
            component.process.stop(timeout_s=5)
            raise InfraError(
                f"did not become healthy within {component.start_timeout_s:.0f} s; log:\n{tail}",
                component=component.name,
            )
        self.progress(f"{component.name}: up in {time.monotonic() - started:.1f} s")

    def down(self) -> list[str]:
        """Stop the components we started, in reverse order; returns their names."""
        stopped = []
        for component in reversed(self.components):
            if component.process.stop():
                stopped.append(component.name)
                self.progress(f"{component.name}: stopped")
            else:
                self.progress(f"{component.name}: not running (nothing of ours to stop)")
        return stopped

    def status(self) -> list[ComponentStatus]:
        """Health of every component, whether or not we started it."""
        rows = []
        for component in self.components:
            pid = component.process.pid()
            health = component.health()
            rows.append(
                ComponentStatus(
                    name=component.name,
                    running=pid is not None,
                    healthy=health.ok,
                    pid=pid,
                    ports=component.ports,
                    detail=health.detail,
                )
            )
        return rows
