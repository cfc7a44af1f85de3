"""The scorer's online feature reader: one Redis round trip per request, no Feast.

Reads the vectors that the Flink job (or Feast itself) wrote in Feast's Redis layout
(:mod:`services.feature_store.redis_layout`, ``docs/FEATURE_LAYOUT.md``): one
pipeline of two HMGETs, card then terminal. Keys' fixed parts, the hash fields and
the decoders are resolved once, when the reader is built.

Errors: :class:`~services.feature_store.redis_layout.OnlineStoreError` (Redis failed
or timed out; retryable) and
:class:`~services.feature_store.redis_layout.FeatureLayoutError` (a stored value is
not in the layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import RedisError

from services.feature_store.definitions import CARD, TERMINAL
from services.feature_store.redis_layout import (
    PROJECT,
    FeatureVector,
    FeatureViewLayout,
    OnlineStoreError,
)

__all__ = [
    "FeatureVector",
    "OnlineFeatures",
    "RedisFeatureReader",
    "RedisFeatureReaderSync",
]


@dataclass(frozen=True, slots=True)
class OnlineFeatures:
    """The stored features of one request's card and terminal."""

    card: FeatureVector
    terminal: FeatureVector


def _resp_bulk(item: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(item), item)


class _ReadPlan:
    """Per-request work that is the same for every request, done once.

    The two HMGETs are pre-encoded in RESP: a request only splices in its two keys.
    """

    __slots__ = ("_card_head", "_card_tail", "_term_head", "_term_tail", "card", "terminal")

    def __init__(self, project: str) -> None:
        self.card = FeatureViewLayout.for_entity(CARD, project)
        self.terminal = FeatureViewLayout.for_entity(TERMINAL, project)
        self._card_head, self._card_tail = self._hmget_parts(self.card)
        self._term_head, self._term_tail = self._hmget_parts(self.terminal)

    @staticmethod
    def _hmget_parts(layout: FeatureViewLayout) -> tuple[bytes, bytes]:
        head = b"*%d\r\n" % (len(layout.hmget_fields) + 2) + _resp_bulk(b"HMGET")
        return head, b"".join(_resp_bulk(f) for f in layout.hmget_fields)

    def command(self, card_id: str, terminal_id: str) -> bytes:
        """Both HMGETs, ready to send."""
        return b"".join(
            (
                self._card_head,
                _resp_bulk(self.card.key(card_id)),
                self._card_tail,
                self._term_head,
                _resp_bulk(self.terminal.key(terminal_id)),
                self._term_tail,
            )
        )

    def decode(self, card: list[bytes | None], terminal: list[bytes | None]) -> OnlineFeatures:
        return OnlineFeatures(self.card.decode_values(card), self.terminal.decode_values(terminal))


def _check_bytes_client(client: redis.Redis | redis.asyncio.Redis) -> None:
    if client.get_connection_kwargs().get("decode_responses"):
        raise ValueError("the feature reader needs a client with decode_responses=False")


class RedisFeatureReader:
    """Async reader of one card's and one terminal's feature vectors.

    A read takes a connection from the client's pool, writes both pre-encoded
    HMGETs in one send, reads the two replies and gives the connection back: the
    same single round trip as a redis-py pipeline, without the pipeline's per-call
    objects (measured in ``loadtests/online_read.py``). A connection interrupted
    mid-read (error, cancellation) is closed, never reused.

    Args:
        client: a ``redis.asyncio.Redis`` with ``decode_responses=False``; its
            pool and timeouts serve the reads.
        project: Feast project, the key suffix.

    Raises:
        ValueError: the client decodes responses to str.
    """

    def __init__(self, client: redis.asyncio.Redis, *, project: str = PROJECT) -> None:
        _check_bytes_client(client)
        self._client = client
        self._pool = client.connection_pool
        self._plan = _ReadPlan(project)

    @classmethod
    def from_url(cls, url: str, *, project: str = PROJECT, **kwargs: Any) -> RedisFeatureReader:
        """A reader with its own client (``redis://host:port/db``; kwargs go to redis-py)."""
        return cls(redis.asyncio.Redis.from_url(url, **kwargs), project=project)

    async def read(self, card_id: str, terminal_id: str) -> OnlineFeatures:
        """Both vectors, in one round trip.

        Raises:
            OnlineStoreError: Redis failed or timed out.
            FeatureLayoutError: a stored value is not in the layout.
        """
        command = self._plan.command(card_id, terminal_id)
        try:
            conn = await self._pool.get_connection()
        except RedisError as e:
            raise OnlineStoreError(f"reading features: {e}") from e
        try:
            await conn.send_packed_command((command,))
            card = await conn.read_response()
            terminal = await conn.read_response()
        except BaseException as e:
            await conn.disconnect()  # replies may still be in flight on it
            if isinstance(e, RedisError):
                raise OnlineStoreError(f"reading features: {e}") from e
            raise
        finally:
            await self._pool.release(conn)
        return self._plan.decode(card, terminal)

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._client.aclose()


class RedisFeatureReaderSync:
    """The same reader over a synchronous ``redis.Redis`` (scripts, tests, benchmarks)."""

    def __init__(self, client: redis.Redis, *, project: str = PROJECT) -> None:
        _check_bytes_client(client)
        self._client = client
        self._pool = client.connection_pool
        self._plan = _ReadPlan(project)

    @classmethod
    def from_url(cls, url: str, *, project: str = PROJECT, **kwargs: Any) -> RedisFeatureReaderSync:
        """A reader with its own client (``redis://host:port/db``; kwargs go to redis-py)."""
        return cls(redis.Redis.from_url(url, **kwargs), project=project)

    def read(self, card_id: str, terminal_id: str) -> OnlineFeatures:
        """Both vectors, in one round trip.

        Raises:
            OnlineStoreError: Redis failed or timed out.
            FeatureLayoutError: a stored value is not in the layout.
        """
        command = self._plan.command(card_id, terminal_id)
        try:
            conn = self._pool.get_connection()
        except RedisError as e:
            raise OnlineStoreError(f"reading features: {e}") from e
        try:
            conn.send_packed_command((command,))
            card = conn.read_response()
            terminal = conn.read_response()
        except BaseException as e:
            conn.disconnect()  # replies may still be in flight on it
            if isinstance(e, RedisError):
                raise OnlineStoreError(f"reading features: {e}") from e
            raise
        finally:
            self._pool.release(conn)
        return self._plan.decode(card, terminal)

    def close(self) -> None:
        """Close the client and its connections."""
        self._client.close()
