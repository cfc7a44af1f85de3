"""Online feature read latency: our Redis reader vs Feast's ``get_online_features``.

One card and one terminal vector (33 features), written once by
:class:`RedisFeatureWriter`, then read ``--calls`` times by each reader. The readers
take turns in blocks of ``--block`` calls, so load from other processes on the
machine falls on all of them alike. Every reader's values are asserted identical to
Feast's, before and after the timed calls. Loopback only; needs a Redis, e.g. a
private one::

    redis-server --port 16380 --bind 127.0.0.1 --save '' --daemonize yes
    .venv/bin/python -m loadtests.online_read --redis-url redis://127.0.0.1:16380/0

Prints a Markdown table (microseconds per call, client-side wall time). On a shared
machine the tails measure the neighbours as much as the code: for the code's own
tails give the private redis-server and this process priority (``renice -n -10`` /
``nice -n -10``) and say so next to the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import cast

import numpy as np
import redis
import redis.asyncio

from services.feature_store.definitions import CARD, CARD_FEATURES, TERMINAL, TERMINAL_FEATURES
from services.feature_store.online import (
    OnlineFeatures,
    RedisFeatureReader,
    RedisFeatureReaderSync,
)
from services.feature_store.redis_layout import RedisFeatureWriter

CARD_ID, TERMINAL_ID = "card-bench-000001", "term-bench-00001"
REFS = [f"card_features:{f}" for f in CARD_FEATURES] + [
    f"terminal_features:{f}" for f in TERMINAL_FEATURES
]
Call = Callable[[], Awaitable[Mapping[str, float]]]


def _flat(features: OnlineFeatures) -> dict[str, float]:
    return {**features.card.values, **features.terminal.values}


def _same(a: Mapping[str, float], b: Mapping[str, float | None]) -> bool:
    def bits(x: float | None) -> bytes | None:
        return None if x is None else struct.pack("<d", x)

    return a.keys() == b.keys() and all(
        bits(a[k]) == bits(b[k]) or (math.isnan(a[k]) and math.isnan(b[k] or 0.0)) for k in a
    )


def _readers(store, redis_url: str, project: str) -> dict[str, Call]:
    fast_async = RedisFeatureReader.from_url(redis_url, project=project)
    fast_sync = RedisFeatureReaderSync.from_url(redis_url, project=project)
    rows = [{"card_id": CARD_ID, "terminal_id": TERMINAL_ID}]

    def feast_values(response) -> dict[str, float]:
        as_dict = response.to_dict()
        return {f: as_dict[f][0] for f in (*CARD_FEATURES, *TERMINAL_FEATURES)}

    async def fast_async_call() -> Mapping[str, float]:
        return _flat(await fast_async.read(CARD_ID, TERMINAL_ID))

    async def fast_sync_call() -> Mapping[str, float]:
        return _flat(fast_sync.read(CARD_ID, TERMINAL_ID))

    async def feast_sync_call() -> Mapping[str, float]:
        return feast_values(store.get_online_features(features=REFS, entity_rows=rows))

    async def feast_async_call() -> Mapping[str, float]:
        return feast_values(await store.get_online_features_async(features=REFS, entity_rows=rows))

    return {
        "RedisFeatureReader (async)": fast_async_call,
        "RedisFeatureReaderSync": fast_sync_call,
        "Feast get_online_features": feast_sync_call,
        "Feast get_online_features_async": feast_async_call,
    }


async def _run(readers: dict[str, Call], calls: int, block: int) -> dict[str, np.ndarray]:
    reference = await readers["Feast get_online_features"]()
    for name, call in readers.items():
        for _ in range(200):  # warm up: connections, caches
            values = await call()
        assert _same(values, reference), f"{name} returned other values than Feast"
    samples = {name: np.empty(calls, dtype=np.int64) for name in readers}
    clock = time.perf_counter_ns
    for start in range(0, calls, block):
        stop = min(start + block, calls)
        for name, call in readers.items():
            out = samples[name]
            for i in range(start, stop):
                t0 = clock()
                values = await call()
                out[i] = clock() - t0
            assert _same(values, reference), f"{name} returned other values than Feast"
    return samples


def _table(samples: dict[str, np.ndarray]) -> str:
    feast = samples["Feast get_online_features"]
    feast_p50, feast_p99 = np.percentile(feast, [50, 99])
    lines = [
        "| reader | calls | p50 µs | p99 µs | p99.9 µs | mean µs | Feast p50 / p50 "
        "| Feast p99 / p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, ns in samples.items():
        p50, p99, p999 = np.percentile(ns, [50, 99, 99.9])
        lines.append(
            f"| {name} | {len(ns)} | {p50 / 1e3:.0f} | {p99 / 1e3:.0f} | {p999 / 1e3:.0f} | "
            f"{ns.mean() / 1e3:.0f} | {feast_p50 / p50:.1f}x | {feast_p99 / p99:.1f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:16380/0")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--block", type=int, default=100)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    from services.feature_store.feast_store import make_store  # imports Feast (seconds)

    import_s = time.perf_counter() - started
    project = f"bench_{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(args.redis_url)
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(
            args.redis_url, Path(tmp) / "offline", Path(tmp) / "registry.db", project=project
        )
        with RedisFeatureWriter(client, project=project) as writer:
            writer.write(
                CARD,
                CARD_ID,
                {f: i * 1.25 + 0.1 for i, f in enumerate(CARD_FEATURES)},
                1_767_225_600_123,
            )
            writer.write(
                TERMINAL,
                TERMINAL_ID,
                {f: i / 7 for i, f in enumerate(TERMINAL_FEATURES)},
                1_767_225_600_456,
            )
        try:
            samples = asyncio.run(
                _run(_readers(store, args.redis_url, project), args.calls, args.block)
            )
        finally:
            keys = list(client.scan_iter(match=b"*" + project.encode()))
            if keys:
                client.delete(*keys)
            client.close()
    server = cast(dict, redis.Redis.from_url(args.redis_url).info("server"))["redis_version"]
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; Python {sys.version.split()[0]}, "
        f"redis-py {version('redis')}, hiredis {version('hiredis')}, feast {version('feast')}, "
        f"redis-server {server}; `import feast` {import_s:.1f} s; "
        f"readers interleaved in blocks of {args.block}\n"
    )
    print(_table(samples))


if __name__ == "__main__":
    main()
