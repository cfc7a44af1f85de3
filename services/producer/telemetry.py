"""Producer metrics: a domain-named hook interface and its Prometheus adapter."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class ProducerTelemetry(Protocol):
    """What the producer reports; implemented by :class:`PrometheusProducerTelemetry`."""

    def on_published(self, topic: str, n: int) -> None: ...
    def on_dead_letter(self, reason: str) -> None: ...


class NullProducerTelemetry:
    """Reports nothing (tests, or when the metrics port is taken)."""

    def on_published(self, topic: str, n: int) -> None:
        """Ignore."""

    def on_dead_letter(self, reason: str) -> None:
        """Ignore."""


class PrometheusProducerTelemetry:
    """Counters on the producer's metrics port (``metrics_ports.producer``).

    Args:
        port: the endpoint's port.
        host: the address it listens on (``riskstream produce --metrics-host``).
    """

    def __init__(self, port: int, *, host: str) -> None:
        from prometheus_client import Counter, start_http_server

        self._published = Counter(
            "riskstream_producer_events_total", "Records published, by topic", ["topic"]
        )
        self._dead = Counter(
            "riskstream_producer_dead_letters_total", "Items sent to a DLQ, by reason", ["reason"]
        )
        start_http_server(port, addr=host)

    def on_published(self, topic: str, n: int) -> None:
        """Count ``n`` records published to ``topic``."""
        self._published.labels(topic).inc(n)

    def on_dead_letter(self, reason: str) -> None:
        """Count one dead letter."""
        self._dead.labels(reason).inc()


def prometheus_or_null(port: int, *, host: str) -> ProducerTelemetry:
    """Serve metrics on ``host:port``, or report nothing when another producer holds it."""
    try:
        return PrometheusProducerTelemetry(port, host=host)
    except OSError as exc:
        log.warning("metrics port %d unavailable (%s); producer metrics disabled", port, exc)
        return NullProducerTelemetry()
