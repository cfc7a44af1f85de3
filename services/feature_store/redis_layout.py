"""Feast 0.67's Redis online layout for riskstream's feature views, byte for byte.

Shared by the PyFlink job (``.venv-flink``: redis-py 5.3, protobuf 5.29, no Feast) and
the scorer (``.venv``: redis-py 7.4): standard library and redis-py only, and no
protobuf import, so the few protobuf messages involved are encoded by hand. The
layout is written down in ``docs/FEATURE_LAYOUT.md``; tests prove it against Feast.

One Redis hash per entity, shared by every feature view of that entity:

* key: Feast's ``serialize_entity_key`` (version 3) of the one string join key,
  followed by the project name in UTF-8;
* field per feature: the 4 little-endian bytes of murmur3_32(``"<view>:<feature>"``),
  value: a ``feast.types.Value`` with ``double_val`` (field 5, 64-bit: tag ``0x29``);
* field ``_ts:<view>``: a ``google.protobuf.Timestamp`` of the event time.

Errors::

    RiskstreamError
    ├── FeatureLayoutError     bytes in Redis are not the layout above (not retryable)
    ├── InvalidEvent           a write names an unknown entity type or feature
    └── InfraError
        └── OnlineStoreError   Redis failed or could not be reached (retryable)
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from services.common.errors import InfraError, InvalidEvent, RiskstreamError
from services.feature_store.definitions import (
    CARD,
    DAY,
    ENTITY_TYPES,
    FEATURES_BY_ENTITY,
    JOIN_KEYS,
    TERMINAL,
)

#: Feast project name: the suffix of every key.
PROJECT = "riskstream"
#: Feature view per entity type (Feast names, no version suffix).
FEATURE_VIEWS = MappingProxyType({CARD: "card_features", TERMINAL: "terminal_features"})
#: Feature views' TTL and the Redis keys' expiry: an entity unseen this long is gone.
ONLINE_TTL_S = 60 * DAY

_VALUE_TYPE_STRING = 2  # feast.types.ValueType.STRING
_U32 = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")
_DOUBLE_TAG = 0x29  # Value.double_val: field 5, wire type 1 (64-bit)
_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1


class FeatureLayoutError(RiskstreamError):
    """A value in Redis is not encoded the way this layout (and Feast) encodes it."""

    def __init__(self, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", retryable=False)
        self.field = field
        self.reason = reason


class OnlineStoreError(InfraError):
    """Redis failed or could not be reached while reading or writing features."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message, component="redis", retryable=retryable)


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 (what ``mmh3.hash(data, signed=False)`` returns).

    Pure Python so the Flink environment needs no ``mmh3``; it runs once per feature
    at start-up, never per event.

    Examples:
        >>> hex(murmur3_32(b"hello"))
        '0x248bfa47'
    """
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & _MASK32
    end = len(data) - len(data) % 4
    for i in range(0, end, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * c1) & _MASK32
        k = (((k << 15) | (k >> 17)) & _MASK32) * c2 & _MASK32
        h ^= k
        h = ((h << 13) | (h >> 19)) & _MASK32
        h = (h * 5 + 0xE6546B64) & _MASK32
    tail = data[end:]
    if tail:
        k = int.from_bytes(tail, "little") * c1 & _MASK32
        h ^= (((k << 15) | (k >> 17)) & _MASK32) * c2 & _MASK32
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK32
    return h ^ (h >> 16)


def feature_field(feature_view: str, feature: str) -> bytes:
    """The hash field of one feature: Feast's ``_mmh3(f"{view}:{feature}")``.

    Examples:
        >>> feature_field("card_features", "card_tx_count_1d").hex()
        'c0ff0a08'
    """
    return _U32.pack(murmur3_32(f"{feature_view}:{feature}".encode()))


def entity_key(project: str, join_key: str, entity_id: str) -> bytes:
    """The Redis key of one entity: serialized EntityKey (version 3) + project.

    Examples:
        >>> entity_key("riskstream", "card_id", "c1").hex()
        '010000000200000007000000636172645f6964020000000200000063317269736b73747265616d'
    """
    jk, eid = join_key.encode(), entity_id.encode()
    return b"".join(
        (
            _U32.pack(1),
            _U32.pack(_VALUE_TYPE_STRING),
            _U32.pack(len(jk)),
            jk,
            _U32.pack(_VALUE_TYPE_STRING),
            _U32.pack(len(eid)),
            eid,
            project.encode(),
        )
    )


def encode_double(value: float) -> bytes:
    """A serialized ``feast.types.Value(double_val=value)``."""
    return b"\x29" + _DOUBLE.pack(value)


def _varint(n: int) -> bytes:
    n &= _MASK64  # negative int64s are 10-byte two's complement varints
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_timestamp(event_time_ms: int) -> bytes:
    """A serialized ``google.protobuf.Timestamp``; zero fields are omitted (proto3).

    Examples:
        >>> encode_timestamp(1_700_000_000_123).hex()
        '0880e2cfaa0610c0a9d33a'
        >>> encode_timestamp(0)
        b''
    """
    seconds, millis = divmod(event_time_ms, 1000)
    out = b"\x08" + _varint(seconds) if seconds else b""
    return out + b"\x10" + _varint(millis * 1_000_000) if millis else out


def decode_timestamp(raw: bytes) -> int:
    """Milliseconds since the epoch of a serialized Timestamp (sub-ms truncated).

    Raises:
        FeatureLayoutError: ``raw`` is not a Timestamp message.
    """
    seconds = nanos = 0
    i, n = 0, len(raw)
    while i < n:
        tag = raw[i]
        i += 1
        value = shift = 0
        while True:
            if i >= n or shift > 63:
                raise FeatureLayoutError(field="_ts", reason=f"truncated varint in {raw.hex()}")
            byte = raw[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if tag == 0x08:
            seconds = value - (1 << 64) if value >> 63 else value
        elif tag == 0x10:
            nanos = value
        else:
            raise FeatureLayoutError(field="_ts", reason=f"unexpected tag {tag:#x}")
    return seconds * 1000 + nanos // 1_000_000


@dataclass(frozen=True, slots=True)
class FeatureVector:
    """One entity's stored features, as read.

    Attributes:
        values: feature name → value, every feature of the view when ``found``
            (a field absent or null in Redis reads as NaN); empty when not found.
            Read-only.
        event_time_ms: event time of the stored vector, None when not found.
        found: whether Redis holds anything for this entity and view.
    """

    values: Mapping[str, float]
    event_time_ms: int | None
    found: bool


NOT_FOUND = FeatureVector(MappingProxyType({}), None, False)


@dataclass(frozen=True)
class FeatureViewLayout:
    """Everything about one feature view's Redis layout that never changes per call.

    Build it once (:meth:`for_entity`) and reuse it for every read and write.

    Examples:
        >>> layout = FeatureViewLayout.for_entity("terminal")
        >>> layout.name, layout.join_key, len(layout.fields) == len(layout.features)
        ('terminal_features', 'terminal_id', True)
        >>> raw = layout.encode_values(dict.fromkeys(layout.features, 2.5), 1_000)
        >>> vector = layout.decode_values([raw[f] for f in layout.hmget_fields])
        >>> vector.values["terminal_risk_7d"], vector.event_time_ms, vector.found
        (2.5, 1000, True)
    """

    project: str
    name: str
    join_key: str
    features: tuple[str, ...]
    fields: tuple[bytes, ...]
    ts_field: bytes
    #: ``fields`` then ``ts_field``: the HMGET argument list, in this order.
    hmget_fields: tuple[bytes, ...]
    _key_prefix: bytes
    _key_suffix: bytes
    # A full vector's n values joined (n times tag + double), unpacked in one call.
    _all_tags: bytes
    _unpack_all: Callable[[bytes], tuple[float, ...]]

    @classmethod
    def build(
        cls, *, project: str, name: str, join_key: str, features: Sequence[str]
    ) -> FeatureViewLayout:
        """The layout of any single-string-key feature view of Float64 features."""
        fields = tuple(feature_field(name, f) for f in features)
        ts_field = f"_ts:{name}".encode()
        jk = join_key.encode()
        return cls(
            project=project,
            name=name,
            join_key=join_key,
            features=tuple(features),
            fields=fields,
            ts_field=ts_field,
            hmget_fields=(*fields, ts_field),
            _key_prefix=_U32.pack(1)
            + _U32.pack(_VALUE_TYPE_STRING)
            + _U32.pack(len(jk))
            + jk
            + _U32.pack(_VALUE_TYPE_STRING),
            _key_suffix=project.encode(),
            _all_tags=bytes([_DOUBLE_TAG]) * len(fields),
            _unpack_all=struct.Struct("<" + "xd" * len(fields)).unpack,
        )

    @classmethod
    def for_entity(cls, entity_type: str, project: str = PROJECT) -> FeatureViewLayout:
        """The layout of ``card_features`` or ``terminal_features`` (from definitions)."""
        return cls.build(
            project=project,
            name=FEATURE_VIEWS[entity_type],
            join_key=JOIN_KEYS[entity_type],
            features=FEATURES_BY_ENTITY[entity_type],
        )

    def key(self, entity_id: str) -> bytes:
        """The Redis key of one entity (same bytes as :func:`entity_key`)."""
        eid = entity_id.encode()
        return self._key_prefix + _U32.pack(len(eid)) + eid + self._key_suffix

    def ordered_values(self, values: Mapping[str, float]) -> list[float]:
        """``values`` in :attr:`features` order.

        Raises:
            InvalidEvent: a feature of the view is missing from ``values``, or
                ``values`` names a feature the view does not have.
        """
        try:
            ordered = [values[name] for name in self.features]
        except KeyError:
            ordered = []
        if len(ordered) != len(values) or not ordered:
            missing = sorted(set(self.features) - set(values))
            extra = sorted(set(values) - set(self.features))
            raise InvalidEvent(
                field=f"{self.name}.values", reason=f"missing {missing}, unknown {extra}"
            )
        return ordered

    def encode_values(self, values: Mapping[str, float], event_time_ms: int) -> dict[bytes, bytes]:
        """The hash fields to HSET for one full feature vector.

        Raises:
            InvalidEvent: see :meth:`ordered_values`.
        """
        out = {
            field: b"\x29" + _DOUBLE.pack(value)
            for field, value in zip(self.fields, self.ordered_values(values), strict=True)
        }
        out[self.ts_field] = encode_timestamp(event_time_ms)
        return out

    def decode_values(self, raw: Sequence[bytes | None]) -> FeatureVector:
        """Decode one HMGET reply over :attr:`hmget_fields`.

        Raises:
            FeatureLayoutError: a field holds something other than a double Value.
        """
        n = len(self.features)
        ts, feature_raw = raw[n], raw[:n]
        try:  # fast path: every feature present (what writers write)
            joined = b"".join(feature_raw)  # type: ignore[arg-type]
        except TypeError:  # some are None
            joined = b""
        if (
            len(joined) == 9 * n
            and max(map(len, feature_raw)) == 9  # type: ignore[arg-type]
            and joined[::9] == self._all_tags
        ):
            values = dict(zip(self.features, self._unpack_all(joined), strict=True))
            return FeatureVector(
                MappingProxyType(values), None if ts is None else decode_timestamp(ts), True
            )
        if ts is None and not any(r is not None for r in raw):
            return NOT_FOUND
        values = {}
        for name, b in zip(self.features, raw, strict=False):
            if b is not None and len(b) == 9 and b[0] == _DOUBLE_TAG:
                values[name] = _DOUBLE.unpack_from(b, 1)[0]
            elif not b:  # absent, or an empty (null) Value
                values[name] = math.nan
            else:
                raise FeatureLayoutError(
                    field=f"{self.name}:{name}", reason=f"not a double Value: {b.hex()}"
                )
        return FeatureVector(
            MappingProxyType(values), None if ts is None else decode_timestamp(ts), True
        )


def layouts(project: str = PROJECT) -> Mapping[str, FeatureViewLayout]:
    """Entity type → its feature view's layout, for every entity type."""
    return MappingProxyType({e: FeatureViewLayout.for_entity(e, project) for e in ENTITY_TYPES})


# Writes a vector unless the stored one is newer (equal event times overwrite: the
# later transaction saw the earlier one). Decodes the stored Timestamp's varints.
# KEYS[1] entity key; ARGV: ts field, event time ms, key TTL s (0: none), field/value...
_WRITE_IF_NOT_OLDER = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local secs, nanos, i, n = 0, 0, 1, #old
  while i <= n do
    local tag = string.byte(old, i)
    local v, mul, c = 0, 1, 128
    i = i + 1
    while c >= 128 do
      c = string.byte(old, i) or 0
      v = v + (c % 128) * mul
      mul = mul * 128
      i = i + 1
    end
    if tag == 8 then secs = v elseif tag == 16 then nanos = v end
  end
  if secs * 1000 + math.floor(nanos / 1000000) > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[3] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
"""
_WRITE_IF_NOT_OLDER_SHA = hashlib.sha1(_WRITE_IF_NOT_OLDER.encode()).hexdigest()  # Redis's id


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What one :meth:`RedisFeatureWriter.flush` did.

    Attributes:
        written: entity hashes written.
        skipped_older: entities not written because Redis held a newer vector.
        coalesced: writes replaced, before sending, by a newer one of the same entity.
    """

    written: int
    skipped_older: int
    coalesced: int


def _bulk(item: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(item), item)


class _WritePlan:
    """One view's HSET arguments, RESP-encoded once: a write packs only its doubles."""

    __slots__ = ("layout", "n_pairs", "prefixes", "ts_field")

    def __init__(self, layout: FeatureViewLayout) -> None:
        self.layout = layout
        self.n_pairs = len(layout.fields) + 1
        # field bulk string, then the value's bulk header and Value tag; the double follows
        self.prefixes = tuple(_bulk(f) + b"$9\r\n\x29" for f in layout.fields)
        self.ts_field = _bulk(layout.ts_field)

    def pairs(self, values: Mapping[str, float], event_time_ms: int) -> bytes:
        """RESP of every ``field value`` pair of one vector, the timestamp last."""
        pack = _DOUBLE.pack
        parts = [
            b"%s%s\r\n" % (prefix, pack(v))
            for prefix, v in zip(self.prefixes, self.layout.ordered_values(values), strict=True)
        ]
        parts += (self.ts_field, _bulk(encode_timestamp(event_time_ms)))
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class _Pending:
    event_time_ms: int
    plan: _WritePlan
    key: bytes  # RESP bulk string of the key
    pairs: bytes


class RedisFeatureWriter:
    """Buffers feature vectors and writes them in Feast's layout, one round trip per batch.

    Within a batch only the newest vector of each entity is sent. With
    ``skip_older`` (Feast's default behaviour) a server-side script writes a vector
    only if Redis does not hold a newer one, in the same single round trip; without
    it the last write wins (Feast's ``skip_dedup``). Commands are RESP-encoded in
    :meth:`write` (the view's field names once, at construction) and a batch goes out
    in one send on one pooled connection. A failed flush keeps the batch, so calling
    :meth:`flush` again retries it (writes are idempotent).

    Args:
        client: a synchronous redis-py client (5.x or 7.x).
        project: Feast project, the key suffix.
        batch_size: :meth:`write` calls that trigger a flush.
        key_ttl_s: EXPIRE set on every written key (Feast's ``key_ttl_seconds``);
            None or 0 for none.
        skip_older: never replace a stored vector with an older one.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        project: str = PROJECT,
        batch_size: int = 1000,
        key_ttl_s: int | None = ONLINE_TTL_S,
        skip_older: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._client = client
        self._plans = {e: _WritePlan(layout) for e, layout in layouts(project).items()}
        self._batch_size = batch_size
        self._ttl = int(key_ttl_s or 0)
        self._ttl_bulk = _bulk(b"%d" % self._ttl)
        self._skip_older = skip_older
        self._sha = _WRITE_IF_NOT_OLDER_SHA
        self._script_loaded = False
        self._pending: dict[bytes, _Pending] = {}  # by key: one view per key
        self._coalesced = 0
        self._writes = 0

    @property
    def pending(self) -> int:
        """Entities buffered and not yet written."""
        return len(self._pending)

    def write(
        self, entity_type: str, entity_id: str, values: Mapping[str, float], event_time_ms: int
    ) -> FlushReport | None:
        """Buffer one entity's full feature vector; flush when the batch is full.

        Returns:
            The flush's report when this call flushed, else None.

        Raises:
            InvalidEvent: unknown entity type, negative or non-integer event time, or
                ``values`` not exactly the view's features.
            OnlineStoreError: the flush this call triggered failed.
        """
        plan = self._plans.get(entity_type)
        if plan is None:
            raise InvalidEvent(field="entity_type", reason=f"unknown {entity_type!r}")
        if not isinstance(event_time_ms, int) or event_time_ms < 0:
            raise InvalidEvent(field="event_time_ms", reason=f"{event_time_ms!r} is not >= 0")
        key = plan.layout.key(entity_id)
        try:
            pairs = plan.pairs(values, event_time_ms)
        except struct.error as e:  # a value that is not a number
            raise InvalidEvent(field=f"{plan.layout.name}.values", reason=str(e)) from e
        entry = _Pending(event_time_ms, plan, _bulk(key), pairs)
        previous = self._pending.get(key)
        if previous is not None:
            self._coalesced += 1
            if self._skip_older and previous.event_time_ms > event_time_ms:
                entry = previous
        self._pending[key] = entry
        self._writes += 1
        return self.flush() if self._writes >= self._batch_size else None

    def flush(self) -> FlushReport:
        """Send every buffered vector in one round trip.

        Raises:
            OnlineStoreError: Redis failed; the batch stays buffered.
        """
        if not self._pending:
            return FlushReport(0, 0, 0)
        items = list(self._pending.values())
        try:
            if not self._skip_older:
                self._send(items)
                written = len(items)
            else:
                try:
                    written = sum(self._send(items))
                except NoScriptError:  # Redis restarted or SCRIPT FLUSH: load, resend all
                    self._script_loaded = False
                    written = sum(self._send(items))
        except RedisError as e:
            raise OnlineStoreError(f"writing {len(items)} feature vectors: {e}") from e
        report = FlushReport(written, len(items) - written, self._coalesced)
        self._pending.clear()
        self._coalesced = self._writes = 0
        return report

    def _commands(self, items: list[_Pending]) -> tuple[bytes, int]:
        """The batch in RESP, and how many replies it gets."""
        if self._skip_older:
            head = _bulk(b"EVALSHA") + _bulk(self._sha.encode()) + _bulk(b"1")
            return b"".join(
                b"*%d\r\n%s%s%s%s%s%s"
                % (
                    7 + 2 * p.plan.n_pairs,
                    head,
                    p.key,
                    p.plan.ts_field,
                    _bulk(b"%d" % p.event_time_ms),
                    self._ttl_bulk,
                    p.pairs,
                )
                for p in items
            ), len(items)
        hset = b"".join(
            b"*%d\r\n$4\r\nHSET\r\n%s%s" % (2 + 2 * p.plan.n_pairs, p.key, p.pairs) for p in items
        )
        if not self._ttl:
            return hset, len(items)
        expire = b"".join(b"*3\r\n$6\r\nEXPIRE\r\n%s%s" % (p.key, self._ttl_bulk) for p in items)
        return hset + expire, 2 * len(items)

    def _send(self, items: list[_Pending]) -> list[Any]:
        if self._skip_older and not self._script_loaded:
            self._client.script_load(_WRITE_IF_NOT_OLDER)
            self._sha, self._script_loaded = _WRITE_IF_NOT_OLDER_SHA, True
        command, n_replies = self._commands(items)
        pool = self._client.connection_pool
        conn = pool.get_connection()
        replies: list[Any] = []
        error: ResponseError | None = None
        try:
            conn.send_packed_command((command,))
            for _ in range(n_replies):  # read them all, so the connection stays in step
                try:
                    replies.append(conn.read_response())
                except ResponseError as e:
                    error = error or e
        except BaseException:
            conn.disconnect()  # replies may still be in flight on it
            raise
        finally:
            pool.release(conn)
        if error is not None:
            raise error
        return replies

    def close(self) -> FlushReport:
        """Flush what is buffered (the client stays the caller's to close)."""
        return self.flush()

    def __enter__(self) -> RedisFeatureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
