"""kcat, a third-party Kafka client, and riskstream understand each other's events."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from confluent_kafka import Message

from riskstream.v1 import events_pb2
from services.common.events import decode_transaction, encode
from services.common.kafka import (
    BatchConsumer,
    DeadLetterPublisher,
    EventProducer,
    KafkaClientSettings,
)

pytestmark = pytest.mark.integration

KCAT = shutil.which("kcat") or "kcat"


def test_kcat_produced_json_is_accepted_by_riskstream_consumer(
    kafka_settings: KafkaClientSettings, make_topic, fresh_group: str
) -> None:
    topic = make_topic("transactions", partitions=3)
    lines = []
    for i in range(200):
        doc = {
            "transaction_id": f"kcat-{i}",
            "card_id": f"card-{i % 13}",
            "terminal_id": f"term-{i % 5}",
            "merchant_category": "5411",
            "amount": round(3.5 + i * 1.25, 2),
            "currency": "USD",
            "channel": "CHANNEL_CONTACTLESS",
            "country": "US",
            "event_time": f"2026-11-26T10:{i // 60:02d}:{i % 60:02d}Z",
        }
        lines.append(f"{doc['card_id']}|{json.dumps(doc)}")
    subprocess.run(
        [KCAT, "-P", "-b", kafka_settings.bootstrap_servers, "-t", topic, "-K", "|"],
        input="\n".join(lines) + "\n", text=True, check=True, timeout=60,
    )  # fmt: skip

    accepted: dict[str, events_pb2.Transaction] = {}

    def handle(record: Message) -> None:
        tx = decode_transaction(record.value())
        assert record.key().decode() == tx.card_id  # keyed by card, as the contract says
        accepted[tx.transaction_id] = tx

    consumer = BatchConsumer(
        kafka_settings, fresh_group, [topic], handler=handle,
        dead_letters=DeadLetterPublisher(EventProducer(kafka_settings)),
    )  # fmt: skip
    stats = consumer.run(max_records=200, idle_timeout_s=20)
    consumer.close()

    assert stats.dead_lettered == 0
    assert len(accepted) == 200
    tx = accepted["kcat-7"]
    assert tx.amount == pytest.approx(3.5 + 7 * 1.25)
    assert tx.channel == events_pb2.CHANNEL_CONTACTLESS
    assert tx.event_time.ToJsonString() == "2026-11-26T10:00:07Z"


def test_kcat_reads_what_riskstream_produced(
    kafka_settings: KafkaClientSettings, make_topic
) -> None:
    topic = make_topic("transactions", partitions=1)
    producer = EventProducer(kafka_settings)
    sent = []
    for i in range(100):
        tx = events_pb2.Transaction(
            transaction_id=f"rs-{i}", card_id=f"card-{i % 4}", terminal_id="term-9",
            amount=i + 0.99, currency="EUR", country="BE", merchant_category="5812",
            channel=events_pb2.CHANNEL_CARD_PRESENT,
        )  # fmt: skip
        tx.event_time.FromSeconds(1_790_000_000 + i)
        sent.append(tx)
        producer.send(topic, encode(tx), key=tx.card_id)
    producer.flush()

    out = subprocess.run(
        [KCAT, "-C", "-b", kafka_settings.bootstrap_servers, "-t", topic, "-e", "-q",
         "-f", "%k\t%s\n"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    rows = [line.split("\t", 1) for line in out.splitlines() if line]
    assert len(rows) == 100
    for (key, value), tx in zip(rows, sent, strict=True):
        doc = json.loads(value)
        assert key == tx.card_id
        # snake_case names, enum names and RFC 3339 times: readable by any JSON consumer
        assert doc["transaction_id"] == tx.transaction_id
        assert doc["card_id"] == tx.card_id
        assert doc["channel"] == "CHANNEL_CARD_PRESENT"
        assert doc["amount"] == pytest.approx(tx.amount)
        assert doc["event_time"] == tx.event_time.ToJsonString()
