"""The scorer's metrics: domain-named hooks and their Prometheus adapter.

RPC latency and status counts are observed by the interceptor
(:meth:`ScoringTelemetry.on_rpc`); the request path reports what it decided.

Several workers (``RISKSTREAM_SCORING_WORKERS`` > 1) share one metrics endpoint:
the scorer's ``__main__`` sets :data:`MULTIPROC_DIR_ENV` for every worker before
prometheus-client is imported, each worker writes its counters and histograms
there, and worker 0 serves them summed (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: Every reason the scorer falls back to rules for; their counters start at 0 so a
#: dashboard and an alert see the series before the first fallback.
FALLBACK_REASONS = ("deadline", "features_unavailable", "no_model", "model_error")
_SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

#: prometheus-client's multiprocess directory (read once, when it is first imported).
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip


class ScoringTelemetry(Protocol):
    """What the scorer reports."""

    def on_rpc(self, method: str, code: str, seconds: float) -> None: ...
    def on_scored(
        self, route: str, version: str, decision: str, seconds: float, score: float
    ) -> None: ...
    def on_features(self, seconds: float) -> None: ...
    def on_batch(self, version: str, rows: int, seconds: float) -> None: ...
    def on_fallback(self, reason: str) -> None: ...
    def on_score_event_dropped(self, n: int) -> None: ...
    def on_model_refused(self, reason: str) -> None: ...
    def on_rollout(
        self, versions: dict[str, str], canary_weight: float, created: Mapping[str, float]
    ) -> None: ...
    def set_in_flight(self, n: int) -> None: ...


class NullScoringTelemetry:
    """Reports nothing (tests)."""

    def on_rpc(self, method: str, code: str, seconds: float) -> None:
        """Ignore."""

    def on_scored(
        self, route: str, version: str, decision: str, seconds: float, score: float
    ) -> None:
        """Ignore."""

    def on_features(self, seconds: float) -> None:
        """Ignore."""

    def on_batch(self, version: str, rows: int, seconds: float) -> None:
        """Ignore."""

    def on_fallback(self, reason: str) -> None:
        """Ignore."""

    def on_score_event_dropped(self, n: int) -> None:
        """Ignore."""

    def on_model_refused(self, reason: str) -> None:
        """Ignore."""

    def on_rollout(
        self, versions: dict[str, str], canary_weight: float, created: Mapping[str, float]
    ) -> None:
        """Ignore."""

    def set_in_flight(self, n: int) -> None:
        """Ignore."""


class PrometheusScoringTelemetry:
    """prometheus-client metrics, served on the scorer's metrics port.

    Args:
        port: the endpoint's port (None or 0: no endpoint).
        host: the address it listens on (``ScoringConfig.metrics_host``).
    """

    def __init__(self, port: int | None, *, host: str) -> None:
        from prometheus_client import (
            REGISTRY,
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            multiprocess,
            start_http_server,
        )

        self._rpc = Histogram(
            "riskstream_scoring_rpc_seconds",
            "gRPC handling time by method and status code",
            ["method", "code"],
            buckets=_LATENCY_BUCKETS,
        )
        self._errors = Counter(
            "riskstream_scoring_rpc_errors_total", "RPCs that ended in error, by code", ["code"]
        )
        self._scored = Histogram(
            "riskstream_scoring_decision_seconds",
            "Time to decide, by route and model version",
            ["route", "model_version"],
            buckets=_LATENCY_BUCKETS,
        )
        self._scores = Histogram(
            "riskstream_scoring_score",
            "Scores returned, by route and model version (rules' scores under fallback)",
            ["route", "model_version"],
            buckets=_SCORE_BUCKETS,
        )
        self._decisions = Counter(
            "riskstream_scoring_decisions_total", "Decisions by route and outcome",
            ["route", "decision"],
        )  # fmt: skip
        self._features = Histogram(
            "riskstream_scoring_feature_fetch_seconds",
            "Redis feature read (one round trip)",
            buckets=_LATENCY_BUCKETS,
        )
        self._inference = Histogram(
            "riskstream_scoring_inference_seconds",
            "ONNX Runtime call per batch, by model version",
            ["model_version"],
            buckets=_LATENCY_BUCKETS,
        )
        self._batch = Histogram(
            "riskstream_scoring_batch_rows",
            "Rows per inference call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self._fallbacks = Counter(
            "riskstream_scoring_fallbacks_total", "Rule-based decisions, by reason", ["reason"]
        )
        for reason in FALLBACK_REASONS:
            self._fallbacks.labels(reason)
        self._dropped = Counter(
            "riskstream_scoring_score_events_dropped_total",
            "Score events dropped because the publish buffer was full",
        )
        self._refused = Counter(
            "riskstream_scoring_models_refused_total", "Artifacts refused, by reason", ["reason"]
        )
        self._rollout = RolloutCollector()
        # Summed over live workers; 1 per worker, so the endpoint says how many report.
        self._in_flight = Gauge(
            "riskstream_scoring_in_flight", "Requests being handled", multiprocess_mode="livesum"
        )
        self._workers = Gauge(
            "riskstream_scoring_workers",
            "Scorer processes whose metrics this endpoint sums",
            multiprocess_mode="livesum",
        )
        self._workers.set(1)
        # Label sets repeat (a few methods, codes, routes, versions): each child is
        # looked up once and kept, so a request pays for observe() alone (``labels()``
        # validates and hashes its arguments and takes a lock on every call).
        self._rpc_child = _Children(self._rpc.labels)
        self._error_child = _Children(self._errors.labels)
        self._scored_child = _Children(self._scored.labels)
        self._scores_child = _Children(self._scores.labels)
        self._decisions_child = _Children(self._decisions.labels)
        self._inference_child = _Children(self._inference.labels)
        registry = REGISTRY
        if os.environ.get(MULTIPROC_DIR_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        registry.register(self._rollout)
        if port:
            start_http_server(port, addr=host, registry=registry)

    def on_rpc(self, method: str, code: str, seconds: float) -> None:
        """Observe one RPC."""
        self._rpc_child(method, code).observe(seconds)
        if code != "OK":
            self._error_child(code).inc()

    def on_scored(
        self, route: str, version: str, decision: str, seconds: float, score: float
    ) -> None:
        """Observe one decision."""
        self._scored_child(route, version).observe(seconds)
        self._scores_child(route, version).observe(score)
        self._decisions_child(route, decision).inc()

    def on_features(self, seconds: float) -> None:
        """Observe one feature read."""
        self._features.observe(seconds)

    def on_batch(self, version: str, rows: int, seconds: float) -> None:
        """Observe one inference call."""
        self._inference_child(version).observe(seconds)
        self._batch.observe(rows)

    def on_fallback(self, reason: str) -> None:
        """Count one fallback."""
        self._fallbacks.labels(reason).inc()

    def on_score_event_dropped(self, n: int) -> None:
        """Count dropped score events."""
        self._dropped.inc(n)

    def on_model_refused(self, reason: str) -> None:
        """Count one refused artifact."""
        self._refused.labels(reason).inc()

    def on_rollout(
        self, versions: dict[str, str], canary_weight: float, created: Mapping[str, float]
    ) -> None:
        """Replace the loaded versions (version → role), their training times and the
        canary weight."""
        self._rollout.replace(versions, canary_weight, created)

    def set_in_flight(self, n: int) -> None:
        """Current requests in flight (queue depth)."""
        self._in_flight.set(n)


class RolloutCollector:
    """The loaded versions, their training times and the canary weight, read on scrape.

    Why a collector and not gauges: a rollout replaces the whole set, and in
    multiprocess mode a gauge's removed label sets stay in its files (an unloaded
    version would be reported forever). The endpoint's own process reports it; every
    worker follows the same ``model-updates`` log, so any one of them is the fleet's.
    """

    def __init__(self) -> None:
        # One tuple, replaced whole: a scrape (the HTTP server's thread) sees one state.
        self._state: tuple[dict[str, str], dict[str, float], float] = ({}, {}, 0.0)

    def replace(
        self, versions: Mapping[str, str], canary_weight: float, created: Mapping[str, float]
    ) -> None:
        """The new state (version → role; version → training time)."""
        self._state = (dict(versions), dict(created), canary_weight)

    def collect(self) -> Iterator[Any]:
        """``riskstream_scoring_model_loaded``, ``…_model_created_timestamp_seconds``
        and ``riskstream_scoring_canary_weight`` as they are now."""
        from prometheus_client.core import GaugeMetricFamily

        versions, created, canary_weight = self._state
        loaded = GaugeMetricFamily(
            "riskstream_scoring_model_loaded",
            "1 for each loaded version, labelled by its role",
            labels=["model_version", "role"],
        )
        trained = GaugeMetricFamily(
            "riskstream_scoring_model_created_timestamp_seconds",
            "When each loaded version was trained (its card's created_at), by role",
            labels=["model_version", "role"],
        )
        for version, role in versions.items():
            loaded.add_metric([version, role], 1.0)
            if version in created:
                trained.add_metric([version, role], created[version])
        yield loaded
        yield trained
        yield GaugeMetricFamily(
            "riskstream_scoring_canary_weight", "Canary share of cards", value=canary_weight
        )


class _Children:
    """A metric's children by label values, each built by ``labels`` on first use.

    Bounded by the label sets the scorer produces; a version's children stay after
    it is unloaded, as they do in the metric itself.
    """

    __slots__ = ("_children", "_labels")

    def __init__(self, labels: Callable[..., Any]) -> None:
        self._labels = labels
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._labels(*values)
        return child


def prometheus_or_null(port: int, *, host: str) -> ScoringTelemetry:
    """Prometheus metrics on ``host:port``, or none when the port is taken (logged)."""
    try:
        return PrometheusScoringTelemetry(port, host=host)
    except OSError as exc:
        log.warning("metrics port %d unavailable (%s); scorer metrics disabled", port, exc)
        return NullScoringTelemetry()
