"""Our writer and reader against Feast 0.67 itself, on real Redis.

Written by :class:`RedisFeatureWriter` → read by ``FeatureStore.get_online_features``;
written by ``FeatureStore.write_to_online_store`` → read by our readers; and the
reader's single round trip, seen from both ends (the client's sends, Redis's MONITOR).
"""

from __future__ import annotations

import asyncio
import math
import random
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
import redis.asyncio
from feast import FeatureStore
from feast.repo_config import load_repo_config

from services.feature_store import feast_store as feast_store_module
from services.feature_store.definitions import CARD, CARD_FEATURES, TERMINAL, TERMINAL_FEATURES
from services.feature_store.feast_store import make_config, make_store
from services.feature_store.online import (
    OnlineFeatures,
    RedisFeatureReader,
    RedisFeatureReaderSync,
)
from services.feature_store.redis_layout import OnlineStoreError, RedisFeatureWriter

pytestmark = pytest.mark.integration

FEATURE_REFS = [f"card_features:{f}" for f in CARD_FEATURES] + [
    f"terminal_features:{f}" for f in TERMINAL_FEATURES
]


@pytest.fixture(scope="module")
def store(
    redis_url: str, module_project: str, tmp_path_factory: pytest.TempPathFactory
) -> FeatureStore:
    root = tmp_path_factory.mktemp("feast")
    return make_store(
        redis_url, root / "offline", root / "registry" / "registry.db", project=module_project
    )


@pytest.fixture
def sync_reader(redis_url: str, module_project: str) -> Iterator[RedisFeatureReaderSync]:
    reader = RedisFeatureReaderSync.from_url(redis_url, project=module_project)
    yield reader
    reader.close()


def _awkward_values(rng: random.Random, features: tuple[str, ...]) -> dict[str, float]:
    special = [0.0, -0.0, 1e-300, -1.5e300, 5e-324, 123456789.123456789, -1.0]
    return {
        f: rng.choice(special) if rng.random() < 0.2 else rng.uniform(-1e6, 1e6) for f in features
    }


def _same_double(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))


def _feast_read(store: FeatureStore, rows: list[dict[str, str]]) -> tuple[dict[str, list], Any]:
    response = store.get_online_features(features=FEATURE_REFS, entity_rows=rows)
    return response.to_dict(), response.proto


def test_feast_reads_what_our_writer_wrote(
    store: FeatureStore, redis_url: str, module_project: str
) -> None:
    rng = random.Random(3)
    cards = {f"wcard-{i}": _awkward_values(rng, CARD_FEATURES) for i in range(25)}
    terminals = {f"wterm-{i}": _awkward_values(rng, TERMINAL_FEATURES) for i in range(10)}
    times = {eid: 1_767_225_600_000 + rng.randrange(10**9) for eid in [*cards, *terminals]}
    client = redis.Redis.from_url(redis_url)
    with RedisFeatureWriter(client, project=module_project, batch_size=7) as writer:
        for eid, values in cards.items():
            writer.write(CARD, eid, values, times[eid])
        for eid, values in terminals.items():
            writer.write(TERMINAL, eid, values, times[eid])
    client.close()

    rows = [{"card_id": c, "terminal_id": f"wterm-{i % 10}"} for i, c in enumerate(cards)]
    rows += [{"card_id": "never-written", "terminal_id": "never-written-either"}]
    got, proto = _feast_read(store, rows)
    names = list(proto.metadata.feature_names.val)
    for i, row in enumerate(rows[:-1]):
        for f in CARD_FEATURES:
            assert _same_double(got[f][i], cards[row["card_id"]][f]), (row, f)
        for f in TERMINAL_FEATURES:
            assert _same_double(got[f][i], terminals[row["terminal_id"]][f]), (row, f)
        card_ts = proto.results[names.index(CARD_FEATURES[0])].event_timestamps[i]
        term_ts = proto.results[names.index(TERMINAL_FEATURES[0])].event_timestamps[i]
        assert card_ts.ToMilliseconds() == times[row["card_id"]]
        assert term_ts.ToMilliseconds() == times[row["terminal_id"]]
    assert all(got[f][-1] is None for f in (*CARD_FEATURES, *TERMINAL_FEATURES))


def _feast_frame(
    join_key: str, vectors: dict[str, dict[str, float]], times_ms: dict[str, int]
) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(vectors, orient="index")
    frame.insert(0, join_key, list(vectors))
    frame["event_time"] = pd.to_datetime([times_ms[e] for e in vectors], unit="ms", utc=True)
    frame["computed_at"] = frame["event_time"]
    return frame.reset_index(drop=True)


def _assert_vectors(
    features: OnlineFeatures,
    card: dict[str, float],
    terminal: dict[str, float],
    card_ms: int,
    terminal_ms: int,
) -> None:
    assert features.card.found and features.terminal.found
    assert features.card.values.keys() == card.keys()
    assert all(_same_double(features.card.values[f], v) for f, v in card.items())
    assert all(_same_double(features.terminal.values[f], v) for f, v in terminal.items())
    assert (features.card.event_time_ms, features.terminal.event_time_ms) == (card_ms, terminal_ms)


def test_our_readers_read_what_feast_wrote(
    store: FeatureStore, redis_url: str, module_project: str, sync_reader: RedisFeatureReaderSync
) -> None:
    rng = random.Random(5)
    cards = {f"fcard-{i}": _awkward_values(rng, CARD_FEATURES) for i in range(5)}
    terminals = {f"fterm-{i}": _awkward_values(rng, TERMINAL_FEATURES) for i in range(5)}
    times = {eid: 1_767_225_600_000 + rng.randrange(10**9) for eid in [*cards, *terminals]}
    store.write_to_online_store("card_features", _feast_frame("card_id", cards, times))
    store.write_to_online_store("terminal_features", _feast_frame("terminal_id", terminals, times))

    async def read_async() -> list[OnlineFeatures]:
        reader = RedisFeatureReader.from_url(redis_url, project=module_project)
        try:
            return [await reader.read(c, t) for c, t in zip(cards, terminals, strict=True)]
        finally:
            await reader.aclose()

    for (c, t), async_result in zip(
        zip(cards, terminals, strict=True), asyncio.run(read_async()), strict=True
    ):
        sync_result = sync_reader.read(c, t)
        _assert_vectors(sync_result, cards[c], terminals[t], times[c], times[t])
        assert async_result == sync_result
    missing = sync_reader.read("nobody", "nowhere")
    assert not missing.card.found and not missing.terminal.found
    assert missing.card.event_time_ms is None and len(missing.card.values) == 0

    # Our writer's "never replace a newer vector" reads Feast's timestamps correctly.
    c = next(iter(cards))
    client = redis.Redis.from_url(redis_url)
    writer = RedisFeatureWriter(client, project=module_project)
    writer.write(CARD, c, dict.fromkeys(CARD_FEATURES, 7.0), times[c] - 1)
    assert writer.flush().skipped_older == 1
    writer.write(CARD, c, dict.fromkeys(CARD_FEATURES, 8.0), times[c] + 1)
    assert writer.flush().written == 1
    client.close()
    assert set(sync_reader.read(c, "x").card.values.values()) == {8.0}


class _CountingConnection(redis.asyncio.Connection):
    """Counts socket writes (one per round trip the client starts)."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        await super().send_packed_command(command, check_health)


def test_a_read_is_one_round_trip_of_two_hmgets(
    store: FeatureStore, redis_url: str, module_project: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    with RedisFeatureWriter(client, project=module_project) as writer:
        writer.write(CARD, "rt-card", dict.fromkeys(CARD_FEATURES, 1.0), 1_000)
        writer.write(TERMINAL, "rt-term", dict.fromkeys(TERMINAL_FEATURES, 2.0), 2_000)
    pool = redis.asyncio.ConnectionPool.from_url(redis_url, connection_class=_CountingConnection)
    reader = RedisFeatureReader(redis.asyncio.Redis(connection_pool=pool), project=module_project)
    token = f"end-of-{module_project}"

    async def reads() -> tuple[int, OnlineFeatures]:
        await reader.read("rt-card", "rt-term")  # connects (handshake commands) first
        _CountingConnection.sends = 0
        results = [await reader.read("rt-card", "rt-term") for _ in range(3)]
        sends = _CountingConnection.sends
        await reader.aclose()
        assert results[0] == results[1] == results[2]
        return sends, results[0]

    with client.monitor() as monitor:
        sends, features = asyncio.run(reads())
        client_b = redis.Redis.from_url(redis_url)
        client_b.echo(token)
        client_b.close()
        commands = []
        for event in monitor.listen():
            if token in event["command"]:
                break
            if module_project in event["command"]:
                commands.append(event["command"].split(" ", 1)[0].upper())
    client.close()
    assert sends == 3  # one write per read
    assert commands == ["HMGET"] * 8  # warm-up + 3 reads, two HMGETs each, nothing else
    assert (
        features.card.event_time_ms == 1_000 and features.terminal.values["terminal_risk_1d"] == 2.0
    )


def test_reader_refuses_a_str_client(redis_url: str) -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        RedisFeatureReaderSync(redis.Redis.from_url(redis_url, decode_responses=True))


def test_reader_wraps_connection_errors() -> None:
    reader = RedisFeatureReaderSync.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    with pytest.raises(OnlineStoreError) as info:
        reader.read("c", "t")
    assert info.value.retryable


def test_make_store_applies_views_from_definitions(
    store: FeatureStore, module_project: str
) -> None:
    views = {fv.name: fv for fv in store.list_feature_views()}
    assert set(views) == {"card_features", "terminal_features"}
    assert [f.name for f in views["card_features"].features] == list(CARD_FEATURES)
    assert [f.name for f in views["terminal_features"].features] == list(TERMINAL_FEATURES)
    assert views["card_features"].ttl.days == 60
    assert store.config.project == module_project
    assert Path(views["card_features"].batch_source.path).parts[-3:] == (
        "silver",
        "features",
        "entity_type=card",
    )


def test_feature_store_yaml_matches_make_config(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's feature_store.yaml and make_config describe the same store."""
    monkeypatch.setenv("RISKSTREAM_REDIS_CONNECTION", "127.0.0.1:6379")
    repo = Path(feast_store_module.__file__).parent / "feast_repo"
    from_yaml = load_repo_config(repo, repo / "feature_store.yaml")
    in_code = make_config("redis://127.0.0.1:6379/0", tmp_path / "registry.db")
    for config in (from_yaml, in_code):
        assert config.project == "riskstream"
        assert config.entity_key_serialization_version == 3
        assert config.registry.enable_online_feature_view_versioning is False
    assert from_yaml.online_store.model_dump() == in_code.online_store.model_dump()
    assert from_yaml.offline_store.type == in_code.offline_store.type == "duckdb"
