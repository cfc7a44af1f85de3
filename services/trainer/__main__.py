"""The retrain consumer: ``retrain-requests`` in, trained and gated versions out.

``python -m services.trainer`` — started by ``riskstream up``. For each
``RetrainRequest`` (the drift monitor's, or a person's) it trains from the offline
store up to the request's window end (the newest labelled transaction when unset),
gates the candidate against the current champion and publishes the outcome on
``model-updates`` (CANARY, CHAMPION for a first model, REJECTED with the reasons).
The offset is committed after the outcome is published: a crash mid-training
retrains once more, never silently drops a request. A request whose id was already
handled (seen by this process, or named in a ``model-updates`` transition reason)
is skipped (the committed offset is the main guard; the log check covers a crash
between publishing and committing, until a later transition replaces that record
under compaction). A request that does not parse, or whose training fails (no labelled
rows, one class, an unverifiable champion), goes to ``retrain-requests.dlq`` with
the reason; the consumer goes on.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import Message
from prometheus_client import Counter, Histogram, start_http_server

from riskstream.v1 import events_pb2
from services.common.errors import InvalidEvent, RiskstreamError
from services.common.events import decode_retrain_request
from services.common.kafka import (
    BatchConsumer,
    DeadLetterPublisher,
    EventProducer,
    FailureAction,
    KafkaClientSettings,
)
from services.common.shutdown import stop_on_signals
from services.feature_store.config import FeatureStoreConfig
from services.registry.log import read_model_updates
from services.registry.publish import MODEL_UPDATES_TOPIC, KafkaModelVersionPublisher
from services.registry.signing import load_private_key, load_public_key
from services.registry.store import LocalArtifactStore
from services.stack.config import StackConfig, load_stack_config, local_kafka_settings
from services.trainer.config import TrainerConfig
from services.trainer.dataset import FEATURE_SETS

if TYPE_CHECKING:
    from services.trainer.runner import Outcome

log = logging.getLogger(__name__)

RUNS = Counter(
    "riskstream_trainer_runs_total",
    "Retrain requests handled, by outcome (canary, champion, rejected, failed, skipped)",
    ["outcome"],
)
RUN_SECONDS = Histogram(
    "riskstream_trainer_run_seconds",
    "Wall time of one retrain (data, fit, gate, write, publish)",
    buckets=(10, 30, 60, 120, 300, 600, 1200, 3600),
)

GROUP_ID = "riskstream-trainer"
RETRAIN_TOPIC = "retrain-requests"
#: Training can take minutes: the group must not evict the consumer meanwhile.
MAX_POLL_INTERVAL_MS = 3_600_000


def request_tag(request_id: str) -> str:
    """The prefix of the transition reason of a retrain's outcome (deduplication key)."""
    return f"retrain {request_id}"


def retrain_failures(exc: Exception, record: Message) -> FailureAction:
    """Dead-letter bad requests and failed trainings; stop on anything unexpected."""
    return "dead_letter" if isinstance(exc, InvalidEvent | RiskstreamError) else "stop"


class RetrainHandler:
    """Trains once per request id and publishes the outcome.

    Args:
        config: trainer settings.
        stack: the stack (Feast registry path, Redis port).
        kafka: Kafka settings (the registry log is read at each request).
        publisher: sends the outcome.
        topic: the ``model-updates`` topic.
        offline_root: the offline store.
        store: the artifact store.
    """

    def __init__(
        self,
        config: TrainerConfig,
        *,
        stack: StackConfig,
        kafka: KafkaClientSettings,
        publisher: KafkaModelVersionPublisher,
        topic: str,
        offline_root: Path,
        store: LocalArtifactStore,
    ) -> None:
        self.config = config
        self.stack = stack
        self.kafka = kafka
        self.publisher = publisher
        self.topic = topic
        self.offline_root = offline_root
        self.store = store
        self.handled: set[str] = set()
        self.outcomes: list[events_pb2.ModelVersion] = []
        self._signing = (
            load_private_key(Path(config.signing_key_file)) if config.signing_key_file else None
        )
        self._public = (
            load_public_key(Path(config.public_key_file)) if config.public_key_file else None
        )

    @staticmethod
    def _already_published(request_id: str, events: list[events_pb2.ModelVersion]) -> bool:
        tag = request_tag(request_id)
        return any(e.transition_reason.startswith(tag + " (") for e in events)

    def handle(self, record: Message) -> None:
        """Decode one request (InvalidEvent → DLQ), train, publish."""
        request = decode_retrain_request(record.value() or b"")
        if request.model_name and request.model_name != self.config.model_name:
            log.info("request %s is for %s, not %s: skipped", request.request_id,
                     request.model_name, self.config.model_name)  # fmt: skip
            return
        if request.request_id in self.handled:
            log.info("request %s was already handled: skipped", request.request_id)
            RUNS.labels("skipped").inc()
            return
        # One read of the log serves the duplicate check and the champion lookup.
        events = read_model_updates(self.kafka, topic=self.topic)
        if self._already_published(request.request_id, events):
            log.info("request %s was already handled: skipped", request.request_id)
            RUNS.labels("skipped").inc()
            return
        end = request.window_end.ToDatetime(tzinfo=UTC) if request.HasField("window_end") else None
        why = events_pb2.RetrainReason.Name(request.reason).removeprefix("RETRAIN_REASON_")
        reason = (
            f"{request_tag(request.request_id)} ({why.lower()}, "
            f"by {request.requested_by or 'unknown'})"
        )
        log.info("retraining for request %s (%s)", request.request_id, reason)
        started = time.monotonic()
        try:
            outcome = self._train(end, reason, events)
        except Exception:
            RUNS.labels("failed").inc()
            raise
        RUN_SECONDS.observe(time.monotonic() - started)
        status = events_pb2.ModelStatus.Name(outcome.event.status)
        RUNS.labels(status.removeprefix("MODEL_STATUS_").lower()).inc()
        self.handled.add(request.request_id)
        self.outcomes.append(outcome.event)
        log.info("request %s: %s/%s %s", request.request_id, outcome.event.model_name,
                 outcome.event.version, status)  # fmt: skip

    def _train(
        self, end: datetime | None, reason: str, events: list[events_pb2.ModelVersion]
    ) -> Outcome:
        from services.trainer.runner import train_from_offline_store  # XGBoost, ONNX

        return train_from_offline_store(
            self.config,
            features=FEATURE_SETS[self.config.features],
            offline_root=self.offline_root,
            registry_path=self.stack.state_dir / "feast" / "registry.db",
            redis_url=self.config.redis_url or self.stack.redis.url,
            store=self.store,
            kafka=self.kafka,
            publisher=self.publisher,
            topic=self.topic,
            end=end,
            signing_key=self._signing,
            public_key=self._public,
            reason=reason,
            events=events,
        )


def run(
    config: TrainerConfig,
    kafka: KafkaClientSettings,
    *,
    stack: StackConfig,
    offline_root: Path,
    store: LocalArtifactStore,
    requests_topic: str = RETRAIN_TOPIC,
    updates_topic: str = MODEL_UPDATES_TOPIC,
    group_id: str = GROUP_ID,
    should_stop: Callable[[], bool] = lambda: False,
    idle_timeout_s: float | None = None,
) -> RetrainHandler:
    """Consume requests until asked to stop (or idle); returns the handler (its outcomes)."""
    producer = EventProducer(kafka)
    handler = RetrainHandler(
        config,
        stack=stack,
        kafka=kafka,
        publisher=KafkaModelVersionPublisher(producer, topic=updates_topic),
        topic=updates_topic,
        offline_root=offline_root,
        store=store,
    )
    consumer = BatchConsumer(
        kafka,
        group_id,
        [requests_topic],
        handler=handler.handle,
        dead_letters=DeadLetterPublisher(producer),
        policy=retrain_failures,
        batch_size=1,
        config_overrides={"max.poll.interval.ms": MAX_POLL_INTERVAL_MS},
    )
    log.info("trainer waiting for %s (group %s)", requests_topic, group_id)
    try:
        consumer.run(should_stop=should_stop, idle_timeout_s=idle_timeout_s, poll_timeout_s=1.0)
    finally:
        consumer.close()
    return handler


def main() -> int:
    """Wire settings from the environment and run until SIGTERM."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    should_stop = stop_on_signals()
    stack = load_stack_config()
    config = TrainerConfig.from_env(os.environ, burn_in_days=0)
    port = config.metrics_port or stack.metrics_ports.get("trainer", 0)
    if port:
        start_http_server(port, addr=config.metrics_host)
    run(
        config,
        local_kafka_settings("riskstream-trainer"),
        stack=stack,
        offline_root=FeatureStoreConfig.from_env().offline_root,
        store=LocalArtifactStore(),
        should_stop=should_stop,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
