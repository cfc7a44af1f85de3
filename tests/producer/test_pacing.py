"""Pacer: speed-up, rate cap, both, none; driven by a fake monotonic clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import ConfigError
from services.producer import Pacer

T0 = datetime(2018, 4, 1, tzinfo=UTC)


def _run(pacer: Pacer, offsets_s: list[float], start: float = 1000.0) -> list[float]:
    """Emits items at event offsets, sleeping as told; returns the wall emission times."""
    now, emitted = start, []
    for offset in offsets_s:
        wait = pacer.delay(T0 + timedelta(seconds=offset), now)
        assert wait >= 0
        now += wait
        emitted.append(now - start)
    return emitted


def test_speedup_maps_event_time_to_wall_time() -> None:
    assert _run(Pacer(speedup=60), [0, 60, 60, 600, 3600]) == pytest.approx([0, 1, 1, 10, 60])
    assert _run(Pacer(speedup=0.5), [0, 1, 3]) == pytest.approx([0, 2, 6])


def test_speedup_anchor_is_the_first_item_and_late_callers_do_not_wait() -> None:
    pacer = Pacer(speedup=10)
    assert pacer.delay(T0 + timedelta(days=3), now=5.0) == 0.0
    assert pacer.delay(T0 + timedelta(days=3, seconds=100), now=7.0) == pytest.approx(8.0)
    # Far behind schedule: no wait, and no negative wait.
    assert pacer.delay(T0 + timedelta(days=3, seconds=110), now=100.0) == 0.0
    # Event time going backwards (an unsorted file): emit at once.
    assert pacer.delay(T0, now=100.0) == 0.0


def test_max_rate_spaces_items_and_never_bursts_to_catch_up() -> None:
    assert _run(Pacer(max_rate=4), [0, 0, 0, 0, 0]) == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    pacer = Pacer(max_rate=2)
    assert pacer.delay(T0, now=0.0) == 0.0
    assert pacer.delay(T0, now=10.0) == 0.0  # slow caller: the slot has passed
    assert pacer.delay(T0, now=10.0) == pytest.approx(0.5)  # but the next one is spaced


def test_speedup_and_rate_cap_together_take_the_later_instant() -> None:
    # 1000x would put these 1 ms apart; the 10/s cap spaces them 100 ms apart.
    emitted = _run(Pacer(speedup=1000, max_rate=10), [0, 1, 2, 3, 10_000])
    assert emitted == pytest.approx([0, 0.1, 0.2, 0.3, 10.0])


def test_unpaced_never_waits() -> None:
    pacer = Pacer()
    assert all(pacer.delay(T0 + timedelta(days=d), now=0.0) == 0.0 for d in range(100))


@pytest.mark.parametrize(
    ("spec", "speedup", "max_rate"),
    [
        ("max-rate", None, None),
        ("60x", 60.0, None),
        ("0.5x", 0.5, None),
        ("500/s", None, 500.0),
        ("3600x, 2000/s", 3600.0, 2000.0),
        ("2000/s,3600x", 3600.0, 2000.0),
    ],
)
def test_parse(spec: str, speedup: float | None, max_rate: float | None) -> None:
    pacer = Pacer.parse(spec)
    assert (pacer.speedup, pacer.max_rate) == (speedup, max_rate)


@pytest.mark.parametrize("spec", ["", "fast", "60", "x", "0x", "60x,70x", "5/m", "max-rate,5/s"])
def test_parse_rejects_nonsense(spec: str) -> None:
    with pytest.raises(ConfigError):
        Pacer.parse(spec)


@pytest.mark.parametrize("kwargs", [{"speedup": 0}, {"speedup": -1.0}, {"max_rate": float("inf")},
                                    {"max_rate": float("nan")}, {"speedup": True}])  # fmt: skip
def test_invalid_values_name_the_field(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=f"^{next(iter(kwargs))}: "):
        Pacer(**kwargs)
