"""Settings of the scorer (``RISKSTREAM_SCORING_*``), read once in ``__main__``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import ConfigError
from services.common.settings import LOOPBACK, BindHost, RedisUrl, env_settings
from services.feature_store.redis_layout import PROJECT
from services.stack.config import load_stack_config

_PREFIX = "RISKSTREAM_SCORING_"


@dataclass(frozen=True)
class ScoringConfig:
    """How the scorer listens, batches, reads features and publishes.

    Attributes:
        host: gRPC bind address (127.0.0.1 by default: loopback only; 0.0.0.0 in a
            container).
        port: gRPC port.
        metrics_host: Prometheus endpoint bind address (loopback by default, like ``host``).
        metrics_port: Prometheus endpoint port (0: no endpoint).
        redis_url: the online store (default: the local stack's Redis).
        feature_project: Feast project of the online store (the Redis key suffix).
        feature_timeout_ms: Redis connect and per-read timeout, milliseconds; past it the request
            falls back to rules.
        max_batch_size: rows per ONNX Runtime call.
        max_wait_us: how long a batch waits for more rows, microseconds; 0 runs the
            batch on the next event-loop turn (it then holds every request that
            arrived meanwhile).
        max_in_flight: requests admitted at once; beyond it RESOURCE_EXHAUSTED.
        intra_op_threads: ONNX Runtime threads per session.
        device: "cpu", "cuda" or "auto": with auto or cuda, a host with a GPU and the
            ``gpu`` extra compiles each model to a tensor form for CUDA ("cuda" and
            "auto" differ only in the log; without a GPU both serve on the CPU).
        gpu_min_batch: batches of at least this many rows run on the GPU form, smaller
            ones on the CPU's tree kernel; 0 (the default) measures it for each model
            at load (on an H100 against one CPU thread: 64 rows for 200 depth-4 trees,
            8 for 1,000 depth-8 trees; docs/BENCHMARKS.md).
        model_name: the model this scorer serves.
        model_updates_topic: the registry's event log.
        scores_topic: where every decision is published.
        score_buffer: score events held while Kafka is slow or down; beyond it
            events are dropped and counted.
        min_deadline_ms: a caller deadline shorter than this goes straight to rules.
        catch_up_timeout_s: how long start-up waits to replay ``model-updates``
            before serving (rules answer meanwhile).
        state_dir: local state (tokens, card-hash key) of the local stack.
        tokens_file: JSON ``{"score": TOKEN, "admin": TOKEN}``; None: no auth
            (refused unless ``allow_insecure``).
        card_hash_key_file: secret key of the card-id hash (routing and score events).
        tls_cert_file: server certificate (PEM); with tls_key_file enables TLS.
        tls_key_file: server private key (PEM).
        public_key_file: ed25519 key that artifacts must be signed with (None: sha256 only).
        allow_insecure: serve without tokens (tests, never the stack).
        workers: scorer processes sharing the port (SO_REUSEPORT; the kernel spreads
            client connections); only worker 0 serves metrics (docs/MONITORING.md).
    """

    host: BindHost = LOOPBACK
    port: int = 50051
    metrics_host: BindHost = LOOPBACK
    metrics_port: int = 9102
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0"
    feature_project: str = PROJECT
    feature_timeout_ms: float = 50.0
    max_batch_size: int = 64
    max_wait_us: int = 0
    max_in_flight: int = 1024
    intra_op_threads: int = 1
    device: str = "auto"
    gpu_min_batch: int = 0
    model_name: str = "fraud-xgb"
    model_updates_topic: str = "model-updates"
    scores_topic: str = "scores"
    score_buffer: int = 50_000
    min_deadline_ms: float = 3.0
    catch_up_timeout_s: float = 30.0
    state_dir: Path = Path(".state")
    tokens_file: Path | None = None
    card_hash_key_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    public_key_file: Path | None = None
    allow_insecure: bool = False
    workers: int = 1

    def __post_init__(self) -> None:
        if self.device not in {"cpu", "cuda", "auto"}:
            raise ConfigError(f"{_PREFIX}DEVICE: {self.device!r} is not cpu, cuda or auto")
        for name in (
            "max_batch_size",
            "max_in_flight",
            "intra_op_threads",
            "score_buffer",
            "workers",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{_PREFIX}{name.upper()}: must be positive")
        if self.gpu_min_batch < 0:
            raise ConfigError(f"{_PREFIX}GPU_MIN_BATCH: must not be negative (0: measured)")
        if self.max_wait_us < 0 or self.feature_timeout_ms <= 0 or self.min_deadline_ms < 0:
            raise ConfigError(f"{_PREFIX}*: timeouts must not be negative")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError(f"{_PREFIX}TLS_CERT_FILE and TLS_KEY_FILE go together")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScoringConfig:
        """Read ``RISKSTREAM_SCORING_*`` over the local stack's ports and state directory.

        Unknown keys with the prefix are errors. Defaults: Redis and the metrics port
        of the stack configuration; tokens and the card-hash key in
        ``$RISKSTREAM_HOME/scoring`` (written by ``riskstream up``).

        Raises:
            ConfigError: an unknown key or a value of the wrong type.
        """
        env = os.environ if env is None else env
        stack = load_stack_config(env)
        scoring_dir = stack.state_dir / "scoring"
        values: dict[str, object] = {
            "redis_url": stack.redis.url,
            "metrics_port": stack.metrics_ports.get("scoring", 9102),
            "state_dir": stack.state_dir,
            "tokens_file": scoring_dir / "tokens.json",
            "card_hash_key_file": scoring_dir / "card_hash.key",
        }
        values |= env_settings(cls, _PREFIX, env)
        return cls(**values)  # type: ignore[arg-type]
