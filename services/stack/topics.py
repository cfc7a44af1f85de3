"""Create the configured topics on a broker; idempotent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.errors import InfraError
from services.stack.config import TopicSpec


@dataclass(frozen=True)
class TopicReport:
    """What :func:`ensure_topics` did."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec], *, timeout_s: float = 30.0
) -> TopicReport:
    """Create every topic of ``specs`` that does not exist yet.

    Existing topics are left as they are (partition counts can only grow, and
    changing retention is an operator's decision, not a start-up side effect).

    Raises:
        InfraError: the broker refused to create a topic.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    present = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = list(specs)
    missing = [s for s in wanted if s.name not in present]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(s.name, num_partitions=s.partitions, replication_factor=1,
                         config=s.kafka_config())
                for s in missing
            ],
            request_timeout=timeout_s,
        )  # fmt: skip
        for name, future in futures.items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                error = exc.args[0]
                exists = isinstance(error, KafkaError) and (
                    error.code() == KafkaError.TOPIC_ALREADY_EXISTS
                )
                if exists:
                    continue
                raise InfraError(f"creating topic {name} failed: {exc}", component="kafka") from exc
    existing = tuple(s.name for s in wanted if s.name in present)
    return TopicReport(created=tuple(sorted(created)), existing=existing)
