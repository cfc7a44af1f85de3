"""Wiring: simulator or replayer → pacer → KafkaEventPublisher, with progress output.

The only place in the producer that sleeps, talks to Kafka or serves metrics.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.kafka import EventProducer, KafkaClientSettings
from services.producer.config import SimulatorConfig
from services.producer.events import RejectedRow, SimulatedEvent
from services.producer.pacing import Pacer
from services.producer.publisher import KafkaEventPublisher, PublishCounts
from services.producer.simulator import TransactionSimulator
from services.producer.telemetry import NullProducerTelemetry, ProducerTelemetry

_MIN_SLEEP_S = 0.005


@dataclass(frozen=True)
class RunReport:
    """What one produce / replay run did."""

    counts: PublishCounts
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Records per second, acknowledged, over the whole run."""
        total = self.counts.transactions + self.counts.labels + self.counts.dead_letters
        return total / self.elapsed_s if self.elapsed_s > 0 else 0.0


def live_simulator_config(
    base: SimulatorConfig, *, rate: float, duration_s: float, drift_at_s: float | None
) -> SimulatorConfig:
    """Place the simulated days so that the stream ends about now.

    Event time runs faster than wall time (``rate`` events a second against ~0.1 a
    second simulated), so the start is moved back by the simulated span the run will
    cover; events then carry recent, never future, timestamps, and ``drift_at_s``
    (wall seconds into the run) maps to the matching simulated offset.
    """
    profiles_only = TransactionSimulator(dataclasses.replace(base, drift_at=None))
    per_day = float(profiles_only.customers.mean_nb_tx_per_day.sum())
    sim_seconds_per_event = 86_400.0 / max(per_day, 1.0)
    span = timedelta(seconds=rate * duration_s * sim_seconds_per_event)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=span.days + 1)
    drift = None
    if drift_at_s is not None:
        drift = timedelta(seconds=round(rate * drift_at_s * sim_seconds_per_event))
    return dataclasses.replace(base, start=start, drift_at=drift)


def stream_to_kafka(
    items: Iterable[SimulatedEvent | RejectedRow],
    publisher: KafkaEventPublisher,
    pacer: Pacer,
    *,
    duration_s: float | None = None,
    max_items: int | None = None,
    telemetry: ProducerTelemetry | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunReport:
    """Publish items as the pacer allows, until the duration, the count or the stream ends.

    Returns only after every record is acknowledged by the broker.
    """
    telemetry = telemetry or NullProducerTelemetry()
    started = time.monotonic()
    next_progress = started + 1.0
    sent = 0
    counts = publisher.counts
    for item in items:
        now = time.monotonic()
        if duration_s is not None and now - started >= duration_s:
            break
        if max_items is not None and sent >= max_items:
            break
        if isinstance(item, SimulatedEvent):
            wait = pacer.delay(item.emit_at, now)
            # Sleep in slices of at least a few ms: each sleep overshoots a little,
            # and the pacer (rightly) never lets a caller catch up in a burst.
            if wait > _MIN_SLEEP_S:
                time.sleep(wait)
        before = counts.dead_letters
        publisher.publish(item)
        sent += 1  # noqa: SIM113 - counts items sent, not items seen
        if counts.dead_letters > before:
            telemetry.on_dead_letter(next(reversed(counts.by_reason)))
        else:
            telemetry.on_published(item.topic, 1)
        if progress is not None and now >= next_progress:
            next_progress = now + 1.0
            elapsed = now - started
            progress(
                f"\r{elapsed:6.1f} s  transactions {counts.transactions:>9,}  labels "
                f"{counts.labels:>9,}  dlq {counts.dead_letters:>6,}  {sent / elapsed:8.0f}/s"
            )
    publisher.flush()
    report = RunReport(counts=dataclasses.replace(counts), elapsed_s=time.monotonic() - started)
    if progress is not None:
        progress(
            f"\rdone in {report.elapsed_s:.1f} s: {counts.transactions:,} transactions, "
            f"{counts.labels:,} labels, {counts.dead_letters:,} dead letters, all acknowledged "
            f"({report.rate:,.0f}/s)\n"
        )
    return report


def stderr_progress(line: str) -> None:
    """Progress on one terminal line."""
    sys.stderr.write(line)
    sys.stderr.flush()


def publisher_for(settings: KafkaClientSettings, *, topic_prefix: str = "") -> KafkaEventPublisher:
    """A publisher on a fresh reliable producer."""
    return KafkaEventPublisher(EventProducer(settings, linger_ms=20), topic_prefix=topic_prefix)
