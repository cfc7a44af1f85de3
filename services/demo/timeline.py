"""The demo's event-time plan: where warm-up, scoring, the drift and the retrain fall.

Labels arrive ``label_delay_days`` after their transaction, and a retrain needs
labelled rows for training, gap, validation and holdout, all after the drift, or it
learns the old world again. So event time must run far ahead of wall time, and the
plan fixes, in simulated days from the stream's start:

``0 ─ warm-up (no Score calls: windows fill) ─ scored_from ─ pre-drift ─ drift ─
post-drift ─ retrain_ready (labels cover a wholly post-drift retrain) ─ horizon``

The stream replays the same simulated days the first model was trained on (same
seed): the scored pre-drift days are that model's holdout days, so the drift
monitor's reference and the live traffic agree until the drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.demo.config import DemoConfig

#: The simulator's default start (a Sunday): the first model's simulated days.
SIMULATOR_EPOCH = datetime(2018, 4, 1, tzinfo=UTC)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Timeline:
    """Simulated days of the demo's phases (UTC, event time).

    Attributes:
        start: day 0 of the stream, midnight UTC, the simulator epoch's weekday.
        scored_from_day: first day whose transactions the built-in client scores.
        drift_day: first day of the drift.
        retrain_ready_day: event time from which the labels cover a retrain whose
            training window starts after the drift.
        horizon_day: the stream's last day (exclusive): a cap, the demo stops
            streaming when the promotion is shown.

    Examples:
        >>> plan = plan_timeline(DemoConfig(), today=datetime(2026, 11, 20, tzinfo=UTC))
        >>> plan.start.isoformat(), plan.start.weekday() == SIMULATOR_EPOCH.weekday()
        ('2026-09-06T00:00:00+00:00', True)
        >>> plan.scored_from_day, plan.drift_day, plan.retrain_ready_day, plan.horizon_day
        (19, 22, 44, 74)
        >>> plan.phase(plan.start + timedelta(days=20, hours=3))
        'pre-drift'
    """

    start: datetime
    scored_from_day: int
    drift_day: int
    retrain_ready_day: int
    horizon_day: int

    def day_of(self, when: datetime) -> float:
        """Simulated days since ``start``."""
        return (when - self.start) / _DAY

    def at(self, day: float) -> datetime:
        """The instant ``day`` simulated days after ``start``."""
        return self.start + day * _DAY

    @property
    def drift_start(self) -> datetime:
        """The drift's first instant."""
        return self.at(self.drift_day)

    def phase(self, when: datetime) -> str:
        """``warm-up``, ``pre-drift`` or ``post-drift`` for an event time."""
        day = self.day_of(when)
        if day < self.scored_from_day:
            return "warm-up"
        return "pre-drift" if day < self.drift_day else "post-drift"

    def scored(self, when: datetime) -> bool:
        """Whether the built-in client scores a transaction of this event time."""
        return self.day_of(when) >= self.scored_from_day


def plan_timeline(config: DemoConfig, *, today: datetime, extra_days: int = 30) -> Timeline:
    """The phases for ``config``, placed so that the whole stream lies in the past.

    Args:
        config: the demo settings.
        today: now (UTC); the stream's horizon ends at or before its midnight, so
            no event is in the future (producers' validation refuses those).
        extra_days: days of stream after ``retrain_ready_day`` (retrain, canary,
            promotion); a cap, seldom reached.

    Returns:
        The plan.
    """
    drift = config.baseline_days
    ready = drift + config.label_delay_days + config.retrain_days + 1
    horizon = ready + extra_days
    midnight = today.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight - timedelta(days=horizon)
    # Same weekday as the simulator's epoch: weekend flags match the first model's data.
    start -= timedelta(days=(start.weekday() - SIMULATOR_EPOCH.weekday()) % 7)
    return Timeline(
        start=start,
        scored_from_day=drift - config.baseline_holdout_days,
        drift_day=drift,
        retrain_ready_day=ready,
        horizon_day=horizon,
    )
