"""Unit tests of the aggregation kernel: order, state, retention, labels, edge values."""

from __future__ import annotations

import doctest
import importlib
import random
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from services.feature_store.aggregation import (
    ALLOWED_LATENESS_S,
    MAX_PENDING_LABELS,
    RETENTION_S,
    CardAggregator,
    LabelEvent,
    TerminalAggregator,
    TxEvent,
    request_features,
)
from services.feature_store.definitions import (
    CARD_FEATURES,
    DAY,
    HOUR,
    LABEL_DELAY_S,
    MINUTE,
    NO_PREVIOUS,
    REQUEST_FEATURES,
    TERMINAL_FEATURES,
)
from services.feature_store.reference import reference_features

T0 = 1_522_540_800_000  # 2018-04-01 00:00:00 UTC, a Sunday
S = 1000  # ms per second


def tx(i: int | str, t_ms: int, amount: float = 10.0, card: str = "c", term: str = "t") -> TxEvent:
    return TxEvent(f"tx-{i}", card, term, amount, t_ms)


@pytest.mark.parametrize(
    "name",
    [
        "services.feature_store.aggregation",
        "services.feature_store.time_flags",
        "services.feature_store.reference",
    ],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


def test_features_come_in_definitions_order() -> None:
    assert tuple(CardAggregator().update(tx(1, T0))) == CARD_FEATURES
    assert tuple(TerminalAggregator().update(tx(1, T0))) == TERMINAL_FEATURES
    assert tuple(request_features(1.0, T0)) == REQUEST_FEATURES


def test_time_flags_agree_with_datetime() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        t = rng.randrange(-(10**12), 4 * 10**12)
        when = datetime.fromtimestamp(t / 1000, UTC)
        flags = request_features(1.0, t)
        assert flags["tx_is_weekend"] == float(when.weekday() >= 5), when
        assert flags["tx_is_night"] == float(when.hour <= 6), when


def test_first_transaction_has_no_previous_and_ties_have_zero_gap() -> None:
    card = CardAggregator()
    assert card.update(tx(1, T0))["card_seconds_since_prev"] == NO_PREVIOUS
    assert card.update(tx(2, T0))["card_seconds_since_prev"] == 0.0
    assert card.update(tx(3, T0 + 1500))["card_seconds_since_prev"] == 1.5


def test_amount_to_mean_with_zero_mean_is_one() -> None:
    card = CardAggregator()
    assert card.update(tx(1, T0, 0.0))["card_amount_to_mean_30d"] == 1.0
    assert card.update(tx(2, T0 + S, 0.0))["card_amount_to_mean_30d"] == 1.0
    after = card.update(tx(3, T0 + 2 * S, 30.0))
    assert after["card_amount_mean_30d"] == 10.0
    assert after["card_amount_to_mean_30d"] == 3.0
    assert card.update(tx(4, T0 + 3 * S, 0.0))["card_amount_to_mean_30d"] == 0.0


def test_amount_ratios_against_the_older_level_leave_out_the_last_week() -> None:
    """A card spends ~20 for three weeks, then five times that: the older mean, over
    (t - 30 d, t - 7 d], still shows the old level; the 7-day mean is pulled up."""
    day_ms = DAY * S
    card = CardAggregator()
    first = card.update(tx(0, T0, 20.0))
    assert first["card_amount_mean_7_30d"] == -1.0  # nothing older than a week yet
    assert first["card_amount_to_mean_7_30d"] == -1.0
    assert first["card_amount_to_mean_1d"] == 1.0 and first["card_amount_to_mean_7d"] == 1.0
    for d in range(1, 21):
        card.update(tx(d, T0 + d * day_ms, 20.0))
    for d in range(21, 24):
        card.update(tx(d, T0 + d * day_ms, 100.0))
    f = card.update(tx("now", T0 + 24 * day_ms, 100.0))
    # (day -6, day 17]: days 0..17, all at 20.
    assert f["card_amount_mean_7_30d"] == 20.0
    assert f["card_amount_to_mean_7_30d"] == 5.0
    assert f["card_amount_max_7d_to_mean_7_30d"] == 5.0
    # The week (day 17, day 24]: days 18-20 at 20, days 21-24 at 100 -> 460 / 7.
    assert f["card_amount_to_mean_7d"] == pytest.approx(100.0 / (460.0 / 7))
    assert f["card_amount_to_mean_1d"] == 1.0
    # Exactly 7 days before is in the older window, exactly 30 days before is not.
    edge = CardAggregator()
    edge.update(tx("old", T0, 50.0))
    edge.update(tx("week", T0 + 23 * day_ms, 10.0))
    at = edge.update(tx("now", T0 + 30 * day_ms, 10.0))
    assert at["card_amount_mean_7_30d"] == 10.0


def _jittered_stream(n: int, seed: int) -> pd.DataFrame:
    """Events on a 5-minute grid (ties, exact window boundaries), arriving up to 12 h late."""
    rng = np.random.default_rng(seed)
    t = np.sort(T0 + rng.integers(0, 20 * DAY // 300, n) * 300 * S)
    arrival = np.argsort(t + rng.integers(0, 12 * HOUR * S, n), kind="stable")
    return pd.DataFrame(
        {
            "transaction_id": [f"tx-{i}" for i in range(n)],
            "card_id": rng.choice(["c1", "c2"], n),
            "terminal_id": rng.choice(["t1", "t2", "t3"], n),
            "amount": np.round(rng.gamma(2.0, 30.0, n), 2),
            "event_time": t,
        }
    ).iloc[arrival]


def _events(frame: pd.DataFrame) -> list[TxEvent]:
    return [
        TxEvent(i, c, k, float(a), int(t))
        for i, c, k, a, t in frame[
            ["transaction_id", "card_id", "terminal_id", "amount", "event_time"]
        ].itertuples(index=False)
    ]


def test_out_of_order_events_get_the_sorted_replay_values() -> None:
    stream = _jittered_stream(240, seed=3)
    times = stream["event_time"].to_numpy()
    late = int((times < np.maximum.accumulate(times)).sum())
    assert late > 30  # the stream really is out of order
    cards: dict[str, CardAggregator] = {}
    terms: dict[str, TerminalAggregator] = {}
    for i, event in enumerate(_events(stream)):
        got = cards.setdefault(event.card_id, CardAggregator()).update(event)
        got |= terms.setdefault(event.terminal_id, TerminalAggregator()).update(event)
        # what a sorted replay of everything received so far gives this event
        want = reference_features(stream.iloc[: i + 1]).iloc[i]
        for name, value in got.items():
            assert value == pytest.approx(want[name], rel=1e-12, abs=1e-12), (i, name)


def test_state_round_trip_mid_stream_gives_identical_outputs() -> None:
    stream = _jittered_stream(600, seed=11)
    events = _events(stream)
    rng = random.Random(5)
    labels = {e.transaction_id: (e.event_time_ms, rng.random() < 0.3) for e in events}
    for cut in (1, 150, 420):
        originals: dict[str, CardAggregator | TerminalAggregator] = {}
        for e in events[:cut]:
            _feed(originals, e, labels)
        copies = {key: type(agg).from_state(agg.to_state()) for key, agg in originals.items()}
        for key, agg in originals.items():
            assert copies[key].to_state() == agg.to_state()
        for e in events[cut:]:
            assert _feed(originals, e, labels) == _feed(copies, e, labels)
        for key, agg in originals.items():
            assert copies[key].to_state() == agg.to_state()


def _feed(
    aggregators: dict[str, CardAggregator | TerminalAggregator],
    event: TxEvent,
    labels: dict[str, tuple[int, bool]],
) -> dict[str, float]:
    card = aggregators.setdefault(event.card_id, CardAggregator())
    term = aggregators.setdefault(event.terminal_id, TerminalAggregator(label_delay_s=DAY))
    assert isinstance(card, CardAggregator) and isinstance(term, TerminalAggregator)
    out = card.update(event) | term.update(event)
    # labels of earlier and of not-yet-seen transactions, some of them pending
    number = int(event.transaction_id.split("-")[1])
    for other in (f"tx-{number - 5}", f"tx-{number + 3}"):
        if other in labels:
            term.add_label(LabelEvent(other, event.terminal_id, *labels[other]))
    return out


def test_pruning_bounds_the_state() -> None:
    card, term = CardAggregator(), TerminalAggregator()
    hourly = [tx(i, T0 + i * HOUR * S) for i in range(24 * 120)]
    lengths, state_bytes = set(), []
    for i, event in enumerate(hourly):
        card.update(event)
        term.update(event)
        term.add_label(LabelEvent(event.transaction_id, "t", event.event_time_ms, True))
        term.add_label(LabelEvent(f"never-{event.transaction_id}", "t", event.event_time_ms, True))
        lengths.add((len(card), len(term)))
        if i % 100 == 0:
            state_bytes.append((len(card.to_state()), len(term.to_state())))
    held = RETENTION_S // HOUR
    assert max(lengths) == (held, held)
    assert state_bytes[-1] == state_bytes[-5]  # bytes stop growing once retention is reached
    assert term.pending_labels == min(MAX_PENDING_LABELS, held)
    last = hourly[-1].event_time_ms
    # 30-day risk still sees every transaction of its window as fraud
    feats = term.update(tx("next", last + HOUR * S))
    assert feats["terminal_delayed_tx_count_30d"] == 30 * 24
    assert feats["terminal_risk_30d"] == 1.0


def test_label_before_its_transaction_is_applied_when_it_arrives() -> None:
    term = TerminalAggregator(label_delay_s=DAY)
    term.update(tx(1, T0))
    term.add_label(LabelEvent("tx-2", "t", T0 + HOUR * S, True))
    assert term.pending_labels == 1
    term.update(tx(2, T0 + HOUR * S))
    assert term.pending_labels == 0
    feats = term.update(tx(3, T0 + (DAY + HOUR) * S))
    assert feats["terminal_delayed_tx_count_1d"] == 2.0
    assert feats["terminal_risk_1d"] == 0.5


def test_latest_label_wins_and_duplicates_count_once() -> None:
    term = TerminalAggregator(label_delay_s=DAY)
    term.update(tx(1, T0))
    for _ in range(3):
        term.add_label(LabelEvent("tx-1", "t", T0, True))
    assert term.update(tx(2, T0 + DAY * S))["terminal_risk_1d"] == 1.0
    term.add_label(LabelEvent("tx-1", "t", T0, False))
    assert term.update(tx(3, T0 + DAY * S))["terminal_risk_1d"] == 0.0


def test_too_late_events_use_the_retained_state_and_are_not_kept() -> None:
    card, term = CardAggregator(), TerminalAggregator()
    newest = T0 + 60 * DAY * S
    for event in (tx(1, newest - 20 * DAY * S), tx(2, newest)):
        card.update(event)
        term.update(event)
    term.add_label(LabelEvent("tx-old", "t", newest - RETENTION_S * S, True))  # dropped
    assert term.pending_labels == 0
    old = tx("old", newest - RETENTION_S * S)
    feats = card.update(old)
    assert feats["card_tx_count_30d"] == 1.0
    assert feats["card_seconds_since_prev"] == NO_PREVIOUS
    assert term.update(old)["terminal_tx_count_30d"] == 1.0
    assert (len(card), len(term)) == (2, 2)
    # one allowed lateness behind is still exact, and kept
    in_time = tx("in", newest - ALLOWED_LATENESS_S * S)
    assert card.update(in_time)["card_tx_count_30d"] == 2.0
    assert len(card) == 3


def test_default_label_delay_is_the_definitions() -> None:
    assert TerminalAggregator().label_delay_s == LABEL_DELAY_S
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="label_delay_s"):
            TerminalAggregator(label_delay_s=bad)  # type: ignore[arg-type]


def test_ids_with_odd_characters_round_trip() -> None:
    card, term = CardAggregator(), TerminalAggregator()
    for i, name in enumerate(["t\0x", "", "ünï", '"q"', "t"]):
        event = TxEvent(name + "-id", "c", name, 1.0 + i, T0 + i * S)
        card.update(event)
        term.update(event)
    term.add_label(LabelEvent("\0future", "t", T0 + DAY * S, True))
    for agg in (card, term):
        restored = type(agg).from_state(agg.to_state())
        assert restored.to_state() == agg.to_state()
    assert CardAggregator.from_state(card.to_state())._terminals == card._terminals


@pytest.mark.parametrize(
    "data",
    [b"", b"RSCA", CardAggregator().to_state()[:-1] + b"\2", TerminalAggregator().to_state()],
)
def test_card_state_rejects_bad_bytes(data: bytes) -> None:
    with pytest.raises(ValueError):
        CardAggregator.from_state(data)


def test_state_rejects_other_versions_and_truncation() -> None:
    card = CardAggregator()
    card.update(tx(1, T0))
    state = card.to_state()
    with pytest.raises(ValueError, match="version"):
        CardAggregator.from_state(state[:4] + b"\x09\x00" + state[6:])
    with pytest.raises(ValueError, match="truncated"):
        CardAggregator.from_state(state[:20])
    with pytest.raises(ValueError, match="checksum"):
        CardAggregator.from_state(state[:-5] + bytes([state[-5] ^ 1]) + state[-4:])
    term = TerminalAggregator()
    term.update(tx(1, T0))
    with pytest.raises(ValueError):
        TerminalAggregator.from_state(term.to_state()[:-3])


def test_windows_exclude_the_event_exactly_one_window_back() -> None:
    card = CardAggregator()
    card.update(tx(1, T0, 5.0))
    feats = card.update(tx(2, T0 + 10 * MINUTE * S, 7.0))
    assert feats["card_tx_count_10m"] == 1.0
    assert feats["card_amount_max_10m"] == 7.0
    assert feats["card_tx_count_1h"] == 2.0
    assert feats["card_amount_max_1h"] == 7.0
    feats = card.update(tx(3, T0 + DAY * S, 1.0))
    assert (feats["card_tx_count_1d"], feats["card_tx_count_7d"]) == (2.0, 3.0)
    assert feats["card_amount_sum_7d"] == 13.0
