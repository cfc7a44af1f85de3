"""Pacing: how long to wait before emitting the next item.

A pure kernel: the caller passes the current monotonic time and does the sleeping,
so tests drive it with a fake clock and the wiring stays the only place that blocks.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from services.common.errors import ConfigError

_SPEEDUP = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*x\s*")
_RATE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*/\s*s\s*")


class Pacer:
    """Spaces items in wall-clock time by event-time speed-up, a rate cap, or both.

    With ``speedup`` X, an item whose ``emit_at`` is T seconds after the first item's
    goes out T / X seconds after the first item did (X = 60: an hour of events a
    minute). With ``max_rate`` R, consecutive items are at least 1 / R seconds
    apart. With both, the later of the two instants wins; with neither, the pacer
    never waits ("max-rate"). A caller that falls behind is not made to catch up in
    a burst beyond ``max_rate``, and items whose event time goes backwards go out at
    once.

    Args:
        speedup: event-time seconds per wall-clock second, > 0, or None.
        max_rate: most items per wall-clock second, > 0, or None.

    Raises:
        ConfigError: a value is not a positive finite number.

    Examples:
        >>> from datetime import UTC, datetime, timedelta
        >>> t0 = datetime(2018, 4, 1, tzinfo=UTC)
        >>> pacer = Pacer(speedup=60)
        >>> pacer.delay(t0, now=100.0)
        0.0
        >>> pacer.delay(t0 + timedelta(minutes=2), now=100.5)
        1.5
        >>> capped = Pacer(max_rate=4)
        >>> [capped.delay(t0, now=0.0) for _ in range(3)]
        [0.0, 0.25, 0.5]
    """

    def __init__(self, *, speedup: float | None = None, max_rate: float | None = None) -> None:
        for name, value in (("speedup", speedup), ("max_rate", max_rate)):
            if value is not None and (
                isinstance(value, bool) or not math.isfinite(value) or value <= 0
            ):
                raise ConfigError(f"{name}: must be a positive finite number, got {value!r}")
        self.speedup = speedup
        self.max_rate = max_rate
        self._anchor_event: datetime | None = None
        self._anchor_wall = 0.0
        self._next_slot = -math.inf

    @classmethod
    def parse(cls, spec: str) -> Pacer:
        """Builds a pacer from a CLI-style spec.

        Args:
            spec: ``"max-rate"`` (no pacing), ``"<X>x"`` (speed-up, e.g. ``"60x"``),
                ``"<R>/s"`` (rate cap, e.g. ``"500/s"``), or both joined by a comma
                (``"3600x,2000/s"``).

        Returns:
            The pacer.

        Raises:
            ConfigError: the spec is not understood.

        Examples:
            >>> p = Pacer.parse("3600x,2000/s")
            >>> p.speedup, p.max_rate
            (3600.0, 2000.0)
        """
        if spec.strip() == "max-rate":
            return cls()
        speedup = max_rate = None
        for part in spec.split(","):
            if (match := _SPEEDUP.fullmatch(part)) and speedup is None:
                speedup = float(match.group(1))
            elif (match := _RATE.fullmatch(part)) and max_rate is None:
                max_rate = float(match.group(1))
            else:
                raise ConfigError(
                    f"rate: expected 'max-rate', '<X>x', '<R>/s' or both, got {spec!r}"
                )
        return cls(speedup=speedup, max_rate=max_rate)

    def delay(self, emit_at: datetime, now: float) -> float:
        """Seconds to wait before emitting the next item; assumes the caller then emits it.

        Args:
            emit_at: the item's event-time instant.
            now: the current monotonic clock reading, in seconds.

        Returns:
            A non-negative number of seconds.
        """
        due = now
        if self.speedup is not None:
            if self._anchor_event is None:
                self._anchor_event, self._anchor_wall = emit_at, now
            offset = (emit_at - self._anchor_event).total_seconds() / self.speedup
            due = max(due, self._anchor_wall + offset)
        if self.max_rate is not None:
            due = max(due, self._next_slot)
            self._next_slot = due + 1.0 / self.max_rate
        return due - now
