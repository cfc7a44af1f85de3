"""Test doubles and fixtures for the scorer, shipped with it so every suite shares them.

:func:`build_test_artifact` trains a small XGBoost model on synthetic rows and stores
a real artifact (ONNX + XGBoost JSON + metadata) — the same contract as a trained
one, made in a second. :class:`StaticFeatureReader` and :class:`ListPublisher` stand
in for Redis and Kafka in unit tests; integration tests use the real ones.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import xgboost as xgb

from riskstream.v1 import events_pb2
from services.feature_store.definitions import FEATURE_SET_VERSION
from services.feature_store.online import OnlineFeatures
from services.feature_store.redis_layout import NOT_FOUND, FeatureVector, OnlineStoreError
from services.registry.artifact import METADATA_FILE, write_artifact
from services.registry.calibration import Calibration
from services.registry.metadata import ModelMetadata, Thresholds, TimeWindow
from services.registry.rollout import VersionRecord
from services.registry.store import LocalArtifactStore
from services.scoring.score_events import ScoreRecord
from services.trainer.export import export_onnx

#: A small feature set spanning request, card and terminal features.
TEST_FEATURES: tuple[str, ...] = (
    "tx_amount",
    "tx_is_night",
    "card_tx_count_1h",
    "card_amount_mean_1d",
    "card_amount_to_mean_30d",
    "card_seconds_since_prev",
    "terminal_tx_count_1d",
    "terminal_risk_7d",
)


@dataclass(frozen=True)
class TestArtifact:
    """A stored artifact and the booster behind it."""

    __test__ = False  # not a pytest class

    uri: str
    digest: str
    metadata: ModelMetadata
    booster: xgb.Booster
    directory: Path

    def record(self, status: int = events_pb2.MODEL_STATUS_CHAMPION, **kw: object) -> VersionRecord:
        """A ``model-updates`` record naming this artifact."""
        return VersionRecord(
            model_name=self.metadata.model_name,
            version=self.metadata.version,
            status=status,
            artifact_uri=self.uri,
            sha256=self.digest,
            **kw,  # type: ignore[arg-type]
        )

    def xgb_probability(self, rows: np.ndarray) -> np.ndarray:
        """XGBoost's own probabilities, calibrated like the served score."""
        raw = self.booster.predict(
            xgb.DMatrix(rows.astype(np.float32), feature_names=list(self.metadata.feature_names))
        )
        return self.metadata.calibration.apply(raw)


def build_test_artifact(
    store: LocalArtifactStore,
    *,
    version: str = "v1",
    model_name: str = "fraud-xgb",
    features: tuple[str, ...] = TEST_FEATURES,
    seed: int = 0,
    trees: int = 20,
    calibration: Calibration | None = None,
    thresholds: Thresholds | None = None,
    feature_set_version: str = FEATURE_SET_VERSION,
    constant: float | None = None,
) -> TestArtifact:
    """Train a small model on synthetic rows and put a real artifact in ``store``.

    Fraud is likelier with a high amount, at night and with a busy card. With
    ``constant`` every label is drawn with that probability (a useless model).
    """
    rng = np.random.default_rng(seed)
    n = 3_000
    x = rng.gamma(2.0, 30.0, size=(n, len(features))).astype(np.float32)
    logit = -3.0 + 0.02 * x[:, 0] + 0.05 * x[:, min(2, len(features) - 1)]
    p = 1 / (1 + np.exp(-logit)) if constant is None else np.full(n, constant)
    y = (rng.random(n) < p).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": seed},
        xgb.DMatrix(x, label=y, feature_names=list(features)),
        num_boost_round=trees,
    )
    export = export_onnx(booster, len(features), opset=15)
    metadata = ModelMetadata(
        model_name=model_name,
        version=version,
        feature_names=features,
        feature_set_version=feature_set_version,
        thresholds=thresholds or Thresholds(review=0.3, decline=0.7),
        calibration=calibration or Calibration.identity(),
        input_name=export.input_name,
        output_name=export.output_name,
        output_index=export.output_index,
        train_window=TimeWindow("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"),
        validation_window=TimeWindow("2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00"),
        metrics={"roc_auc": 0.5},
        created_at="2026-01-05T00:00:00+00:00",
    )
    uri, digest = store.add(
        onnx_bytes=export.onnx_bytes,
        xgb_json_bytes=bytes(booster.save_raw("json")),
        metadata=metadata,
    )
    return TestArtifact(uri, digest, metadata, booster, store.resolve(uri))


def tampered_copy(artifact: TestArtifact, store_root: Path, edit: str) -> tuple[str, str]:
    """A copy of an artifact with one thing broken; returns (uri, sha256 to announce).

    ``edit``: "onnx" (corrupt bytes, metadata updated so only ONNX Runtime notices),
    "feature_order" (metadata lists the features in another order), or "sha256"
    (untouched artifact, wrong sha256 announced).
    """
    from services.registry.artifact import ONNX_FILE, XGB_FILE, sha256_hex

    target = Path(tempfile.mkdtemp(prefix="tampered-", dir=store_root))
    shutil.copytree(artifact.directory, target, dirs_exist_ok=True)
    meta = artifact.metadata
    if edit == "sha256":
        return target.as_uri(), "0" * 64
    onnx_bytes = (target / ONNX_FILE).read_bytes()
    xgb_bytes = (target / XGB_FILE).read_bytes()
    if edit == "onnx":
        onnx_bytes = b"not an onnx model" + onnx_bytes[:100]
    elif edit == "feature_order":
        meta = replace(meta, feature_names=tuple(reversed(meta.feature_names)))
    else:
        raise ValueError(edit)
    for item in target.iterdir():
        item.unlink()
    digest = write_artifact(target, onnx_bytes=onnx_bytes, xgb_json_bytes=xgb_bytes, metadata=meta)
    assert sha256_hex((target / METADATA_FILE).read_bytes()) == digest
    return target.as_uri(), digest


class StaticFeatureReader:
    """Serves fixed vectors; ``fail`` makes every read raise like a Redis outage."""

    def __init__(
        self,
        card: Mapping[str, Mapping[str, float]] | None = None,
        terminal: Mapping[str, Mapping[str, float]] | None = None,
        *,
        event_time_ms: int = 0,
    ) -> None:
        self.card = dict(card or {})
        self.terminal = dict(terminal or {})
        self.event_time_ms = event_time_ms
        self.fail = False

    async def read(self, card_id: str, terminal_id: str) -> OnlineFeatures:
        """The stored vectors (NOT_FOUND for unknown ids)."""
        if self.fail:
            raise OnlineStoreError("injected outage")

        def vector(values: Mapping[str, float] | None) -> FeatureVector:
            if values is None:
                return NOT_FOUND
            return FeatureVector(dict(values), self.event_time_ms, True)

        return OnlineFeatures(
            vector(self.card.get(card_id)), vector(self.terminal.get(terminal_id))
        )

    async def aclose(self) -> None:
        """Nothing to close."""


class ListPublisher:
    """Keeps every score record in a list."""

    def __init__(self) -> None:
        self.records: list[ScoreRecord] = []

    def publish(self, record: ScoreRecord) -> None:
        """Keep it."""
        self.records.append(record)


def scorer_test_env(
    state_dir: Path,
    *,
    bootstrap: str,
    redis_url: str,
    updates_topic: str,
    scores_topic: str = "scores",
    **settings: str,
) -> tuple[dict[str, str], dict[str, str]]:
    """Settings and tokens of a scorer under test whose files all live in ``state_dir``.

    Writes fresh ``score`` and ``admin`` tokens to ``state_dir/tokens.json``, so
    tests never share a token or a card-hash key. ``settings`` adds or overrides
    ``RISKSTREAM_SCORING_<NAME>`` (``metrics_port="0"`` sets
    ``RISKSTREAM_SCORING_METRICS_PORT``).

    Returns:
        (environment for :class:`ScorerProcess`, the tokens by role).

    Examples:
        >>> import tempfile
        >>> env, tokens = scorer_test_env(Path(tempfile.mkdtemp()), bootstrap="b:9092",
        ...     redis_url="redis://r/0", updates_topic="u", workers="2")
        >>> env["RISKSTREAM_SCORING_WORKERS"], sorted(tokens)
        ('2', ['admin', 'score'])
    """
    tokens = {role: f"{role}-{secrets.token_hex(16)}" for role in ("score", "admin")}
    (state_dir / "tokens.json").write_text(json.dumps(tokens))
    env = {
        "RISKSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "RISKSTREAM_SCORING_REDIS_URL": redis_url,
        "RISKSTREAM_SCORING_MODEL_UPDATES_TOPIC": updates_topic,
        "RISKSTREAM_SCORING_SCORES_TOPIC": scores_topic,
        "RISKSTREAM_SCORING_STATE_DIR": str(state_dir),
        "RISKSTREAM_SCORING_TOKENS_FILE": str(state_dir / "tokens.json"),
        "RISKSTREAM_SCORING_CARD_HASH_KEY_FILE": str(state_dir / "card.key"),
    }
    env.update((f"RISKSTREAM_SCORING_{name.upper()}", value) for name, value in settings.items())
    return env, tokens


class ScorerProcess:
    """``python -m services.scoring`` in a subprocess, configured by environment.

    The scorer gets a process (and a GIL) of its own, as in production, so clients
    in the test process cannot stall its event loop.

    Args:
        env: ``RISKSTREAM_*`` settings on top of the current environment.
        log_path: where the scorer's output goes.
        timeout_s: how long to wait for its health service to answer SERVING.
        tls_ca: the CA to trust when the scorer serves TLS.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        timeout_s: float = 60.0,
        *,
        tls_ca: Path | None = None,
    ) -> None:
        import os
        import socket
        import subprocess
        import sys
        import time

        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        full_env = {**os.environ, **env, "RISKSTREAM_SCORING_PORT": str(self.port)}
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.scoring"],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = log_path
        deadline = time.monotonic() + timeout_s
        target = f"127.0.0.1:{self.port}"
        channel_cm = (
            grpc.secure_channel(target, grpc.ssl_channel_credentials(tls_ca.read_bytes()))
            if tls_ca is not None
            else grpc.insecure_channel(target)
        )
        with channel_cm as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"scorer exited: {log_path.read_text()[-3000:]}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"scorer not SERVING in {timeout_s} s: {log_path}")
                time.sleep(0.2)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, wait for the graceful shutdown; returns the exit code."""
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return int(self.process.returncode)
