"""The online-store repair on real Kafka and Redis (no Flink): the feature log's rows
back into Redis, newer-wins, other feature-set versions and broken rows skipped."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable

import pytest
import redis

from services.common.kafka import EventProducer, KafkaClientSettings
from services.feature_store.definitions import (
    CARD_FEATURES,
    FEATURE_SET_VERSION,
    TERMINAL_FEATURES,
)
from services.feature_store.redis_layout import FeatureViewLayout, RedisFeatureWriter
from services.stack import StackConfig
from services.stack.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))  # flink_jobs is a directory of the repository, not installed
from flink_jobs.online_repair import reapply_feature_log
from flink_jobs.wire import feature_row_json

pytestmark = pytest.mark.integration


def _row(entity_type: str, entity_id: str, at_ms: int, fill: float, version: str) -> str:
    names = CARD_FEATURES if entity_type == "card" else TERMINAL_FEATURES
    return feature_row_json(
        entity_type=entity_type,
        entity_id=entity_id,
        transaction_id=f"tx-{entity_id}-{at_ms}",
        event_time_ms=at_ms,
        values={name: fill + i for i, name in enumerate(names)},
        feature_set_version=version,
        computed_at_ms=at_ms,
    )


def test_rows_are_written_back_newer_wins_and_foreign_rows_skipped(
    running_stack: StackConfig,
    kafka_settings: KafkaClientSettings,
    make_topic: Callable[..., str],
) -> None:
    topic = make_topic("features", partitions=3, dlq=False)
    tag = uuid.uuid4().hex[:8]
    card, stale, old, term = (f"{tag}-{n}" for n in ("card", "stale", "old", "term"))
    port = running_stack.redis.port
    client = redis.Redis(host="127.0.0.1", port=port)
    cards = FeatureViewLayout.for_entity("card")
    terminals = FeatureViewLayout.for_entity("terminal")
    try:
        # Redis already holds a newer vector of `stale` than the log's row of it.
        with RedisFeatureWriter(client) as writer:
            writer.write("card", stale, {n: 7.0 for n in CARD_FEATURES}, 1_522_600_000_000)
        producer = EventProducer(kafka_settings)
        rows = [
            (card, _row("card", card, 1_522_540_831_000, 1.0, FEATURE_SET_VERSION)),
            (card, _row("card", card, 1_522_540_832_000, 2.0, FEATURE_SET_VERSION)),
            (term, _row("terminal", term, 1_522_540_833_000, 3.0, FEATURE_SET_VERSION)),
            (stale, _row("card", stale, 1_522_540_834_000, 4.0, FEATURE_SET_VERSION)),
            (old, _row("card", old, 1_522_540_835_000, 5.0, "fs-before-a-change")),
            (card, '{"entity_type":"card"'),  # cut short
        ]
        for key, value in rows:
            producer.send(topic, value.encode(), key=key)
        assert producer.flush().failed == 0

        report = reapply_feature_log(
            bootstrap_servers=running_stack.kafka.bootstrap_servers,
            topic=topic,
            since_ms=int(time.time() * 1000) - 60_000,
            redis_host="127.0.0.1",
            redis_port=port,
        )

        assert (report.rows, report.skipped) == (6, 2)
        assert report.written == 2  # card (its newer row of two) and term; stale is older
        got = cards.decode_values(client.hmget(cards.key(card), cards.hmget_fields))
        assert got.event_time_ms == 1_522_540_832_000
        assert got.values[CARD_FEATURES[0]] == 2.0 and got.values[CARD_FEATURES[3]] == 5.0
        got = terminals.decode_values(client.hmget(terminals.key(term), terminals.hmget_fields))
        assert got.found and got.values[TERMINAL_FEATURES[0]] == 3.0
        got = cards.decode_values(client.hmget(cards.key(stale), cards.hmget_fields))
        assert got.event_time_ms == 1_522_600_000_000 and got.values[CARD_FEATURES[0]] == 7.0
        assert not client.exists(cards.key(old))

        # Nothing produced after `since_ms`: nothing read.
        later = reapply_feature_log(
            bootstrap_servers=running_stack.kafka.bootstrap_servers,
            topic=topic,
            since_ms=int(time.time() * 1000) + 60_000,
            redis_host="127.0.0.1",
            redis_port=port,
        )
        assert (later.rows, later.written) == (0, 0)
    finally:
        ids = (card, stale, old, term)
        client.delete(*(layout.key(e) for layout in (cards, terminals) for e in ids))
        client.close()
