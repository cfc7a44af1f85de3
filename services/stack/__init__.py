"""The local stack: real Kafka (KRaft), Redis and Prometheus, without Docker.

``riskstream up`` starts what is not running, creates the topics and waits until
each component answers; ``riskstream down`` stops only what it started (pid files
under the state directory); ``riskstream status`` reports each component's health.

Rooms: :mod:`config` (settings from ``infra/local/stack.toml`` and ``RISKSTREAM_*``),
:mod:`process` (pid files, ports, spawning), :mod:`components` (one adapter per
component), :mod:`topics` (topic specs and their creation), :mod:`jars` (the
Kafka runtime fetched once from Maven Central), :mod:`stack` (the orchestration).
"""

from services.stack.config import StackConfig, TopicSpec, load_stack_config, local_kafka_settings
from services.stack.stack import ComponentStatus, Stack

__all__ = [
    "ComponentStatus",
    "Stack",
    "StackConfig",
    "TopicSpec",
    "load_stack_config",
    "local_kafka_settings",
]
