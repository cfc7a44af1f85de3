"""Malformed events land in `<topic>.dlq` with the reason; the good ones are processed."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Consumer, Message

from riskstream.v1 import events_pb2
from services.common.events import decode_transaction, encode
from services.common.kafka import (
    BatchConsumer,
    ConsumerStopped,
    DeadLetterPublisher,
    EventProducer,
    KafkaClientSettings,
)

pytestmark = pytest.mark.integration


def _transaction(i: int) -> bytes:
    tx = events_pb2.Transaction(
        transaction_id=f"tx-{i}", card_id=f"card-{i % 7}", terminal_id="term-1",
        amount=10.0 + i, currency="EUR", channel=events_pb2.CHANNEL_ECOMMERCE,
    )  # fmt: skip
    tx.event_time.FromSeconds(1_790_000_000 + i)
    return encode(tx)


MALFORMED = {
    b"{not json": "<payload>",
    json.dumps({"transaction_id": "b1", "terminal_id": "t", "amount": 1, "currency": "EUR",
                "event_time": "2026-11-26T10:00:00Z"}).encode(): "card_id",
    json.dumps({"transaction_id": "b2", "card_id": "c", "terminal_id": "t", "amount": "abc",
                "currency": "EUR", "event_time": "2026-11-26T10:00:00Z"}).encode(): "amount",
    json.dumps({"transaction_id": "b3", "card_id": "c", "terminal_id": "t", "amount": -5,
                "currency": "EUR", "event_time": "2026-11-26T10:00:00Z"}).encode(): "amount",
    json.dumps({"transaction_id": "b4", "card_id": "c", "terminal_id": "t", "amount": 5,
                "currency": "ZZZ", "event_time": "2026-11-26T10:00:00Z"}).encode(): "currency",
}  # fmt: skip


def _read_all(settings: KafkaClientSettings, topic: str, group: str, n: int) -> list[Message]:
    consumer = Consumer(
        {**settings.client_config(), "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    for _ in range(60):
        out.extend(m for m in consumer.consume(100, timeout=0.5) if m.error() is None)
        if len(out) >= n:
            break
    consumer.close()
    return out


def test_bad_records_go_to_dlq_with_reason_and_good_ones_are_all_processed(
    kafka_settings: KafkaClientSettings, make_topic, fresh_group: str
) -> None:
    topic = make_topic("transactions", partitions=1)
    producer = EventProducer(kafka_settings)
    good = [_transaction(i) for i in range(50)]
    # Interleave: each malformed record sits among good ones in the same batch.
    payloads = list(good)
    for position, bad in enumerate(MALFORMED):
        payloads.insert(position * 9 + 3, bad)
    for payload in payloads:
        producer.send(topic, payload, key=b"k", headers=[("origin", b"test")])
    producer.flush()

    processed: list[str] = []
    consumer = BatchConsumer(
        kafka_settings, fresh_group, [topic],
        handler=lambda record: processed.append(decode_transaction(record.value()).transaction_id),
        dead_letters=DeadLetterPublisher(EventProducer(kafka_settings)),
        batch_size=100,
    )  # fmt: skip
    stats = consumer.run(max_records=len(payloads), idle_timeout_s=20)
    consumer.close()

    assert processed == [f"tx-{i}" for i in range(50)]
    assert stats.dead_lettered == len(MALFORMED)

    dead = _read_all(kafka_settings, f"{topic}.dlq", fresh_group + "-dlq", len(MALFORMED))
    assert len(dead) == len(MALFORMED)
    by_value = {m.value(): dict(m.headers()) for m in dead}
    assert set(by_value) == set(MALFORMED), "original bytes must be kept"
    for value, field in MALFORMED.items():
        headers = by_value[value]
        assert headers["dlq.field"].decode() == field
        assert headers["dlq.reason"], "a reason must be given"
        assert headers["dlq.source.topic"].decode() == topic
        source_offset = int(headers["dlq.source.offset"])
        assert payloads[source_offset] == value, "source offset must point at the record"
        assert headers["origin"] == b"test", "original headers are kept"
    assert {m.key() for m in dead} == {b"k"}


def test_offsets_are_committed_only_for_processed_records(
    kafka_settings: KafkaClientSettings, make_topic, fresh_group: str
) -> None:
    """A handler failure that is not bad input stops the consumer; the record is redone."""
    topic = make_topic("transactions", partitions=1)
    producer = EventProducer(kafka_settings)
    for i in range(10):
        producer.send(topic, _transaction(i))
    producer.flush()

    seen: list[str] = []

    def flaky(record: Message) -> None:
        tx = decode_transaction(record.value())
        if tx.transaction_id == "tx-6":
            raise RuntimeError("downstream outage")
        seen.append(tx.transaction_id)

    def consumer(handler) -> BatchConsumer:
        return BatchConsumer(
            kafka_settings, fresh_group, [topic], handler=handler,
            dead_letters=DeadLetterPublisher(EventProducer(kafka_settings)),
        )  # fmt: skip

    first = consumer(flaky)
    with pytest.raises(ConsumerStopped, match="downstream outage"):
        first.run(max_records=10, idle_timeout_s=20)
    first.close()
    assert seen == [f"tx-{i}" for i in range(6)]

    # Restarted: resumes at the failed record, nothing before it is redone.
    again: list[str] = []
    second = consumer(lambda r: again.append(decode_transaction(r.value()).transaction_id))
    second.run(max_records=4, idle_timeout_s=20)
    second.close()
    assert again == ["tx-6", "tx-7", "tx-8", "tx-9"]


def test_a_raw_card_number_is_rejected_and_masked_in_the_dlq(
    kafka_settings: KafkaClientSettings, make_topic, fresh_group: str
) -> None:
    topic = make_topic("transactions", partitions=1)
    pan_event = json.dumps(
        {"transaction_id": "p1", "card_id": "4111-1111-1111-1111", "terminal_id": "t",
         "amount": 5, "currency": "EUR", "event_time": "2026-11-26T10:00:00Z"}
    ).encode()  # fmt: skip
    producer = EventProducer(kafka_settings)
    producer.send(topic, pan_event)
    producer.flush()
    consumer = BatchConsumer(
        kafka_settings, fresh_group, [topic], handler=lambda r: decode_transaction(r.value()),
        dead_letters=DeadLetterPublisher(EventProducer(kafka_settings)),
    )  # fmt: skip
    stats = consumer.run(max_records=1, idle_timeout_s=20)
    consumer.close()
    assert stats.dead_lettered == 1

    [dead] = _read_all(kafka_settings, f"{topic}.dlq", fresh_group + "-dlq", 1)
    headers = dict(dead.headers())
    assert headers["dlq.field"] == b"card_id"
    assert headers["dlq.redacted_pans"] == b"1"
    assert b"4111-1111-1111-1111" not in dead.value()
    assert b"4111111111111111" not in dead.value()
    assert json.loads(dead.value())["card_id"] == "411111******1111"
    assert json.loads(dead.value())["transaction_id"] == "p1", "the rest is kept"
