"""Fixtures shared by the trainer's integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from services.stack import load_stack_config


@pytest.fixture(scope="module")
def feast_project() -> Iterator[tuple[str, str]]:
    """The stack's Redis URL and a Feast project no one else uses (keys removed after)."""
    url = f"redis://127.0.0.1:{load_stack_config().redis.port}/0"
    name = f"rs_test_{uuid.uuid4().hex[:12]}"
    yield url, name
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=b"*" + name.encode(), count=1000))
    if keys:
        client.delete(*keys)
    client.close()
