"""The drift monitor process: ``python -m services.drift`` (``riskstream drift``).

The one place that wires the adapters to the loop and the loop to the faust app.
faust's :class:`faust.Worker` owns the event loop: it starts the consumers, runs
until SIGTERM / SIGINT, stops the agents gracefully (offsets of taken records
committed) and exits non-zero when the app crashed (the failure policy in
:mod:`services.drift.app`); so there is no ``serve`` coroutine of our own here.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import faust

from services.common.kafka import EventProducer, KafkaClientSettings
from services.drift.app import build_app
from services.drift.champion import ArtifactChampionLoader
from services.drift.config import DriftConfig
from services.drift.kafka_io import KafkaRetrainPublisher, last_request_ms
from services.drift.loop import DriftLoop
from services.drift.monitor import DriftMonitor
from services.drift.reports import DirectoryReportSink
from services.drift.telemetry import DriftTelemetry, prometheus_or_null
from services.registry.log import KafkaRegistryLog
from services.registry.reference_loader import ArtifactReferenceLoader
from services.registry.signing import load_public_key
from services.registry.store import LocalArtifactStore
from services.stack.config import load_stack_config, local_kafka_settings

log = logging.getLogger("services.drift")


def build_loop(
    config: DriftConfig,
    *,
    kafka: KafkaClientSettings,
    telemetry: DriftTelemetry,
    report_dir: Path,
) -> DriftLoop:
    """The loop on Kafka and the local artifact store; the cool-down read back from the log."""
    last = last_request_ms(kafka, config.retrain_topic, config.model_name)
    if last is not None:
        log.info("last retrain request for %s was at %d ms", config.model_name, last)
    key = load_public_key(Path(config.public_key_file)) if config.public_key_file else None
    return DriftLoop(
        DriftMonitor(config.monitor, last_request_ms=last),
        registry=KafkaRegistryLog(
            kafka,
            config.model_updates_topic,
            purpose="drift-model-updates",
            on_invalid=telemetry.on_invalid,
        ),
        loader=ArtifactChampionLoader(
            ArtifactReferenceLoader(LocalArtifactStore(), public_key=key)
        ),
        publisher=KafkaRetrainPublisher(
            EventProducer(kafka, linger_ms=0), topic=config.retrain_topic
        ),
        sink=DirectoryReportSink(report_dir, keep=config.keep_reports),
        telemetry=telemetry,
    )


def worker(config: DriftConfig, *, kafka: KafkaClientSettings | None = None) -> faust.Worker:
    """The faust worker of the drift app (not started)."""
    stack = load_stack_config()
    kafka = kafka or local_kafka_settings("riskstream-drift")
    telemetry = prometheus_or_null(config.metrics_port, host=config.metrics_host)
    report_dir = config.reports_path(stack.state_dir)
    datadir = stack.state_dir / "drift" / "faust"
    datadir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level
    app = build_app(
        config,
        kafka=kafka,
        make_loop=lambda: build_loop(
            config, kafka=kafka, telemetry=telemetry, report_dir=report_dir
        ),
        telemetry=telemetry,
        datadir=datadir,
    )
    return faust.Worker(app, loglevel="WARNING", override_logging=False)


def main() -> None:
    """Entry point of ``python -m services.drift``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("faust", "mode", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    worker(DriftConfig.from_env()).execute_from_commandline()
    sys.exit(0)


if __name__ == "__main__":
    main()
