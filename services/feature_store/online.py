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

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any

import hiredis
import redis
import redis.asyncio
from redis.asyncio.connection import parse_url
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
    "PipelinedRedisFeatureReader",
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


class _RespConnection(asyncio.Protocol):
    """One Redis connection; replies resolve reads in the order their commands went out.

    Redis answers a connection's commands in order, so every read in flight shares
    it: a read writes its two HMGETs and waits for the next two replies in line. A
    read whose caller went away keeps its place and its replies are dropped.
    """

    def __init__(self) -> None:
        self._parser = hiredis.Reader()
        self._waiting: deque[tuple[asyncio.Future[list[Any]], list[Any], int]] = deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def send(self, command: bytes, replies: int, waiter: asyncio.Future[list[Any]]) -> None:
        """Write ``command``; ``waiter`` gets its ``replies`` replies."""
        self._waiting.append((waiter, [], replies))
        self._transport.write(command)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        try:
            while (reply := parser.gets()) is not False:
                waiter, got, wanted = self._waiting[0]
                got.append(reply)
                if len(got) == wanted:
                    self._waiting.popleft()
                    if not waiter.done():
                        waiter.set_result(got)
        except (hiredis.ProtocolError, IndexError) as e:  # garbage, or a reply nobody asked for
            self.abort(OnlineStoreError(f"reading features: bad reply stream ({e!r})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(OnlineStoreError(f"reading features: connection lost ({exc!r})"))

    def abort(self, error: OnlineStoreError) -> None:
        """Close at once (replies may still be in flight) and fail every read waiting."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()
        self._fail(error)

    def _fail(self, error: OnlineStoreError) -> None:
        while self._waiting:
            waiter, _, _ = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)


class PipelinedRedisFeatureReader:
    """Async reader of one card's and one terminal's vectors over one pipelined connection.

    The scorer's reader: the same pre-encoded HMGETs and decoders as
    :class:`RedisFeatureReader`, written straight to an asyncio transport and parsed
    by hiredis as they arrive, so a read is one write, one future and one timer
    instead of redis-py's pool checkout, health check, stream reads and timeout
    context per call (about a third of the scorer's own CPU per request, measured
    with py-spy). Concurrent reads share the connection (Redis runs them in
    order); the connection is opened on the first read and again after a failure.
    A read that times out closes it: the reads behind it fail too and the next read
    reconnects (Redis is then slow or gone, and every read would fall back anyway).

    Args:
        host: Redis host.
        port: Redis port.
        db: database number (SELECT on connect when not 0).
        username: ACL user (with ``password``).
        password: AUTH on connect when set.
        tls: an SSL context for ``rediss://``; None for plain TCP.
        timeout_s: connect and per-read timeout, seconds.
        project: Feast project, the key suffix.
    """

    def __init__(
        self,
        host: str,
        port: int = 6379,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        timeout_s: float = 0.05,
        project: str = PROJECT,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._host, self._port, self._tls = host, port, tls
        self._timeout_s = timeout_s
        self._plan = _ReadPlan(project)
        handshake = []
        if password is not None:
            handshake.append(
                [b"AUTH", *([username.encode()] if username else []), password.encode()]
            )
        if db:
            handshake.append([b"SELECT", str(db).encode()])
        self._handshake = b"".join(_resp_command(c) for c in handshake)
        self._handshake_replies = len(handshake)
        self._connection: _RespConnection | None = None
        self._connecting: asyncio.Future[_RespConnection] | None = None

    @classmethod
    def from_url(
        cls, url: str, *, timeout_s: float = 0.05, project: str = PROJECT
    ) -> PipelinedRedisFeatureReader:
        """A reader of ``redis://[[user]:password@]host[:port][/db]`` (``rediss://``: TLS).

        Raises:
            ValueError: not a TCP Redis URL.
        """
        kwargs = parse_url(url)
        if "path" in kwargs or "host" not in kwargs:
            raise ValueError(
                f"{url!r}: the pipelined reader needs redis:// or rediss:// with a host"
            )
        return cls(
            kwargs["host"],
            int(kwargs.get("port", 6379)),
            db=int(kwargs.get("db", 0)),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            tls=ssl.create_default_context() if url.startswith("rediss://") else None,
            timeout_s=timeout_s,
            project=project,
        )

    async def read(self, card_id: str, terminal_id: str) -> OnlineFeatures:
        """Both vectors, in one round trip.

        Raises:
            OnlineStoreError: Redis failed, refused the command or timed out.
            FeatureLayoutError: a stored value is not in the layout.
        """
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._connect()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[Any]] = loop.create_future()
        connection.send(self._plan.command(card_id, terminal_id), 2, waiter)
        timer = loop.call_later(self._timeout_s, _expire, connection, waiter, self._timeout_s)
        try:
            card, terminal = await waiter
        finally:
            timer.cancel()
        for reply in (card, terminal):
            if isinstance(reply, hiredis.ReplyError):
                raise OnlineStoreError(f"reading features: Redis refused the HMGET: {reply}")
        return self._plan.decode(card, terminal)

    async def _connect(self) -> _RespConnection:
        # Concurrent first reads share one connection attempt.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(_retrieve)
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _RespConnection:
        loop = asyncio.get_running_loop()
        connection: _RespConnection | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                _, connection = await loop.create_connection(
                    _RespConnection, self._host, self._port, ssl=self._tls
                )
                if self._handshake:
                    waiter: asyncio.Future[list[Any]] = loop.create_future()
                    connection.send(self._handshake, self._handshake_replies, waiter)
                    for reply in await waiter:
                        if isinstance(reply, hiredis.ReplyError):
                            connection.abort(OnlineStoreError(f"connecting: {reply}"))
                            raise OnlineStoreError(f"connecting to Redis: {reply}", retryable=False)
        except (OSError, TimeoutError) as e:
            if connection is not None:  # connected, but AUTH / SELECT never answered
                connection.abort(OnlineStoreError(f"connecting to Redis: {e!r}"))
            raise OnlineStoreError(f"connecting to Redis: {e!r}") from e
        self._connection = connection
        return connection

    async def aclose(self) -> None:
        """Close the connection; reads in flight fail with OnlineStoreError."""
        if self._connection is not None:
            self._connection.abort(OnlineStoreError("reader closed"))
            self._connection = None


def _resp_command(parts: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(_resp_bulk(p) for p in parts)


def _expire(connection: _RespConnection, waiter: asyncio.Future[Any], timeout_s: float) -> None:
    if not waiter.done():
        connection.abort(OnlineStoreError(f"reading features: no reply in {timeout_s * 1e3:g} ms"))


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A failed connection attempt whose readers all went away is not an unhandled error.
    if not future.cancelled():
        future.exception()


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
