"""The scorer process: ``python -m services.scoring`` (``riskstream serve``).

The one place that wires adapters to kernels: tokens, card-hash key, model store,
loader, pool, ``model-updates`` follower, Redis reader, score publisher, servicers,
health and reflection, and a graceful shutdown on SIGTERM / SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from riskstream.oip.v2 import grpc_service_pb2, grpc_service_pb2_grpc
from riskstream.v1 import scoring_pb2, scoring_pb2_grpc
from services.common.kafka import EventProducer, KafkaClientSettings
from services.feature_store.online import PipelinedRedisFeatureReader
from services.registry.publish import KafkaModelVersionPublisher
from services.registry.signing import load_public_key
from services.registry.store import LocalArtifactStore
from services.scoring.admin import RolloutAdmin
from services.scoring.auth import TokenAuthority, write_local_key, write_local_tokens
from services.scoring.config import ScoringConfig
from services.scoring.inference_server import InferenceServicer
from services.scoring.interceptors import ServingInterceptor
from services.scoring.model_loader import LoaderSettings, ModelLoader
from services.scoring.model_updates import FollowerFactory, KafkaModelUpdates, ModelUpdatesFollower
from services.scoring.onnx_model import SessionSettings
from services.scoring.pool import ModelPool, Snapshot
from services.scoring.publisher import KafkaScorePublisher
from services.scoring.routing import CardHasher
from services.scoring.scorer import Scorer
from services.scoring.server import FraudScoringServicer, ModelAdminServicer
from services.scoring.telemetry import (
    MULTIPROC_DIR_ENV,
    NullScoringTelemetry,
    ScoringTelemetry,
    prometheus_or_null,
)
from services.stack.config import local_kafka_settings

log = logging.getLogger("services.scoring")

SERVICES = (
    "riskstream.v1.FraudScoring",
    "riskstream.v1.ModelAdmin",
    "inference.GRPCInferenceService",
)


@dataclass
class Running:
    """A started scorer: what tests and the CLI need to reach and stop it."""

    server: aio.Server
    port: int
    pool: ModelPool
    scorer: Scorer
    updates: ModelUpdatesFollower | None
    publisher: KafkaScorePublisher | None
    reader: PipelinedRedisFeatureReader
    health: health.aio.HealthServicer  # type: ignore[name-defined]

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop taking calls, finish the ones in flight, flush score events."""
        for name in ("", *SERVICES):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace_s)
        if self.updates is not None:
            self.updates.close()
        if self.publisher is not None:
            left = await asyncio.to_thread(self.publisher.close, 5.0)
            if left:
                log.warning("%d score events undelivered at shutdown", left)
        await self.reader.aclose()


def _telemetry_for(snapshot: Snapshot, telemetry: ScoringTelemetry) -> None:
    roles: dict[str, str] = {}
    for version in snapshot.models:
        roles[version] = "loaded"
    for model in snapshot.shadows:
        roles[model.version] = "shadow"
    if snapshot.canary is not None:
        roles[snapshot.canary.version] = "canary"
    if snapshot.champion is not None:
        roles[snapshot.champion.version] = "champion"
    # Model age (for staleness alerts): when each version was trained, from its card.
    served = (*snapshot.models.values(), snapshot.champion, snapshot.canary, *snapshot.shadows)
    created = {
        model.version: datetime.fromisoformat(model.metadata.created_at).timestamp()
        for model in served
        if model is not None
    }
    telemetry.on_rollout(roles, snapshot.canary_weight if snapshot.canary else 0.0, created)


async def start(
    config: ScoringConfig,
    *,
    kafka: KafkaClientSettings | None = None,
    telemetry: ScoringTelemetry | None = None,
    model_updates: FollowerFactory = KafkaModelUpdates,
) -> Running:
    """Build and start the scorer (returns once it listens).

    Args:
        config: the settings.
        kafka: Kafka connection (default: the local stack's).
        telemetry: metrics (default: Prometheus on ``config.metrics_host:metrics_port``).
        model_updates: builds the ``model-updates`` follower (a bench host without
            Kafka gives one that replays a local artifact).
    """
    # Workers 1..n-1 serve no endpoint but record into the shared directory.
    recorded = bool(config.metrics_port or os.environ.get(MULTIPROC_DIR_ENV))
    telemetry = telemetry or (
        prometheus_or_null(config.metrics_port, host=config.metrics_host)
        if recorded
        else NullScoringTelemetry()
    )
    kafka = kafka or local_kafka_settings("riskstream-scorer")
    authority = None
    if not config.allow_insecure:
        if config.tokens_file is None:
            raise SystemExit("no tokens file configured (RISKSTREAM_SCORING_TOKENS_FILE)")
        if not config.tokens_file.exists():
            write_local_tokens(config.tokens_file)
        authority = TokenAuthority.from_file(config.tokens_file)
    key_file = config.card_hash_key_file or config.state_dir / "scoring" / "card_hash.key"
    hasher = CardHasher(write_local_key(key_file))

    public_key = load_public_key(config.public_key_file) if config.public_key_file else None
    loader = ModelLoader(
        LocalArtifactStore(config.state_dir / "models"),
        LoaderSettings(
            session=SessionSettings(
                config.intra_op_threads, config.device, config.gpu_min_batch or None
            ),
            max_batch_size=config.max_batch_size,
            max_wait_us=config.max_wait_us,
            public_key=public_key,
        ),
        on_batch=telemetry.on_batch,
    )
    pool = ModelPool(
        config.model_name,
        loader.load,
        on_refused=lambda r: telemetry.on_model_refused(r.reason),
        on_swapped=lambda s: _telemetry_for(s, telemetry),
    )
    updates = model_updates(kafka, config.model_updates_topic, pool)
    updates.start()
    caught_up = await asyncio.to_thread(updates.caught_up.wait, config.catch_up_timeout_s)
    if not caught_up:
        log.warning(
            "model-updates not replayed in %.0f s; serving rules meanwhile",
            config.catch_up_timeout_s,
        )

    publisher = KafkaScorePublisher(
        kafka,
        config.scores_topic,
        capacity=config.score_buffer,
        on_dropped=telemetry.on_score_event_dropped,
    )
    reader = PipelinedRedisFeatureReader.from_url(
        config.redis_url,
        timeout_s=config.feature_timeout_ms / 1000.0,
        project=config.feature_project,
    )
    scorer = Scorer(
        pool=pool,
        reader=reader,
        publisher=publisher,
        hasher=hasher,
        telemetry=telemetry,
        max_in_flight=config.max_in_flight,
        min_deadline_ms=config.min_deadline_ms,
    )
    server = aio.server(
        interceptors=[ServingInterceptor(authority, telemetry)],
        options=[
            # Several workers share the port; a single one must not share it by accident.
            ("grpc.so_reuseport", 1 if config.workers > 1 else 0),
            ("grpc.max_receive_message_length", 16 << 20),
        ],
    )
    scoring_pb2_grpc.add_FraudScoringServicer_to_server(FraudScoringServicer(scorer), server)
    admin = RolloutAdmin(
        pool,
        KafkaModelVersionPublisher(
            EventProducer(kafka, linger_ms=0), topic=config.model_updates_topic
        ),
    )
    scoring_pb2_grpc.add_ModelAdminServicer_to_server(
        ModelAdminServicer(admin, lambda: pool.snapshot), server
    )
    grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(config.model_name, lambda: pool.snapshot, config.max_batch_size), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        scoring_pb2.DESCRIPTOR.services_by_name["FraudScoring"].full_name,
        scoring_pb2.DESCRIPTOR.services_by_name["ModelAdmin"].full_name,
        grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    address = f"{config.host}:{config.port}"
    if config.tls_cert_file and config.tls_key_file:
        credentials = grpc.ssl_server_credentials(
            [(config.tls_key_file.read_bytes(), config.tls_cert_file.read_bytes())]
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    await server.start()
    # Rules answer even before a champion exists, so the service is SERVING at once.
    for name in ("", *SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    champion = pool.snapshot.champion
    log.info(
        "scorer listening on %s:%d (%s), champion %s",
        config.host,
        port,
        "TLS" if config.tls_cert_file else "plaintext",
        champion.version if champion else "none (rules)",
    )
    return Running(server, port, pool, scorer, updates, publisher, reader, health_servicer)


async def until_signalled() -> None:
    """Return once SIGTERM or SIGINT arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(config: ScoringConfig) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start(config)
    await until_signalled()
    log.info("scorer shutting down")
    await running.stop()


#: Set in the environment of worker processes 1..n-1 (not a setting: outside the prefix).
WORKER_INDEX_ENV = "RISKSTREAM_SCORER_WORKER_INDEX"


def _spawn_workers(config: ScoringConfig) -> list[subprocess.Popen[bytes]]:
    """Start workers 1..n-1 of a multi-process scorer (this process is worker 0)."""
    if config.tokens_file is not None and not config.allow_insecure:
        write_local_tokens(config.tokens_file)  # before the workers race to create them
    if config.card_hash_key_file is not None:
        write_local_key(config.card_hash_key_file)
    children = [_spawn_worker(config, index) for index in range(1, config.workers)]
    log.info("scorer: %d workers on port %d", config.workers, config.port)
    return children


def _spawn_worker(config: ScoringConfig, index: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        WORKER_INDEX_ENV: str(index),
        "RISKSTREAM_SCORING_PORT": str(config.port),
        # Only worker 0 serves metrics: metrics_port + i would take other
        # services' ports (9103 is the feature job's), whichever started first.
        "RISKSTREAM_SCORING_METRICS_PORT": "0",
    }
    return subprocess.Popen([sys.executable, "-m", "services.scoring"], env=env)


def _supervise(
    config: ScoringConfig, children: list[subprocess.Popen[bytes]], stop: threading.Event
) -> None:
    """Restart a worker that exits while the scorer runs (worker 0's thread).

    Why: the kernel keeps sending new connections to the port's other listeners, so
    a lost worker only shrinks capacity; bringing it back restores it. Its live
    gauges (in-flight, workers) are marked dead first so the endpoint's sums drop
    it; its counters stay, as a restarted process's would.
    """
    while not stop.wait(1.0):
        for slot, child in enumerate(children):
            code = child.poll()
            if code is None or stop.is_set():
                continue
            log.warning(
                "scorer worker %d (pid %d) exited with %s; starting it again",
                slot + 1, child.pid, code,
            )  # fmt: skip
            if os.environ.get(MULTIPROC_DIR_ENV):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(child.pid)
            children[slot] = _spawn_worker(config, slot + 1)


def main() -> None:
    """Entry point of ``python -m services.scoring``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = ScoringConfig.from_env()
    children: list[subprocess.Popen[bytes]] = []
    metrics_dir = None
    if config.workers > 1 and WORKER_INDEX_ENV not in os.environ:
        # Every worker writes its metrics here and worker 0 serves their sum; set
        # before any worker (this one included) imports prometheus-client.
        metrics_dir = tempfile.mkdtemp(prefix="riskstream-scorer-metrics-")
        os.environ[MULTIPROC_DIR_ENV] = metrics_dir
        children = _spawn_workers(config)
    stop_supervising = threading.Event()
    supervisor = threading.Thread(
        target=_supervise, args=(config, children, stop_supervising), daemon=True
    )
    if children:
        supervisor.start()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(config))
    finally:
        stop_supervising.set()
        if children:
            supervisor.join()
        for child in children:
            child.terminate()
        for child in children:
            child.wait(30)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
