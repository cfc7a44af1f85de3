"""100k simulated events through the real broker: nothing lost, content intact, order kept."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Consumer

from services.common.events import decode_label, decode_transaction, encode
from services.common.kafka import KafkaClientSettings
from services.producer.__main__ import publisher_for, stream_to_kafka
from services.producer.config import SimulatorConfig
from services.producer.events import SimulatedEvent
from services.producer.pacing import Pacer
from services.producer.simulator import TransactionSimulator

pytestmark = pytest.mark.integration

N_EVENTS = 100_000


def _consume_all(settings: KafkaClientSettings, topics: list[str], n: int) -> list:
    consumer = Consumer(
        {**settings.client_config(), "group.id": f"verify-{uuid.uuid4().hex[:8]}",
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )  # fmt: skip
    consumer.subscribe(topics)
    records = []
    idle = 0
    while len(records) < n and idle < 20:
        batch = [m for m in consumer.consume(5000, timeout=1.0) if m.error() is None]
        idle = 0 if batch else idle + 1
        records.extend(batch)
    # Anything beyond n would be a duplicate: read a little longer to catch it.
    records.extend(m for m in consumer.consume(5000, timeout=2.0) if m.error() is None)
    consumer.close()
    return records


def test_100k_simulated_events_come_back_complete_and_in_card_order(
    kafka_settings: KafkaClientSettings, make_topic
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:10]}-"
    make_topic("transactions", prefix=prefix)
    make_topic("labels", prefix=prefix, partitions=3)
    # Labels every 7 days: start 20 days in so both kinds are in the 100k.
    simulator = TransactionSimulator(SimulatorConfig(seed=11, n_customers=2000, n_terminals=4000))
    sent = [item for item in simulator.stream().take(N_EVENTS) if isinstance(item, SimulatedEvent)]
    assert len(sent) == N_EVENTS
    publisher = publisher_for(kafka_settings, topic_prefix=prefix)  # private topics
    report = stream_to_kafka(sent, publisher, Pacer())
    assert report.counts.dead_letters == 0
    n_tx = sum(1 for e in sent if e.kind == "transaction")
    assert report.counts.transactions == n_tx
    assert report.counts.labels == N_EVENTS - n_tx > 0

    records = _consume_all(kafka_settings, [prefix + "transactions", prefix + "labels"], N_EVENTS)
    assert len(records) == N_EVENTS, "same count: nothing lost, nothing duplicated"

    expected = {encode(e.message) for e in sent}
    assert {r.value() for r in records} == expected, "same content, byte for byte"

    # Per-card order: the order of each card's transactions as consumed equals
    # the order in which they were produced.
    produced_order: dict[str, list[str]] = defaultdict(list)
    for e in sent:
        if e.kind == "transaction":
            produced_order[e.transaction.card_id].append(e.transaction.transaction_id)
    consumed_order: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r.topic().endswith("transactions"):
            tx = decode_transaction(r.value())
            assert r.key().decode() == tx.card_id
            consumed_order[tx.card_id].append(tx.transaction_id)
        else:
            label = decode_label(r.value())
            assert r.key().decode() == label.transaction_id
    assert consumed_order == produced_order
