"""The offline writer process: Kafka (transactions, labels, features) → Parquet.

``python -m services.feature_store`` — started by ``riskstream up`` after Kafka. It
consumes with the project's commit-after-processing consumer: a batch's Parquet
files are renamed into place before its offsets are committed; invalid records go
to their topic's DLQ.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from confluent_kafka import Message

from riskstream.v1 import events_pb2
from services.common.events import decode_feature_row, decode_label, decode_transaction
from services.common.kafka import (
    BatchConsumer,
    DeadLetterPublisher,
    EventProducer,
    KafkaClientSettings,
)
from services.common.shutdown import stop_on_signals
from services.feature_store.config import FeatureStoreConfig
from services.feature_store.offline import ParquetOfflineWriter
from services.stack import local_kafka_settings

log = logging.getLogger(__name__)

TOPICS = ("transactions", "labels", "features")


class OfflineBatch:
    """Buffers one consumer batch per topic and writes it at commit time."""

    def __init__(self, writer: ParquetOfflineWriter) -> None:
        self.writer = writer
        self.transactions: list[events_pb2.Transaction] = []
        self.labels: list[events_pb2.Label] = []
        self.features: list[events_pb2.FeatureRow] = []
        self.written = 0

    def handle(self, record: Message) -> None:
        """Decode (raising InvalidEvent for the DLQ) and buffer one record."""
        topic = record.topic() or ""
        payload = record.value() or b""
        if topic.endswith("transactions"):
            self.transactions.append(decode_transaction(payload))
        elif topic.endswith("labels"):
            self.labels.append(decode_label(payload))
        else:
            # The feature log carries event times of replayed history: no skew check.
            self.features.append(decode_feature_row(payload))

    def flush(self) -> None:
        """Write what is buffered; called before the batch's offsets are committed."""
        self.writer.write_transactions(self.transactions)
        self.writer.write_labels(self.labels)
        self.writer.write_feature_rows(self.features)
        self.written += len(self.transactions) + len(self.labels) + len(self.features)
        self.transactions, self.labels, self.features = [], [], []


def run(
    config: FeatureStoreConfig,
    kafka: KafkaClientSettings,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    idle_timeout_s: float | None = None,
    topic_prefix: str = "",
) -> int:
    """Consume until asked to stop (or idle); returns the number of records written."""
    topics = [topic_prefix + t for t in TOPICS]
    batch = OfflineBatch(ParquetOfflineWriter(config.offline_root))
    consumer = BatchConsumer(
        kafka,
        config.group_id,
        topics,
        handler=batch.handle,
        dead_letters=DeadLetterPublisher(EventProducer(kafka)),
        batch_size=config.batch_size,
        before_commit=batch.flush,
    )
    log.info("offline writer started: %s -> %s", ",".join(topics), config.offline_root)
    try:
        consumer.run(should_stop=should_stop, idle_timeout_s=idle_timeout_s, poll_timeout_s=1.0)
    finally:
        consumer.close()
        log.info("offline writer stopped after %d records", batch.written)
    return batch.written


def main() -> int:
    """Wire settings from the environment and run until SIGTERM."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    should_stop = stop_on_signals()
    kafka = local_kafka_settings("riskstream-offline-writer")
    run(FeatureStoreConfig.from_env(), kafka, should_stop=should_stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
