"""Fixtures of the feature-store tests: the stack's Redis and a private key space per test.

``redis_url`` points at the stack's redis-server (``infra/stack.toml``, overridden by
``RISKSTREAM_REDIS_PORT``; run ``riskstream up`` first). It does not start anything
and never skips: without Redis the integration tests fail with the address tried.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from services.stack import load_stack_config


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://127.0.0.1:<port>/0`` of the running stack's Redis."""
    url = f"redis://127.0.0.1:{load_stack_config().redis.port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.fail(f"no Redis at {url} ({e}); run `riskstream up` or set RISKSTREAM_REDIS_PORT")
    finally:
        client.close()
    return url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A bytes client of the stack's Redis."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _private_project(url: str) -> Iterator[str]:
    name = f"rs_test_{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=b"*" + name.encode(), count=1000))  # keys end with it
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def project(redis_url: str) -> Iterator[str]:
    """A Feast project name no other test uses; its Redis keys are deleted afterwards."""
    yield from _private_project(redis_url)


@pytest.fixture(scope="module")
def module_project(redis_url: str) -> Iterator[str]:
    """Like :func:`project`, shared by one test module (e.g. with one Feast registry)."""
    yield from _private_project(redis_url)
