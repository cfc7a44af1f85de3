"""The simulator's stream: determinism, order, label timing, ids, card testing, drift."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from riskstream.v1 import events_pb2
from services.common.errors import ConfigError
from services.common.events import validate_label, validate_transaction
from services.producer import (
    SimulatedEvent,
    SimulatedStream,
    SimulatorConfig,
    TransactionSimulator,
)

SMALL = SimulatorConfig(seed=5, n_customers=300, n_terminals=600)
REPO = Path(__file__).resolve().parents[2]


def _digest(items: list) -> str:
    """One hash over kind, emit time and serialized message of every item."""
    digest = hashlib.sha256()
    for item in items:
        payload = item.message.SerializeToString(deterministic=True)
        digest.update(f"{item.kind}|{item.emit_at.isoformat()}|{len(payload)}|".encode())
        digest.update(payload)
    return digest.hexdigest()


def test_same_seed_same_20k_events_other_seed_other_events() -> None:
    first = TransactionSimulator(SimulatorConfig(seed=42)).stream().take(20_000)
    again = TransactionSimulator(SimulatorConfig(seed=42)).stream().take(20_000)
    other = TransactionSimulator(SimulatorConfig(seed=43)).stream().take(20_000)
    assert len(first) == 20_000
    assert [e.message.SerializeToString(deterministic=True) for e in first] == [
        e.message.SerializeToString(deterministic=True) for e in again
    ]
    assert _digest(first) == _digest(again)
    assert _digest(first) != _digest(other)
    amounts = [e.transaction.amount for e in first[:1000] if e.kind == "transaction"]
    assert amounts != [e.transaction.amount for e in other[:1000] if e.kind == "transaction"]


def test_stream_does_not_depend_on_the_hash_seed() -> None:
    """No set or dict ordering leaks into the stream: other PYTHONHASHSEED, same bytes."""
    code = (
        "import hashlib\n"
        "from services.producer import SimulatorConfig, TransactionSimulator\n"
        "c = SimulatorConfig(seed=5, n_customers=300, n_terminals=600, drift_at=None)\n"
        "h = hashlib.sha256()\n"
        "for e in TransactionSimulator(c).stream().take(3000):\n"
        "    h.update(e.message.SerializeToString(deterministic=True))\n"
        "print(h.hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        digests.add(out.stdout.strip())
    expected = hashlib.sha256()
    for e in TransactionSimulator(SMALL).stream().take(3000):
        expected.update(e.message.SerializeToString(deterministic=True))
    assert digests == {expected.hexdigest()}


def test_stream_is_time_ordered_and_each_label_follows_its_transaction_by_the_delay() -> None:
    delay = timedelta(days=2, hours=3, microseconds=250)
    config = SimulatorConfig(
        seed=1, n_customers=300, n_terminals=600, label_delay=delay,
        card_testing_bursts_per_day=3.0, drift_at=timedelta(days=4),
    )  # fmt: skip
    end = config.start + timedelta(days=8)
    items = list(TransactionSimulator(config).stream(end=end))
    assert all(isinstance(item, SimulatedEvent) for item in items)
    emit = [item.emit_at for item in items]
    assert all(a <= b for a, b in itertools.pairwise(emit))

    transactions = {e.transaction.transaction_id: e for e in items if e.kind == "transaction"}
    labels = [e for e in items if e.kind == "label"]
    assert len(transactions) == len(labels) > 4000
    assert {e.label.transaction_id for e in labels} == set(transactions)
    for event in labels:
        label, tx_event = event.label, transactions[event.label.transaction_id]
        tx = tx_event.transaction
        assert event.emit_at - tx_event.emit_at == delay
        assert event.emit_at == label.label_time.ToDatetime(UTC)
        assert tx_event.emit_at == tx.event_time.ToDatetime(UTC)
        assert label.event_time == tx.event_time
        assert (label.card_id, label.terminal_id) == (tx.card_id, tx.terminal_id)
        assert label.source == events_pb2.LABEL_SOURCE_SIMULATOR
        assert (label.fraud_scenario == "") == (not label.is_fraud)
        assert event.topic == "labels" and event.key == label.transaction_id
    assert all(e.emit_at < end for e in transactions.values())
    assert max(emit) >= end  # the last labels come after the end of event time
    kinds = Counter(e.label.fraud_scenario for e in labels)
    assert set(kinds) == {"", "amount_threshold", "compromised_terminal", "leaked_card",
                          "card_testing", "night_ecommerce"}  # fmt: skip


def test_ids_are_tokens_and_transactions_pass_the_topic_validation() -> None:
    sim = TransactionSimulator(SMALL)
    items = [e for e in sim.stream().take(5000) if e.kind == "transaction"]
    for event in items:
        tx = event.transaction
        assert re.fullmatch(r"tx-5-\d{5}-\d{6}", tx.transaction_id)
        assert re.fullmatch(r"card-\d{6}", tx.card_id)
        assert re.fullmatch(r"term-\d{5}", tx.terminal_id)
        assert tx.merchant_id == "merch-" + tx.terminal_id.removeprefix("term-")
        assert tx.currency == "EUR" and re.fullmatch(r"\d{4}", tx.merchant_category)
        assert tx.channel != events_pb2.CHANNEL_UNSPECIFIED and len(tx.country) == 2
        assert event.topic == "transactions" and event.key == tx.card_id
        validate_transaction(tx)
    assert len({e.transaction.transaction_id for e in items}) == len(items)
    validate_label(sim.day(0)[0].label())
    channels = Counter(e.transaction.channel for e in items)
    assert channels[events_pb2.CHANNEL_CONTACTLESS] > 0
    assert channels[events_pb2.CHANNEL_ECOMMERCE] > 0
    countries = Counter(e.transaction.country for e in items)
    assert countries.most_common(1)[0][0] == "BE" and len(countries) > 1


def test_stream_can_start_and_end_anywhere_without_the_days_before() -> None:
    sim = TransactionSimulator(SMALL)
    start = SMALL.start + timedelta(days=3, hours=7, seconds=0.5)
    end = SMALL.start + timedelta(days=5, hours=2)
    window = list(sim.stream(start=start, end=end))
    window_tx = [e.transaction.SerializeToString() for e in window if e.kind == "transaction"]
    full_tx = [
        lt.transaction.SerializeToString()
        for day in sim.iter_days(n_days=6)
        for lt in day
        if start <= lt.transaction.event_time.ToDatetime(UTC) < end
    ]
    assert window_tx == full_tx and len(full_tx) > 1000
    assert sum(e.kind == "label" for e in window) == len(window_tx)
    with pytest.raises(ConfigError, match=r"^start: "):
        sim.stream(start=SMALL.start - timedelta(seconds=1))
    with pytest.raises(ConfigError, match=r"^start: "):
        sim.stream(start=datetime(2018, 4, 2))


def test_take_returns_at_most_n_and_continues_where_it_stopped() -> None:
    stream = TransactionSimulator(SMALL).stream()
    assert isinstance(stream, SimulatedStream)
    assert stream.take(0) == []
    first, second = stream.take(10), stream.take(10)
    again = TransactionSimulator(SMALL).stream().take(20)
    assert [e.transaction.transaction_id for e in first + second] == [
        e.transaction.transaction_id for e in again
    ]
    end = SMALL.start + timedelta(hours=1)
    assert len(TransactionSimulator(SMALL).stream(end=end).take(10**6)) < 10**6


def test_card_testing_bursts_are_many_small_ecommerce_payments_on_one_card(table_of) -> None:
    config = SimulatorConfig(
        seed=9, n_customers=400, n_terminals=800, card_testing_bursts_per_day=4.0
    )
    days = 20
    sim = TransactionSimulator(config)
    t = table_of(
        (lt for day in sim.iter_days(n_days=days) for lt in day), int(config.start.timestamp())
    )
    testing = t["scenario"] == "card_testing"
    assert t["is_fraud"][testing].all()
    max_span = config.card_testing_max_duration.total_seconds()
    order = np.lexsort((t["event_s"][testing], t["card"][testing]))
    cards, times = t["card"][testing][order], t["event_s"][testing][order]
    terminals, amounts = t["terminal"][testing][order], t["amount"][testing][order]
    new_burst = np.r_[True, (np.diff(cards) != 0) | (np.diff(times) > max_span)]
    bursts = np.split(np.arange(cards.size), np.flatnonzero(new_burst)[1:])

    lo, hi = config.card_testing_tx_per_burst
    expected = days * config.card_testing_bursts_per_day
    assert abs(len(bursts) - expected) <= 5 * math.sqrt(expected)
    sizes = np.array([b.size for b in bursts])
    assert sizes.min() >= lo and sizes.max() <= hi
    size_sd = math.sqrt(((hi - lo + 1) ** 2 - 1) / 12)
    assert abs(sizes.mean() - (lo + hi) / 2) <= 5 * size_sd / math.sqrt(len(bursts))
    for burst in bursts:
        assert times[burst[-1]] - times[burst[0]] <= max_span
        assert len(set(terminals[burst])) == 1
    a_lo, a_hi = config.card_testing_amount_range
    assert amounts.min() >= a_lo and amounts.max() <= a_hi
    assert (t["channel"][testing] == events_pb2.CHANNEL_ECOMMERCE).all()
    assert set(sim.terminals.channel[terminals]) == {events_pb2.CHANNEL_ECOMMERCE}
    genuine_mean = t["amount"][t["scenario"] == ""].mean()
    assert amounts.mean() < genuine_mean / 5


def test_drift_raises_spend_by_the_multiplier_and_starts_the_new_pattern(table_of) -> None:
    drift_at = timedelta(days=15, hours=3)
    config = SimulatorConfig(
        seed=4, n_customers=600, n_terminals=1200, drift_at=drift_at, drift_amount_multiplier=1.6,
    )  # fmt: skip
    days = 30
    sim = TransactionSimulator(config)
    t = table_of(
        (lt for day in sim.iter_days(n_days=days) for lt in day), int(config.start.timestamp())
    )
    drift_s = config.drift_start.timestamp()
    after = t["event_s"] >= drift_s

    # Spend: regular transactions (not the x5 of leaked cards, not injected ones).
    regular = np.isin(t["scenario"], ["", "amount_threshold", "compromised_terminal"])
    before_amounts, after_amounts = t["amount"][regular & ~after], t["amount"][regular & after]
    ratio = after_amounts.mean() / before_amounts.mean()
    se = ratio * math.sqrt(
        before_amounts.var() / before_amounts.mean() ** 2 / before_amounts.size
        + after_amounts.var() / after_amounts.mean() ** 2 / after_amounts.size
    )
    assert abs(ratio - config.drift_amount_multiplier) <= 5 * se
    assert se < 0.02  # the test can tell 1.6 from 1.5

    # The new pattern: only after the drift, at night, new merchants, as many as configured.
    new = t["scenario"] == "night_ecommerce"
    assert new.any() and (t["event_s"][new] >= drift_s).all()
    assert t["is_fraud"][new].all()
    second_of_day = (t["event_s"][new] - int(config.start.timestamp())) % 86_400
    assert (second_of_day < config.drift_fraud_night_end.total_seconds()).all()
    assert set(t["mcc"][new]) == {config.drift_fraud_mcc}
    assert set(t["country"][new]) == {config.drift_fraud_country}
    assert (t["channel"][new] == events_pb2.CHANNEL_ECOMMERCE).all()
    assert (t["terminal"][new] >= config.n_terminals).all()
    assert config.drift_fraud_mcc not in set(t["mcc"][~new])
    assert config.drift_fraud_country not in set(t["country"][~new])
    # Nights after the drift: the partial one of day 15 (03:00-06:00) and days 16..29.
    nights = (days - 16) + 0.5
    lo, hi = config.drift_fraud_tx_per_card
    mean = nights * config.drift_fraud_cards_per_day * (lo + hi) / 2
    assert abs(new.sum() - mean) <= 5 * math.sqrt(mean * (hi + lo) / 2)

    # The threshold moves with spend: scenario 1 keeps its rate, and genuine spend now
    # reaches amounts that meant fraud before (the concept drift a model must survive).
    over = t["scenario"] == "amount_threshold"
    old_threshold = config.amount_threshold
    new_threshold = old_threshold * config.drift_amount_multiplier
    assert (t["amount"][over & after] > new_threshold).all()
    assert (t["amount"][over & ~after] > old_threshold).all()
    n0, n1 = (regular & ~after).sum(), (regular & after).sum()
    p0, p1 = over[regular & ~after].mean(), over[regular & after].mean()
    pooled = (p0 * n0 + p1 * n1) / (n0 + n1)
    assert abs(p1 - p0) <= 5 * math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    genuine_after = t["amount"][(t["scenario"] == "") & after]
    assert ((genuine_after > old_threshold) & (genuine_after <= new_threshold)).sum() > 50


def test_no_drift_no_new_pattern_and_label_delay_zero_is_allowed() -> None:
    config = SimulatorConfig(seed=2, n_customers=200, n_terminals=400, label_delay=timedelta(0))
    items = TransactionSimulator(config).stream().take(4000)
    assert all(e.kind != "label" or e.label.fraud_scenario != "night_ecommerce" for e in items)
    # With no delay each label follows its transaction at once.
    kinds = [e.kind for e in items]
    assert (
        kinds[:4] == ["transaction", "label", "transaction", "label"] or kinds[1] == "transaction"
    )
    emit = [e.emit_at for e in items]
    assert all(a <= b for a, b in itertools.pairwise(emit))
