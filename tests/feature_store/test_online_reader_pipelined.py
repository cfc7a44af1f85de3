"""The scorer's pipelined reader against real Redis: same vectors as the redis-py reader,
one round trip of two HMGETs, concurrent reads each get their own replies, and
failures (refused, silent server, closed connection) end in OnlineStoreError and a
reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
import redis

from services.feature_store.definitions import CARD, CARD_FEATURES, TERMINAL, TERMINAL_FEATURES
from services.feature_store.online import (
    OnlineFeatures,
    PipelinedRedisFeatureReader,
    RedisFeatureReader,
)
from services.feature_store.redis_layout import OnlineStoreError, RedisFeatureWriter

pytestmark = pytest.mark.integration

CARDS = [f"pcard-{i}" for i in range(40)]
TERMINALS = [f"pterm-{i}" for i in range(40)]


def _write(redis_url: str, project: str) -> None:
    rng = random.Random(3)
    client = redis.Redis.from_url(redis_url)
    with RedisFeatureWriter(client, project=project) as writer:
        for i, card in enumerate(CARDS):
            values = {f: rng.uniform(-1e6, 1e6) for f in CARD_FEATURES}
            writer.write(CARD, card, values, 1_700_000_000_000 + i)
        for i, terminal in enumerate(TERMINALS[::2]):  # every other terminal has no vector
            values = {f: rng.uniform(0, 1) for f in TERMINAL_FEATURES}
            writer.write(TERMINAL, terminal, values, 1_700_000_100_000 + i)
    client.close()


def test_concurrent_reads_get_the_same_vectors_as_the_redis_py_reader(
    redis_url: str, project: str
) -> None:
    _write(redis_url, project)
    pairs = [(c, t) for c in CARDS for t in random.Random(1).sample(TERMINALS, 3)]
    pairs.append(("nobody", "nowhere"))

    async def both() -> tuple[list[OnlineFeatures], list[OnlineFeatures]]:
        fast = PipelinedRedisFeatureReader.from_url(redis_url, timeout_s=2.0, project=project)
        slow = RedisFeatureReader.from_url(redis_url, project=project)
        try:
            # All at once on the one connection: replies must reach their own reads.
            got = await asyncio.gather(*(fast.read(c, t) for c, t in pairs))
            want = [await slow.read(c, t) for c, t in pairs]
        finally:
            await fast.aclose()
            await slow.aclose()
        return list(got), want

    got, want = asyncio.run(both())
    assert got == want
    assert sum(f.card.found for f in got) == len(pairs) - 1
    assert 0 < sum(f.terminal.found for f in got) < len(pairs)
    assert not got[-1].card.found and not got[-1].terminal.found


def test_a_read_is_two_hmgets_and_nothing_else(
    redis_client: redis.Redis, redis_url: str, project: str
) -> None:
    _write(redis_url, project)
    token = f"end-of-{project}"

    async def reads() -> None:
        reader = PipelinedRedisFeatureReader.from_url(redis_url, timeout_s=2.0, project=project)
        for _ in range(3):
            await reader.read(CARDS[0], TERMINALS[0])
        await reader.aclose()

    with redis_client.monitor() as monitor:
        asyncio.run(reads())
        redis_client.echo(token)
        commands = []
        for event in monitor.listen():
            if token in event["command"]:
                break
            if project in event["command"]:
                commands.append(event["command"].split(" ", 1)[0].upper())
    assert commands == ["HMGET"] * 6


def test_select_on_connect_reads_the_url_database(redis_url: str, project: str) -> None:
    db1 = redis_url.rsplit("/", 1)[0] + "/1"
    _write(db1, project)
    try:

        async def read(url: str) -> OnlineFeatures:
            reader = PipelinedRedisFeatureReader.from_url(url, timeout_s=2.0, project=project)
            try:
                return await reader.read(CARDS[0], TERMINALS[0])
            finally:
                await reader.aclose()

        assert asyncio.run(read(db1)).card.found
        assert not asyncio.run(read(redis_url)).card.found
    finally:
        client = redis.Redis.from_url(db1)
        keys = list(client.scan_iter(match=b"*" + project.encode()))
        if keys:
            client.delete(*keys)
        client.close()


def test_refused_connection_is_a_retryable_online_store_error() -> None:
    async def read() -> None:
        reader = PipelinedRedisFeatureReader.from_url("redis://127.0.0.1:1/0", timeout_s=0.5)
        await reader.read("c", "t")

    with pytest.raises(OnlineStoreError) as info:
        asyncio.run(read())
    assert info.value.retryable


def test_a_silent_server_times_out_every_read_in_flight_then_the_reader_reconnects(
    redis_url: str, project: str
) -> None:
    _write(redis_url, project)
    host, port = "127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0])

    async def scenario() -> tuple[list[BaseException | OnlineFeatures], OnlineFeatures, int]:
        # A proxy that swallows the first connection's bytes and forwards later ones.
        connections = 0

        async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            if connections == 1:
                await client_r.read()  # until the reader gives up and closes
                client_w.close()
                return
            server_r, server_w = await asyncio.open_connection(host, port)

            async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                while data := await r.read(65536):
                    w.write(data)
                w.close()

            await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

        proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
        proxy_port = proxy.sockets[0].getsockname()[1]
        reader = PipelinedRedisFeatureReader(
            "127.0.0.1", proxy_port, timeout_s=0.2, project=project
        )
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            first = await asyncio.gather(
                *(reader.read(CARDS[0], TERMINALS[0]) for _ in range(5)), return_exceptions=True
            )
            assert loop.time() - started < 1.0
            again = await reader.read(CARDS[0], TERMINALS[0])
        finally:
            await reader.aclose()
            proxy.close()
        return first, again, connections

    first, again, connections = asyncio.run(scenario())
    assert all(isinstance(r, OnlineStoreError) and "no reply" in str(r) for r in first)
    assert again.card.found and connections == 2


def test_a_cancelled_read_does_not_shift_the_replies_of_the_next(
    redis_url: str, project: str
) -> None:
    _write(redis_url, project)

    async def scenario() -> tuple[OnlineFeatures, OnlineFeatures]:
        reader = PipelinedRedisFeatureReader.from_url(redis_url, timeout_s=2.0, project=project)
        try:
            await reader.read(CARDS[0], TERMINALS[0])  # connected
            cancelled = asyncio.ensure_future(reader.read(CARDS[1], TERMINALS[1]))
            await asyncio.sleep(0)  # its HMGETs are written
            cancelled.cancel()
            after = await reader.read(CARDS[2], TERMINALS[2])
            return after, await RedisFeatureReader.from_url(redis_url, project=project).read(
                CARDS[2], TERMINALS[2]
            )
        finally:
            await reader.aclose()

    after, want = asyncio.run(scenario())
    assert after == want and after.card.found


def test_a_handshake_without_reply_fails_the_read_and_closes_the_socket() -> None:
    """A server that accepts but never answers AUTH: the read fails within its timeout
    and the half-open connection is closed, not left behind (one per retry)."""

    async def scenario() -> tuple[OnlineStoreError, bool, bytes]:
        closed = asyncio.Event()
        received = bytearray()

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(65536):  # until the reader closes its side
                received.extend(data)
            closed.set()
            w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader = PipelinedRedisFeatureReader(
            "127.0.0.1", port, password="not-a-secret-just-a-test", timeout_s=0.2
        )
        try:
            with pytest.raises(OnlineStoreError) as info:
                await reader.read("c", "t")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), 2.0)
            return info.value, closed.is_set(), bytes(received)
        finally:
            await reader.aclose()
            server.close()

    error, closed, received = asyncio.run(scenario())
    assert "connecting to Redis" in str(error) and error.retryable
    assert received.startswith(b"*2\r\n$4\r\nAUTH\r\n")  # it did connect and send AUTH
    assert closed  # and the reader closed the socket when the handshake timed out
