"""Degrade, never fail: Redis stopped and back, Kafka unreachable (real processes)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from riskstream.v1 import events_pb2, scoring_pb2, scoring_pb2_grpc
from services.common.kafka import EventProducer, KafkaClientSettings
from services.common.prometheus_text import scrape, total
from services.registry.publish import KafkaModelVersionPublisher
from services.registry.store import LocalArtifactStore
from services.scoring.testing import ScorerProcess, build_test_artifact, scorer_test_env
from services.stack import StackConfig

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A private redis-server on a fixed port, stoppable and restartable."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def transaction(amount: float = 50.0) -> events_pb2.Transaction:
    tx = events_pb2.Transaction(
        transaction_id=f"tx-{uuid.uuid4().hex[:10]}", card_id="card-1", terminal_id="term-1",
        amount=amount, currency="EUR",
    )  # fmt: skip
    tx.event_time.GetCurrentTime()
    return tx


def scorer_env(
    tmp: Path, bootstrap: str, redis_port: int, updates: str, scores: str = "scores"
) -> dict[str, str]:
    env, _ = scorer_test_env(
        tmp, bootstrap=bootstrap, redis_url=f"redis://127.0.0.1:{redis_port}/0",
        updates_topic=updates, scores_topic=scores,
    )  # fmt: skip
    return env


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


def test_redis_stopped_gives_fallback_decisions_and_the_model_route_resumes_by_itself(
    running_stack: StackConfig, make_topic: object, redis_server: RedisServer, tmp_path: Path
) -> None:
    updates = make_topic("model-updates", partitions=1, dlq=False)  # type: ignore[operator]
    artifact = build_test_artifact(LocalArtifactStore(tmp_path / "models"), version="v1")
    bootstrap = running_stack.kafka.bootstrap_servers
    KafkaModelVersionPublisher(
        EventProducer(KafkaClientSettings(bootstrap)), topic=updates
    ).publish(artifact.record().to_event())
    scores = make_topic("scores", partitions=1, dlq=False)  # type: ignore[operator]
    env = scorer_env(tmp_path, bootstrap, redis_server.port, updates, scores)
    env["RISKSTREAM_SCORING_METRICS_PORT"] = "0"
    scorer = ScorerProcess(env, tmp_path / "scorer.log")
    token = json.loads((tmp_path / "tokens.json").read_text())["score"]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{scorer.port}") as channel:
            stub = scoring_pb2_grpc.FraudScoringStub(channel)

            def score() -> scoring_pb2.ScoreResponse:
                return stub.Score(
                    scoring_pb2.ScoreRequest(transaction=transaction()),
                    metadata=[("authorization", f"Bearer {token}")],
                    timeout=5,
                )

            assert score().route == events_pb2.ROUTE_CHAMPION
            redis_server.stop()
            down = [score() for _ in range(20)]  # any error would raise here
            assert {r.route for r in down} == {events_pb2.ROUTE_FALLBACK}
            assert {r.fallback_reason for r in down} == {"features_unavailable"}
            assert all(r.decision == events_pb2.DECISION_APPROVE for r in down)  # 50 EUR
            redis_server.start()
            deadline = time.monotonic() + 15
            while score().route != events_pb2.ROUTE_CHAMPION:
                assert time.monotonic() < deadline, "the model route did not come back"
                time.sleep(0.1)
    finally:
        assert scorer.stop() == 0, (tmp_path / "scorer.log").read_text()[-2000:]


def test_kafka_unreachable_scoring_goes_on_and_dropped_events_are_counted(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    dead_broker = f"127.0.0.1:{free_port()}"
    env = scorer_env(tmp_path, dead_broker, redis_server.port, "model-updates")
    metrics_port = free_port()
    env |= {
        "RISKSTREAM_SCORING_METRICS_PORT": str(metrics_port),
        "RISKSTREAM_SCORING_SCORE_BUFFER": "50",
        "RISKSTREAM_SCORING_CATCH_UP_TIMEOUT_S": "1",
    }
    scorer = ScorerProcess(env, tmp_path / "scorer.log")
    token = json.loads((tmp_path / "tokens.json").read_text())["score"]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{scorer.port}") as channel:
            stub = scoring_pb2_grpc.FraudScoringStub(channel)
            replies = [
                stub.Score(
                    scoring_pb2.ScoreRequest(transaction=transaction(20_000.0)),
                    metadata=[("authorization", f"Bearer {token}")],
                    timeout=5,
                )
                for _ in range(200)
            ]
        # No registry reachable: no model, so rules decide, and say so.
        assert {(r.route, r.fallback_reason) for r in replies} == {
            (events_pb2.ROUTE_FALLBACK, "no_model")
        }
        assert {r.decision for r in replies} == {events_pb2.DECISION_DECLINE}
        time.sleep(0.5)
        samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        dropped = total(samples, "riskstream_scoring_score_events_dropped_total")
        assert dropped >= 100, "200 events through a buffer of 50 must overflow"
        assert total(samples, "riskstream_scoring_fallbacks_total", reason="no_model") == 200
    finally:
        scorer.stop()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "riskstream-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "server.crt", tmp / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_from_configured_certificate_paths(
    running_stack: StackConfig, make_topic: object, redis_server: RedisServer, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    updates = make_topic("model-updates", partitions=1, dlq=False)  # type: ignore[operator]
    scores = make_topic("scores", partitions=1, dlq=False)  # type: ignore[operator]
    env = scorer_env(
        tmp_path, running_stack.kafka.bootstrap_servers, redis_server.port, updates, scores
    )
    env |= {
        "RISKSTREAM_SCORING_METRICS_PORT": "0",
        "RISKSTREAM_SCORING_TLS_CERT_FILE": str(cert),
        "RISKSTREAM_SCORING_TLS_KEY_FILE": str(key),
        "RISKSTREAM_SCORING_CATCH_UP_TIMEOUT_S": "1",
    }
    scorer = ScorerProcess(env, tmp_path / "scorer.log", tls_ca=cert)
    token = json.loads((tmp_path / "tokens.json").read_text())["score"]
    request = scoring_pb2.ScoreRequest(transaction=transaction())
    auth = [("authorization", f"Bearer {token}")]
    try:
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{scorer.port}", credentials) as channel:
            reply = scoring_pb2_grpc.FraudScoringStub(channel).Score(
                request, metadata=auth, timeout=5
            )
        assert reply.route == events_pb2.ROUTE_FALLBACK  # no model published: rules
        with (
            grpc.insecure_channel(f"127.0.0.1:{scorer.port}") as plain,
            pytest.raises(grpc.RpcError) as refused,
        ):
            scoring_pb2_grpc.FraudScoringStub(plain).Score(request, metadata=auth, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        scorer.stop()
