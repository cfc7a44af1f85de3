"""The faust-streaming app: ``scores`` and ``labels`` in, through the loop.

This module only translates the wire (protobuf JSON on Kafka) into the monitor's
domain objects and hands them to :class:`services.drift.loop.DriftLoop`. Two
agents read the topics in one consumer group (``group_id``, which is the app id);
a timer follows the registry, closes quiet windows and checks ages. Faust commits
an offset once the agent has taken the record (after processing).

Failure policy (one, here): a record that does not decode is skipped and counted
(``on_invalid``) — the monitor only reads these topics, their producers own their
dead letters; any other error crashes the app, and the worker exits non-zero, so
``riskstream up`` reports the monitor down instead of running a half-alive agent
(faust's default is to restart a crashed agent and carry on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import faust
from faust.types import StreamT

from riskstream.v1 import events_pb2
from services.common.errors import InvalidEvent
from services.common.events import decode_label, decode_score_event
from services.common.kafka import KafkaClientSettings
from services.drift.config import DriftConfig
from services.drift.loop import DriftLoop
from services.drift.monitor import Labelled, Scored
from services.drift.telemetry import DriftTelemetry

log = logging.getLogger(__name__)

_ROUTES = {
    v.number: v.name.removeprefix("ROUTE_").lower() for v in events_pb2.Route.DESCRIPTOR.values
}


def scored(event: events_pb2.ScoreEvent) -> Scored:
    """The monitor's view of a ``scores`` record (scored-at falls back to event time).

    Examples:
        >>> ev = events_pb2.ScoreEvent(transaction_id="t", model_version="v1",
        ...     route=events_pb2.ROUTE_CHAMPION, score=0.2, features={"x": 1.5})
        >>> ev.scored_at.FromMilliseconds(5_000)
        >>> s = scored(ev)
        >>> s.route, s.at_ms, s.event_ms, s.features
        ('champion', 5000, 5000, {'x': 1.5})
    """
    at_ms = event.scored_at.ToMilliseconds() if event.HasField("scored_at") else 0
    event_ms = event.event_time.ToMilliseconds() if event.HasField("event_time") else at_ms
    return Scored(
        transaction_id=event.transaction_id,
        at_ms=at_ms or event_ms,
        event_ms=event_ms,
        version=event.model_version,
        route=_ROUTES.get(event.route, "unspecified"),
        score=event.score,
        features=dict(event.features),
    )


def build_app(
    config: DriftConfig,
    *,
    kafka: KafkaClientSettings,
    make_loop: Callable[[], DriftLoop],
    telemetry: DriftTelemetry,
    datadir: Path,
) -> faust.App:
    """The faust app over the configured topics.

    Args:
        config: the settings (topics, group, offsets, tick interval).
        kafka: the broker (plaintext bootstrap servers; faust's aiokafka client).
        make_loop: builds the loop when the worker starts (its Kafka clients are
            made inside the worker's process, after faust has set up its loop).
        telemetry: where undecodable records are counted.
        datadir: faust's data directory (it keeps nothing there without tables).
    """
    app = faust.App(
        config.group_id,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        web_enabled=False,
        topic_allow_declare=False,  # topics come from infra/local/stack.toml only
        topic_disable_leader=True,  # no tables: no leader topic either
        store="memory://",
        consumer_auto_offset_reset=config.offset_reset,
        datadir=str(datadir),
    )
    scores = app.topic(config.scores_topic, key_serializer="raw", value_serializer="raw")
    labels = app.topic(config.labels_topic, key_serializer="raw", value_serializer="raw")
    holder: dict[str, DriftLoop] = {}

    def loop() -> DriftLoop:
        if "loop" not in holder:
            holder["loop"] = make_loop()
        return holder["loop"]

    async def fatal(exc: Exception) -> None:
        log.critical("drift monitor stopping: %s: %s", type(exc).__name__, exc, exc_info=exc)
        await app.crash(exc)

    @app.agent(scores, name="drift-scores")
    async def on_scores(stream: StreamT[bytes]) -> None:
        async for value in stream:
            try:
                event = decode_score_event(value or b"")
            except InvalidEvent:
                telemetry.on_invalid(config.scores_topic)
                continue
            try:
                loop().update(scored(event))
            except Exception as exc:  # noqa: BLE001 - the one failure policy: stop
                await fatal(exc)

    @app.agent(labels, name="drift-labels")
    async def on_labels(stream: StreamT[bytes]) -> None:
        async for value in stream:
            try:
                label = decode_label(value or b"")
            except InvalidEvent:
                telemetry.on_invalid(config.labels_topic)
                continue
            try:
                loop().update(Labelled(label.transaction_id, label.is_fraud))
            except Exception as exc:  # noqa: BLE001 - the one failure policy: stop
                await fatal(exc)

    @app.timer(config.tick_interval_s)
    async def tick() -> None:
        try:
            loop().tick()
        except Exception as exc:  # noqa: BLE001 - the one failure policy: stop
            await fatal(exc)

    return app
