"""Shared fixtures. Integration tests run against the real stack of `riskstream up`.

The session fixture :func:`running_stack` brings the stack up if it is not (idempotent,
the same code path as the CLI), so `pytest` works on its own as well as after CI's
`riskstream up`. It never skips: an integration test without Kafka fails.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.kafka import KafkaClientSettings
from services.stack import Stack, StackConfig, load_stack_config


@pytest.fixture(scope="session")
def running_stack() -> StackConfig:
    """The local stack's configuration, with the stack up."""
    config = load_stack_config()
    Stack(config).up()
    return config


@pytest.fixture(scope="session")
def kafka_settings(running_stack: StackConfig) -> KafkaClientSettings:
    """Client settings pointing at the running broker."""
    return KafkaClientSettings(
        bootstrap_servers=running_stack.kafka.bootstrap_servers, client_id="riskstream-tests"
    )


TopicFactory = Callable[..., str]


@pytest.fixture
def make_topic(running_stack: StackConfig) -> Iterator[TopicFactory]:
    """Create a uniquely named topic (and its ``.dlq``) for one test; deleted afterwards.

    Tests get their own topics so they never see each other's records.
    """
    admin = AdminClient({"bootstrap.servers": running_stack.kafka.bootstrap_servers})
    created: list[str] = []

    def factory(
        base: str = "transactions",
        *,
        partitions: int = 6,
        dlq: bool = True,
        prefix: str | None = None,
    ) -> str:
        name = f"{prefix or f'test-{uuid.uuid4().hex[:10]}-'}{base}"
        names = [name, f"{name}.dlq"] if dlq else [name]
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
        for future in futures.values():
            future.result(timeout=30)
        created.extend(names)
        return name

    yield factory
    if created:
        for future in admin.delete_topics(created).values():
            with contextlib.suppress(Exception):  # cleanup is best effort
                future.result(timeout=30)


@pytest.fixture
def fresh_group() -> str:
    """A consumer group nobody has used."""
    return f"test-{uuid.uuid4().hex[:10]}"
