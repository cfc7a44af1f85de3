"""The controller process: ``python -m services.controller`` (``riskstream controller``).

The one place that wires the Kafka adapters, the publisher, the artifact store (a
canary's own reference, verified) and the metrics to the loop, and stops it
gracefully on SIGTERM / SIGINT (the loop finishes its step).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from services.common.kafka import EventProducer, KafkaClientSettings
from services.controller.artifacts import ArtifactBaselineLoader
from services.controller.config import ControllerConfig
from services.controller.kafka_io import KafkaDecisionStream
from services.controller.loop import Controller
from services.controller.telemetry import ControllerTelemetry, prometheus_or_null
from services.registry.log import KafkaRegistryLog
from services.registry.publish import KafkaModelVersionPublisher
from services.registry.reference_loader import ArtifactReferenceLoader
from services.registry.signing import load_public_key
from services.registry.store import LocalArtifactStore
from services.stack.config import local_kafka_settings

log = logging.getLogger("services.controller")


@dataclass
class Wired:
    """A built controller and the adapters to close after it stops."""

    controller: Controller
    registry: KafkaRegistryLog
    stream: KafkaDecisionStream

    def close(self) -> None:
        """Close both consumers."""
        self.registry.close()
        self.stream.close()


def build(
    config: ControllerConfig,
    *,
    kafka: KafkaClientSettings | None = None,
    telemetry: ControllerTelemetry | None = None,
    store: LocalArtifactStore | None = None,
) -> Wired:
    """The controller on Kafka (default: the local stack's broker).

    Args:
        config: the settings.
        kafka: Kafka connection.
        telemetry: metrics (default: Prometheus on ``config.metrics_host:metrics_port``).
        store: where canaries' artifacts resolve (default: the local artifact store).
    """
    kafka = kafka or local_kafka_settings("riskstream-controller")
    telemetry = telemetry or prometheus_or_null(config.metrics_port, host=config.metrics_host)
    registry = KafkaRegistryLog(
        kafka, config.model_updates_topic, purpose="controller-model-updates",
        on_invalid=telemetry.on_invalid,
    )  # fmt: skip
    stream = KafkaDecisionStream(
        kafka, config.scores_topic, config.labels_topic, on_invalid=telemetry.on_invalid
    )
    publisher = KafkaModelVersionPublisher(
        EventProducer(kafka, linger_ms=0), topic=config.model_updates_topic
    )
    key = load_public_key(Path(config.public_key_file)) if config.public_key_file else None
    baselines = ArtifactBaselineLoader(
        ArtifactReferenceLoader(store or LocalArtifactStore(), public_key=key)
    )
    controller = Controller(
        config, registry=registry, stream=stream, publisher=publisher, baselines=baselines,
        telemetry=telemetry,
    )  # fmt: skip
    return Wired(controller, registry, stream)


async def serve(config: ControllerConfig) -> None:
    """Run until SIGTERM or SIGINT, then stop after the current step."""
    wired = build(config)
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.to_thread(wired.controller.run, stop.is_set)
    finally:
        wired.close()


def main() -> None:
    """Entry point of ``python -m services.controller``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(ControllerConfig.from_env()))
    sys.exit(0)


if __name__ == "__main__":
    main()
