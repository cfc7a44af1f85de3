"""The offline writer lands transactions, labels and feature rows as dated Parquet."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from riskstream.v1 import events_pb2
from services.common.events import encode
from services.common.kafka import EventProducer, KafkaClientSettings
from services.feature_store.__main__ import run
from services.feature_store.config import FeatureStoreConfig
from services.feature_store.definitions import CARD_FEATURES, FEATURE_SET_VERSION

pytestmark = pytest.mark.integration

DAY = 86_400
T0 = 1_790_000_000 - 1_790_000_000 % DAY  # a midnight


def _events(n: int) -> tuple[list, list, list]:
    txs, labels, rows = [], [], []
    for i in range(n):
        tx = events_pb2.Transaction(
            transaction_id=f"tx-{i}", card_id=f"card-{i % 5}", terminal_id=f"term-{i % 3}",
            amount=1.5 * i, currency="EUR", channel=events_pb2.CHANNEL_ECOMMERCE,
        )  # fmt: skip
        tx.event_time.FromSeconds(T0 + i * 400)  # spans 3 dates
        txs.append(tx)
        label = events_pb2.Label(
            transaction_id=tx.transaction_id, card_id=tx.card_id, terminal_id=tx.terminal_id,
            is_fraud=i % 10 == 0, source=events_pb2.LABEL_SOURCE_SIMULATOR,
        )  # fmt: skip
        label.event_time.CopyFrom(tx.event_time)
        label.label_time.FromSeconds(T0 + i * 400 + 7 * DAY)
        labels.append(label)
        row = events_pb2.FeatureRow(
            entity_type="card", entity_id=tx.card_id, transaction_id=tx.transaction_id,
            feature_set_version=FEATURE_SET_VERSION,
        )  # fmt: skip
        row.event_time.CopyFrom(tx.event_time)
        row.computed_at.FromSeconds(T0 + i * 400 + 1)
        row.values.update({name: float(i) for name in CARD_FEATURES[:5]})
        rows.append(row)
    return txs, labels, rows


def test_offline_writer_lands_every_record_once_by_date(
    kafka_settings: KafkaClientSettings, make_topic, tmp_path: Path
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:10]}-"
    for base in ("transactions", "labels", "features"):
        make_topic(base, prefix=prefix, partitions=2)
    txs, labels, rows = _events(600)
    producer = EventProducer(kafka_settings)
    for tx, label, row in zip(txs, labels, rows, strict=True):
        producer.send(prefix + "transactions", encode(tx), key=tx.card_id)
        producer.send(prefix + "labels", encode(label), key=label.transaction_id)
        producer.send(prefix + "features", encode(row), key=row.entity_id)
    producer.send(prefix + "transactions", b'{"amount": "lots"}')  # goes to the DLQ
    producer.flush()

    config = FeatureStoreConfig(offline_root=tmp_path, group_id=f"t-{uuid.uuid4().hex[:8]}")
    written = run(config, kafka_settings, idle_timeout_s=8, topic_prefix=prefix)
    assert written == 1800

    bronze = ds.dataset(tmp_path / "bronze" / "transactions", partitioning="hive").to_table()
    assert sorted(bronze["transaction_id"].to_pylist()) == sorted(t.transaction_id for t in txs)
    assert set(bronze["date"].to_pylist()) == {"2026-09-21", "2026-09-22", "2026-09-23"}
    by_id = {r["transaction_id"]: r for r in bronze.to_pylist()}
    assert by_id["tx-7"]["amount"] == pytest.approx(10.5)
    assert by_id["tx-7"]["channel"] == "CHANNEL_ECOMMERCE"
    assert by_id["tx-7"]["event_time"].timestamp() == T0 + 7 * 400

    gold_labels = ds.dataset(tmp_path / "bronze" / "labels", partitioning="hive").to_table()
    assert sum(gold_labels["is_fraud"].to_pylist()) == 60

    silver = ds.dataset(
        tmp_path / "silver" / "features" / "entity_type=card", partitioning="hive"
    ).to_table()
    assert silver.num_rows == 600
    first = silver.filter(ds.field("transaction_id") == "tx-9").to_pylist()[0]
    assert first["card_id"] == "card-4"
    assert first[CARD_FEATURES[0]] == 9.0
    assert first[CARD_FEATURES[-1]] is None, "a feature the row lacks is null, not 0"

    # Offsets were committed with the files: a restart writes nothing again.
    assert run(config, kafka_settings, idle_timeout_s=5, topic_prefix=prefix) == 0
