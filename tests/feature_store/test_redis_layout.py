"""The Redis layout: golden bytes, Feast's own encoders, and the writer against real Redis."""

from __future__ import annotations

import doctest
import importlib
import math
import random
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import redis
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.errors import InvalidEvent
from services.feature_store.definitions import (
    CARD,
    CARD_FEATURES,
    HANDBOOK_FEATURES,
    TERMINAL,
    TERMINAL_FEATURES,
)
from services.feature_store.redis_layout import (
    NOT_FOUND,
    ONLINE_TTL_S,
    PROJECT,
    FeatureLayoutError,
    FeatureViewLayout,
    OnlineStoreError,
    RedisFeatureWriter,
    decode_timestamp,
    encode_double,
    encode_timestamp,
    entity_key,
    feature_field,
    layouts,
    murmur3_32,
)

# --- golden bytes (docs/FEATURE_LAYOUT.md shows the same) ---------------------------

GOLDEN_KEYS = {
    ("card_id", "card-000042"): "01000000"  # one join key
    "02000000"  # ValueType.STRING (the key's name)
    "07000000"
    "636172645f6964"  # "card_id"
    "02000000"  # ValueType.STRING (the value)
    "0b000000"
    "636172642d303030303432"  # "card-000042"
    "7269736b73747265616d",  # "riskstream"
    ("terminal_id", "term-00007"): "01000000"
    "02000000"
    "0b000000"
    "7465726d696e616c5f6964"  # "terminal_id"
    "02000000"
    "0a000000"
    "7465726d2d3030303037"  # "term-00007"
    "7269736b73747265616d",
    ("card_id", "carte-é"): "01000000"
    "02000000"
    "07000000"
    "636172645f6964"
    "02000000"
    "08000000"  # length in UTF-8 bytes
    "63617274652dc3a9"
    "7269736b73747265616d",
}

#: Hash field of each handbook feature: murmur3_32("<view>:<feature>"), little-endian.
GOLDEN_FIELDS = {
    "card_tx_count_1d": "c0ff0a08",
    "card_amount_mean_1d": "cde33988",
    "card_tx_count_7d": "4743ff42",
    "card_amount_mean_7d": "2e9c3514",
    "card_tx_count_30d": "a70f8709",
    "card_amount_mean_30d": "1c06de36",
    "terminal_delayed_tx_count_1d": "ef8bfa41",
    "terminal_delayed_tx_count_7d": "00725534",
    "terminal_delayed_tx_count_30d": "198b7205",
    "terminal_risk_1d": "da95fa72",
    "terminal_risk_7d": "47c8a80d",
    "terminal_risk_30d": "d16a9779",
}


@pytest.mark.parametrize(("join_key", "entity_id"), list(GOLDEN_KEYS))
def test_entity_key_golden_bytes(join_key: str, entity_id: str) -> None:
    assert entity_key(PROJECT, join_key, entity_id).hex() == GOLDEN_KEYS[(join_key, entity_id)]


def test_feature_fields_golden_bytes() -> None:
    lay = layouts()
    fields = {
        f: fld.hex()
        for layout in lay.values()
        for f, fld in zip(layout.features, layout.fields, strict=True)
    }
    assert {f: fields[f] for f in GOLDEN_FIELDS} == GOLDEN_FIELDS
    assert set(GOLDEN_FIELDS) == set(HANDBOOK_FEATURES) - {
        "tx_amount",
        "tx_is_weekend",
        "tx_is_night",
    }
    assert lay[CARD].ts_field == b"_ts:card_features"
    assert lay[TERMINAL].ts_field == b"_ts:terminal_features"


def test_value_and_timestamp_golden_bytes() -> None:
    assert encode_double(1.5).hex() == "29000000000000f83f"
    assert encode_double(0.0).hex() == "290000000000000000"  # a set oneof is always written
    assert encode_timestamp(1_700_000_000_123).hex() == "0880e2cfaa0610c0a9d33a"
    assert encode_timestamp(1_767_225_600_000).hex() == "0880f2d6ca06"  # no nanos field
    assert encode_timestamp(0) == b""
    assert encode_timestamp(-1).hex() == "08ffffffffffffffffff0110c08faedc03"


# --- cross-checks against Feast's and protobuf's own encoders ---------------------------


def _feast_key(project: str, join_key: str, entity_id: str) -> bytes:
    proto = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=entity_id)])
    assert serialize_entity_key(proto, entity_key_serialization_version=3) + project.encode() == (
        _redis_key(project, proto, entity_key_serialization_version=3)
    )
    return _redis_key(project, proto, entity_key_serialization_version=3)


@pytest.mark.parametrize(
    "entity_id", ["card-000042", "", "x" * 300, "карта-7", "🃏", "term-00007", "a b\x00c"]
)
def test_entity_key_equals_feast(entity_id: str) -> None:
    for entity_type, layout in layouts(PROJECT).items():
        expected = _feast_key(PROJECT, layout.join_key, entity_id)
        assert entity_key(PROJECT, layout.join_key, entity_id) == expected, entity_type
        assert layout.key(entity_id) == expected
    assert FeatureViewLayout.for_entity(CARD, "other").key(entity_id) == _feast_key(
        "other", "card_id", entity_id
    )


def test_every_feature_field_equals_feast() -> None:
    for layout in layouts().values():
        for feature, field in zip(layout.features, layout.fields, strict=True):
            assert field == _mmh3(f"{layout.name}:{feature}"), feature
    assert layouts()[CARD].features == CARD_FEATURES
    assert layouts()[TERMINAL].features == TERMINAL_FEATURES


def test_murmur3_equals_feast_mmh3_on_random_strings() -> None:
    rng = random.Random(7)
    alphabet = "abcxyz_:019é漢🃏"
    for length in range(0, 64):
        for _ in range(5):
            s = "".join(rng.choice(alphabet) for _ in range(length))
            assert struct.pack("<I", murmur3_32(s.encode())) == _mmh3(s), s
            assert feature_field("v", s) == _mmh3(f"v:{s}")


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 1.5, -2.25, 1e-310, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, 0.1],
)
def test_double_value_equals_protobuf(value: float) -> None:
    assert encode_double(value) == ValueProto(double_val=value).SerializeToString()
    parsed = ValueProto.FromString(encode_double(value))
    assert parsed.WhichOneof("val") == "double_val"
    assert struct.pack("<d", parsed.double_val) == struct.pack("<d", value)


def test_nan_value_equals_protobuf() -> None:
    assert encode_double(math.nan) == ValueProto(double_val=math.nan).SerializeToString()


def test_timestamp_equals_protobuf_both_ways() -> None:
    rng = random.Random(11)
    samples = [0, 1, 999, 1000, 1001, -1, -999, -1000, -1001, 2**31 * 1000, 253402300799999]
    samples += [rng.randrange(-(10**12), 4 * 10**12) for _ in range(2000)]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for ms in samples:
        ts = Timestamp()
        ts.FromDatetime(epoch + timedelta(milliseconds=ms))  # what Feast writes
        assert encode_timestamp(ms) == ts.SerializeToString(), ms
        assert decode_timestamp(ts.SerializeToString()) == ms
    with_micros = Timestamp()
    with_micros.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC))
    assert decode_timestamp(with_micros.SerializeToString()) == 1_767_323_045_678  # truncated


def test_malformed_timestamp_is_a_layout_error() -> None:
    with pytest.raises(FeatureLayoutError):
        decode_timestamp(b"\x08\xff")
    with pytest.raises(FeatureLayoutError):
        decode_timestamp(b"\x18\x01")


# --- encode / decode ----------------------------------------------------------------


def test_encode_values_needs_exactly_the_views_features() -> None:
    layout = layouts()[TERMINAL]
    full = dict.fromkeys(TERMINAL_FEATURES, 1.0)
    assert len(layout.encode_values(full, 5)) == len(TERMINAL_FEATURES) + 1
    with pytest.raises(InvalidEvent, match="missing"):
        layout.encode_values({k: v for k, v in full.items() if k != "terminal_risk_1d"}, 5)
    with pytest.raises(InvalidEvent, match="unknown"):
        layout.encode_values({**full, "card_tx_count_1d": 1.0}, 5)


def test_decode_values_found_missing_and_null_fields() -> None:
    layout = layouts()[CARD]
    values = {f: float(i) for i, f in enumerate(CARD_FEATURES)}
    encoded = layout.encode_values(values, 1_000)
    raw = [encoded[f] for f in layout.hmget_fields]
    vector = layout.decode_values(raw)
    assert vector.found and vector.event_time_ms == 1_000 and dict(vector.values) == values
    with pytest.raises(TypeError):
        vector.values["card_tx_count_1d"] = 0.0  # type: ignore[index]
    assert layout.decode_values([None] * len(raw)) is NOT_FOUND
    partial = layout.decode_values([None, b"", *raw[2:]])
    assert math.isnan(partial.values[CARD_FEATURES[0]])
    assert math.isnan(partial.values[CARD_FEATURES[1]])
    assert partial.values[CARD_FEATURES[2]] == 2.0
    no_ts = layout.decode_values([*raw[:-1], None])
    assert no_ts.found and no_ts.event_time_ms is None
    int_value = ValueProto(int64_val=3).SerializeToString()
    with pytest.raises(FeatureLayoutError, match="card_tx_count_10m"):
        layout.decode_values([int_value, *raw[1:]])


def test_layout_module_imports_neither_feast_nor_protobuf_nor_mmh3() -> None:
    """What the Flink environment (protobuf 5.29, no Feast, no mmh3) needs."""
    code = (
        "import sys, services.feature_store.redis_layout, services.feature_store.online\n"
        "bad = [m for m in ('feast', 'google.protobuf', 'mmh3', 'pandas', 'numpy')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "name",
    ["services.feature_store.redis_layout", "services.feature_store.feast_store"],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


# --- the writer against real Redis --------------------------------------------------


def _vector(features: tuple[str, ...], base: float) -> dict[str, float]:
    return {f: base + i / 8 for i, f in enumerate(features)}


def _stored(client: redis.Redis, project: str, entity_type: str, entity_id: str):
    layout = FeatureViewLayout.for_entity(entity_type, project)
    return layout.decode_values(client.hmget(layout.key(entity_id), list(layout.hmget_fields)))


@pytest.mark.integration
def test_writer_batches_coalesces_and_sets_ttl(redis_client: redis.Redis, project: str) -> None:
    writer = RedisFeatureWriter(redis_client, project=project, batch_size=3)
    assert writer.write(CARD, "c1", _vector(CARD_FEATURES, 1), 2_000) is None
    assert writer.write(CARD, "c1", _vector(CARD_FEATURES, 9), 1_000) is None  # older: dropped
    report = writer.write(TERMINAL, "t1", _vector(TERMINAL_FEATURES, 3), 3_000)
    assert report is not None and (report.written, report.coalesced) == (2, 1)
    assert writer.pending == 0
    card = _stored(redis_client, project, CARD, "c1")
    assert dict(card.values) == _vector(CARD_FEATURES, 1) and card.event_time_ms == 2_000
    assert _stored(redis_client, project, TERMINAL, "t1").event_time_ms == 3_000
    ttl = redis_client.ttl(layouts(project)[CARD].key("c1"))
    assert ONLINE_TTL_S - 60 < ttl <= ONLINE_TTL_S


@pytest.mark.integration
def test_writer_never_replaces_a_newer_vector(redis_client: redis.Redis, project: str) -> None:
    writer = RedisFeatureWriter(redis_client, project=project)
    writer.write(CARD, "c1", _vector(CARD_FEATURES, 1), 5_500)
    assert writer.flush().written == 1
    writer.write(CARD, "c1", _vector(CARD_FEATURES, 2), 5_499)
    assert writer.flush().skipped_older == 1
    assert dict(_stored(redis_client, project, CARD, "c1").values) == _vector(CARD_FEATURES, 1)
    writer.write(CARD, "c1", _vector(CARD_FEATURES, 3), 5_500)  # same instant: later one wins
    assert writer.flush().written == 1
    assert dict(_stored(redis_client, project, CARD, "c1").values) == _vector(CARD_FEATURES, 3)


@pytest.mark.integration
def test_last_write_wins_without_skip_older_and_no_ttl(
    redis_client: redis.Redis, project: str
) -> None:
    writer = RedisFeatureWriter(redis_client, project=project, skip_older=False, key_ttl_s=None)
    writer.write(TERMINAL, "t1", _vector(TERMINAL_FEATURES, 1), 9_000)
    writer.flush()
    writer.write(TERMINAL, "t1", _vector(TERMINAL_FEATURES, 2), 1_000)
    writer.flush()
    stored = _stored(redis_client, project, TERMINAL, "t1")
    assert stored.event_time_ms == 1_000 and dict(stored.values) == _vector(TERMINAL_FEATURES, 2)
    assert redis_client.ttl(layouts(project)[TERMINAL].key("t1")) == -1


@pytest.mark.integration
def test_writer_reloads_a_missing_script(redis_client: redis.Redis, project: str) -> None:
    writer = RedisFeatureWriter(redis_client, project=project)
    writer._sha, writer._script_loaded = "0" * 40, True  # as after a Redis restart
    writer.write(CARD, "c1", _vector(CARD_FEATURES, 1), 1)
    assert writer.flush().written == 1


def test_failed_flush_keeps_the_batch() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    writer = RedisFeatureWriter(dead, project="nowhere")
    writer.write(CARD, "c1", _vector(CARD_FEATURES, 1), 1)
    with pytest.raises(OnlineStoreError) as info:
        writer.flush()
    assert info.value.retryable and writer.pending == 1


def test_write_rejects_bad_input() -> None:
    writer = RedisFeatureWriter(redis.Redis(port=1), project="nowhere")
    with pytest.raises(InvalidEvent, match="entity_type"):
        writer.write("merchant", "m1", {}, 1)
    with pytest.raises(InvalidEvent, match="event_time_ms"):
        writer.write(CARD, "c1", _vector(CARD_FEATURES, 1), -5)
    with pytest.raises(InvalidEvent, match="missing"):
        writer.write(CARD, "c1", {}, 5)
    with pytest.raises(InvalidEvent, match=r"card_features\.values"):
        writer.write(CARD, "c1", {**_vector(CARD_FEATURES, 1), "card_tx_count_1d": "x"}, 5)
    assert writer.pending == 0
