"""The scorer serving one local artifact with no Kafka and no Redis: a bench host's scorer.

Why: the scorer learns its models only from ``model-updates`` (Kafka). On a host
lent for a benchmark (a GPU machine with no network, a laptop) there is no broker,
so ``python -m services.scoring`` would come up serving rules only and
``ModelInfer`` would answer NOT_FOUND. This module runs the scorer's own start-up,
:func:`services.scoring.__main__.start` (tokens and the auth interceptor, the
loader with its CPU / CUDA choice, the micro-batcher, the OIP servicer, health,
reflection, metrics) with one change: the ``model-updates`` follower is replaced by
one that replays a single CHAMPION record naming the artifact in ``--model-dir``,
so the model is loaded, parity-checked and warmed up before the health service says
SERVING, as after a Kafka catch-up. What a benchmark of it measures is therefore the
production request path of ``ModelInfer`` / ``Score`` over gRPC, in its own process.

Everything that still talks to Kafka (the score-event publisher, ModelAdmin's
publisher) is pointed at a loopback port nobody listens on (unless
``RISKSTREAM_KAFKA_BOOTSTRAP`` is set): connects are refused at once, score events
wait in the publisher's bounded buffer (``RISKSTREAM_SCORING_SCORE_BUFFER``) and are
dropped and counted beyond it; ``ModelInfer`` publishes none. Redis is only dialled
by ``Score`` (its features), which then falls back to rules.

The artifact is copied into ``<state dir>/models`` like a trained one. An artifact
made under another feature-set version (the definitions changed since) is re-stamped
with the current one and a warning is logged: a bench needs the model's arithmetic,
not its feature semantics. Settings are the scorer's ``RISKSTREAM_SCORING_*``
(``DEVICE``, ``GPU_MIN_BATCH``, ``TOKENS_FILE``, ``PORT``, ...); it is one process
(``WORKERS`` is not used)::

    RISKSTREAM_SCORING_PORT=50061 RISKSTREAM_SCORING_TOKENS_FILE=/tmp/t/tokens.json \\
    RISKSTREAM_SCORING_DEVICE=cpu RISKSTREAM_SCORING_METRICS_PORT=0 \\
        .venv/bin/python -m loadtests.standalone_scorer --model-dir .gpuwork/model

Once serving it logs one line ``standalone scorer ready {json}`` (port, model
version, the served form's class and providers); SIGTERM / SIGINT stop it
gracefully. Exit status 3: the artifact was refused (the reason is logged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import sys
import tempfile
import threading
from pathlib import Path

from riskstream.v1 import events_pb2
from services.common.kafka import KafkaClientSettings
from services.feature_store.definitions import FEATURE_SET_VERSION
from services.registry.artifact import METADATA_FILE, ONNX_FILE, XGB_FILE
from services.registry.metadata import ModelMetadata
from services.registry.rollout import VersionRecord
from services.registry.store import LocalArtifactStore
from services.scoring.pool import ModelPool, Refusal

log = logging.getLogger("loadtests.standalone_scorer")

#: Log line prefix that tells a harness the scorer is up, followed by a JSON object.
READY_MARK = "standalone scorer ready"


class LocalModelUpdates:
    """Stands in for :class:`services.scoring.model_updates.KafkaModelUpdates`.

    Replays fixed records into the pool when started (synchronously: the scorer's
    start-up waits for ``caught_up`` anyway), then follows nothing.
    """

    def __init__(self, pool: ModelPool, records: list[VersionRecord]) -> None:
        self._pool = pool
        self._records = records
        self.caught_up = threading.Event()
        self.applied = 0
        self.refusals: list[Refusal] = []

    def start(self) -> None:
        """Apply the records (loads, checks and warms up the model)."""
        self.refusals = self._pool.apply(self._records)
        self.applied = len(self._records)
        self.caught_up.set()
        log.info("model-updates replayed from a local artifact (%d records)", self.applied)

    def close(self) -> None:
        """Nothing to close."""


class NoBrokerKafkaSettings(KafkaClientSettings):
    """Kafka settings for a broker that is not there: quiet and slow to retry.

    librdkafka logs every refused connect (several a second per client) and keeps
    retrying; a bench only needs it to stay out of the way.
    """

    def client_config(self) -> dict[str, object]:
        """The usual settings, plus errors-only logging and reconnects every 5-60 s."""
        return {
            **super().client_config(),
            "log_level": 2,
            "reconnect.backoff.ms": 5_000,
            "reconnect.backoff.max.ms": 60_000,
        }


def _dead_loopback_address() -> str:
    """``127.0.0.1:PORT`` for a port that was free a moment ago (connects are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def stage_artifact(model_dir: Path, store_root: Path) -> VersionRecord:
    """Copy the artifact in ``model_dir`` into a local store; its CHAMPION record.

    Only ``model.onnx``, ``model.xgb.json`` and ``metadata.json`` are needed (the
    model card and reference files a trained artifact lists are not served).

    Returns:
        The artifact's ``model-updates`` record, status CHAMPION.
    """
    metadata = ModelMetadata.from_json((model_dir / METADATA_FILE).read_bytes())
    if metadata.feature_set_version != FEATURE_SET_VERSION:
        log.warning(
            "artifact %s:%s was made under feature set %s; re-stamped %s for this bench",
            metadata.model_name,
            metadata.version,
            metadata.feature_set_version,
            FEATURE_SET_VERSION,
        )
        metadata = dataclasses.replace(metadata, feature_set_version=FEATURE_SET_VERSION)
    uri, digest = LocalArtifactStore(store_root).add(
        onnx_bytes=(model_dir / ONNX_FILE).read_bytes(),
        xgb_json_bytes=(model_dir / XGB_FILE).read_bytes(),
        metadata=metadata,
    )
    return VersionRecord(
        model_name=metadata.model_name,
        version=metadata.version,
        status=events_pb2.MODEL_STATUS_CHAMPION,
        artifact_uri=uri,
        sha256=digest,
    )


async def serve(model_dir: Path, kafka: KafkaClientSettings | None = None) -> int:
    """Start the scorer with the local champion, run until SIGTERM / SIGINT.

    Args:
        model_dir: the artifact's files.
        kafka: the score-event publisher's and ModelAdmin's Kafka (default: the
            scorer's own, from ``RISKSTREAM_KAFKA_*``).
    """
    import services.scoring.__main__ as entry
    from services.scoring.config import ScoringConfig

    config = ScoringConfig.from_env()
    record = stage_artifact(model_dir, config.state_dir / "models")
    if record.model_name != config.model_name:
        config = dataclasses.replace(config, model_name=record.model_name)

    def local_updates(_kafka: object, _topic: str, pool: ModelPool) -> LocalModelUpdates:
        return LocalModelUpdates(pool, [record])

    running = await entry.start(config, kafka=kafka, model_updates=local_updates)
    champion = running.pool.snapshot.champion
    if champion is None:
        follower = running.updates
        refusals = follower.refusals if isinstance(follower, LocalModelUpdates) else []
        log.error("no champion: the artifact was refused: %s", refusals)
        await running.stop(1.0)
        return 3
    onnx = champion.onnx
    ready = {
        "port": running.port,
        "pid": os.getpid(),
        "model": champion.metadata.model_name,
        "version": champion.version,
        "form": type(onnx).__name__,
        "providers": list(onnx.providers),
        "device_setting": config.device,
        "gpu_min_batch_setting": config.gpu_min_batch,
        "max_batch_size": config.max_batch_size,
        "intra_op_threads": config.intra_op_threads,
    }
    log.info("%s %s", READY_MARK, json.dumps(ready))
    await entry.until_signalled()
    log.info("standalone scorer shutting down")
    await running.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m loadtests.standalone_scorer``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", type=Path, required=True, help="metadata.json, model.onnx, model.xgb.json"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    kafka = None
    if "RISKSTREAM_KAFKA_BOOTSTRAP" not in os.environ:
        kafka = NoBrokerKafkaSettings(_dead_loopback_address(), client_id="riskstream-scorer")
        log.info("no Kafka: score events go to %s (nothing listens)", kafka.bootstrap_servers)
    if "RISKSTREAM_SCORING_STATE_DIR" not in os.environ:
        os.environ["RISKSTREAM_SCORING_STATE_DIR"] = tempfile.mkdtemp(prefix="riskstream-bench-")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(args.model_dir, kafka))
    return 0


if __name__ == "__main__":
    sys.exit(main())
