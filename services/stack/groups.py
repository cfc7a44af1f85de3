"""Consumer groups as the broker sees them: members and lag.

Used by ``riskstream status`` (and health checks) to tell whether a stream processor
is alive and keeping up. Committed offsets are read with a plain consumer's
``committed()`` (an OffsetFetch for the group, without joining it), never with
``AdminClient.list_consumer_group_offsets``: the latter crashed the interpreter
(SIGSEGV) intermittently during ``riskstream up`` here. Probes set ``log_level`` 0
because librdkafka logs every refused connection, which a probe expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from services.common.errors import InfraError


@dataclass(frozen=True)
class ConsumerLag:
    """How far a consumer group is behind the ends of its topics.

    Attributes:
        group_id: the consumer group.
        by_partition: ``(topic, partition)`` → records not yet committed by the
            group (from the earliest retained offset where it has committed nothing).
        uncommitted: partitions without a committed offset.
    """

    group_id: str
    by_partition: Mapping[tuple[str, int], int]
    uncommitted: int

    @property
    def total(self) -> int:
        """Records behind, over every partition."""
        return sum(self.by_partition.values())

    def of_topic(self, topic: str) -> int:
        """Records behind on one topic."""
        return sum(lag for (t, _), lag in self.by_partition.items() if t == topic)


def consumer_lag(
    bootstrap_servers: str, group_id: str, topics: Sequence[str], *, timeout_s: float = 5.0
) -> ConsumerLag:
    """The lag of ``group_id`` on every partition of ``topics``.

    Raises:
        InfraError: the broker did not answer, or a topic does not exist.
    """
    probe = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": group_id,
         "enable.auto.commit": False, "log_level": 0}
    )  # fmt: skip
    try:
        metadata = probe.list_topics(timeout=timeout_s)
        partitions = []
        for topic in topics:
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                raise InfraError(f"topic {topic!r} does not exist", component=group_id)
            partitions += [TopicPartition(topic, p) for p in sorted(described.partitions)]
        committed = probe.committed(partitions, timeout=timeout_s)
        lags: dict[tuple[str, int], int] = {}
        uncommitted = 0
        for tp in committed:
            low, high = probe.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=timeout_s
            )
            offset = tp.offset
            if offset < 0:
                uncommitted += 1
                offset = low
            lags[(tp.topic, tp.partition)] = max(0, high - offset)
    except InfraError:
        raise
    except Exception as exc:
        raise InfraError(f"lag of group {group_id!r}: {exc}", component=group_id) from exc
    finally:
        probe.close()
    return ConsumerLag(group_id, lags, uncommitted)


def group_members(bootstrap_servers: str, group_id: str, timeout_s: float = 5.0) -> int:
    """How many consumers are in ``group_id`` now (0 for an unknown group)."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    described = admin.describe_consumer_groups([group_id], request_timeout=timeout_s)
    return len(described[group_id].result().members)
