"""Consumer groups as the broker sees them: state, members, lag.

Used by ``riskstream status`` to tell whether a stream processor is alive and keeping up.
Probes set ``log_level`` 0: librdkafka logs every refused connection, which a probe
expects, and a Python ``logger`` callback on short-lived clients crashed the
interpreter (SIGSEGV) during ``riskstream up`` here.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient


@dataclass(frozen=True)
class GroupHealth:
    """A consumer group's state and how far behind the log end it is.

    Attributes:
        state: the broker's view ("STABLE", "EMPTY", "DEAD", ...).
        members: consumers currently in the group.
        lag: records between the committed offsets and the log ends (None when the
            group has committed nothing yet).
    """

    state: str
    members: int
    lag: int | None


def group_health(bootstrap_servers: str, group_id: str, timeout_s: float = 5.0) -> GroupHealth:
    """Describe ``group_id`` and compute its total lag over the partitions it committed."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    described = admin.describe_consumer_groups([group_id], request_timeout=timeout_s)
    description = described[group_id].result()
    state = str(description.state).rsplit(".", 1)[-1]
    offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group_id)], request_timeout=timeout_s
    )[group_id].result()
    committed = [tp for tp in offsets.topic_partitions if tp.offset >= 0]
    if not committed:
        return GroupHealth(state, len(description.members), None)
    probe = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": f"{group_id}-lag-probe",
         "enable.auto.commit": False, "log_level": 0}
    )  # fmt: skip
    try:
        lag = 0
        for tp in committed:
            _, high = probe.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=timeout_s
            )
            lag += max(0, high - tp.offset)
    finally:
        probe.close()
    return GroupHealth(state, len(description.members), lag)
