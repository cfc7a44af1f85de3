"""The scorer over gRPC against the real Redis and Kafka of `riskstream up`.

One scorer per module (private topics, private Feast project, private tokens);
the Redis-outage test runs its own scorer against its own redis-server.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from grpc_health.v1 import health_pb2, health_pb2_grpc

from riskstream.oip.v2 import grpc_service_pb2 as oip
from riskstream.oip.v2 import grpc_service_pb2_grpc as oip_grpc
from riskstream.v1 import events_pb2, scoring_pb2, scoring_pb2_grpc
from services.common.events import decode_model_version, decode_score_event
from services.common.kafka import EventProducer, KafkaClientSettings
from services.feature_store.definitions import CARD_FEATURES, TERMINAL_FEATURES
from services.feature_store.redis_layout import RedisFeatureWriter
from services.registry.publish import KafkaModelVersionPublisher
from services.registry.store import LocalArtifactStore
from services.scoring.routing import CardHasher
from services.scoring.server import STREAM_WINDOW
from services.scoring.testing import (
    ScorerProcess,
    TestArtifact,
    build_test_artifact,
    scorer_test_env,
)
from services.scoring.vectorize import Request, Stored, VectorLayout
from services.stack import StackConfig

pytestmark = pytest.mark.integration

CARD_VALUES = {name: 1.0 for name in CARD_FEATURES} | {
    "card_tx_count_1h": 2.0,
    "card_amount_sum_30d": 600.0,
    "card_tx_count_30d": 10.0,
}
TERMINAL_VALUES = {name: 0.0 for name in TERMINAL_FEATURES} | {"terminal_tx_count_1d": 30.0}


def transaction(i: int, amount: float = 42.5, card: str = "card-007") -> events_pb2.Transaction:
    tx = events_pb2.Transaction(
        transaction_id=f"tx-{uuid.uuid4().hex[:8]}-{i}",
        card_id=card,
        terminal_id="term-01",
        amount=amount,
        currency="EUR",
        channel=events_pb2.CHANNEL_ECOMMERCE,
        country="FR",
    )
    tx.event_time.GetCurrentTime()
    return tx


@contextlib.contextmanager
def private_topics(stack: StackConfig, *bases: str) -> Iterator[list[str]]:
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    names = [prefix + b for b in bases]
    for future in admin.create_topics(
        [NewTopic(n, num_partitions=1, replication_factor=1) for n in names]
    ).values():
        future.result(timeout=30)
    try:
        yield names
    finally:
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


class Harness:
    """A running scorer, its topics, tokens, store and the models published so far."""

    def __init__(self, stack: StackConfig, tmp: Path, redis_url: str, topics: list[str]) -> None:
        self.kafka = KafkaClientSettings(stack.kafka.bootstrap_servers, client_id="scoring-tests")
        self.updates_topic, self.scores_topic = topics
        self.project = f"rs_test_{uuid.uuid4().hex[:10]}"
        self.store = LocalArtifactStore(tmp / "models")
        self.tmp = tmp
        self.card_key_file = tmp / "card.key"
        self.env, self.tokens = scorer_test_env(
            tmp,
            bootstrap=stack.kafka.bootstrap_servers,
            redis_url=redis_url,
            updates_topic=self.updates_topic,
            scores_topic=self.scores_topic,
            metrics_port="0",
            feature_project=self.project,
            max_batch_size="16",
        )
        self.sink = KafkaModelVersionPublisher(EventProducer(self.kafka), topic=self.updates_topic)
        self.models: dict[str, TestArtifact] = {}
        self.scorer: ScorerProcess | None = None
        self.features_time_ms = 0

    def publish(self, artifact: TestArtifact, status: int, **kw: object) -> None:
        self.models[artifact.metadata.version] = artifact
        self.sink.publish(artifact.record(status, **kw).to_event())

    def start(self) -> None:
        self.scorer = ScorerProcess(self.env, self.tmp / "scorer.log")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.scorer.port}")
        self.scoring = scoring_pb2_grpc.FraudScoringStub(self.channel)
        self.admin = scoring_pb2_grpc.ModelAdminStub(self.channel)
        self.oip = oip_grpc.GRPCInferenceServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def auth(self, role: str = "score") -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.tokens[role]}")]

    def score(self, tx: events_pb2.Transaction, **kw: object) -> scoring_pb2.ScoreResponse:
        return self.scoring.Score(
            scoring_pb2.ScoreRequest(transaction=tx), metadata=self.auth(), timeout=5, **kw
        )

    def expected_score(self, version: str, amount: float, tx_time_ms: int) -> float:
        """XGBoost's probability for a transaction on the features this module wrote."""
        model = self.models[version]
        layout = VectorLayout(model.metadata.feature_names)
        stored = self.features_time_ms
        row = layout.build(
            Request(amount, tx_time_ms),
            Stored(CARD_VALUES, stored),
            Stored(TERMINAL_VALUES, stored),
        )
        return float(model.xgb_probability(np.array([row]))[0])

    def stop(self) -> None:
        if self.scorer is not None:
            self.channel.close()
            self.scorer.stop()


def write_features(redis_url: str, project: str, event_time_ms: int) -> None:
    client = redis.Redis.from_url(redis_url)
    writer = RedisFeatureWriter(client, project=project, key_ttl_s=None, skip_older=False)
    writer.write("card", "card-007", CARD_VALUES, event_time_ms)
    writer.write("terminal", "term-01", TERMINAL_VALUES, event_time_ms)
    writer.flush()
    client.close()


@pytest.fixture(scope="module")
def harness(
    running_stack: StackConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    redis_url = f"redis://127.0.0.1:{running_stack.redis.port}/0"
    with private_topics(running_stack, "model-updates", "scores") as topics:
        h = Harness(running_stack, tmp_path_factory.mktemp("scorer"), redis_url, topics)
        h.features_time_ms = int(time.time() * 1000) - 5_000
        write_features(redis_url, h.project, h.features_time_ms)
        h.publish(
            build_test_artifact(h.store, version="v1", seed=1), events_pb2.MODEL_STATUS_CHAMPION
        )
        h.start()
        try:
            yield h
        finally:
            h.stop()


def test_score_reads_redis_features_runs_the_champion_and_publishes_a_hashed_event(
    harness: Harness,
) -> None:
    tx = transaction(1, amount=420.0)
    response = harness.score(tx)
    assert response.route == events_pb2.ROUTE_CHAMPION and response.model_version == "v1"
    assert response.freshness.card_found and response.freshness.terminal_found
    assert 4_000 <= response.freshness.card_age_ms < 120_000
    assert response.score == pytest.approx(
        harness.expected_score("v1", 420.0, tx.event_time.ToMilliseconds()), abs=1e-5
    )
    assert response.decision in (
        events_pb2.DECISION_APPROVE, events_pb2.DECISION_REVIEW, events_pb2.DECISION_DECLINE
    )  # fmt: skip

    consumer = Consumer(
        {
            **harness.kafka.client_config(),
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([harness.scores_topic])
    found = None
    deadline = time.monotonic() + 20
    while found is None and time.monotonic() < deadline:
        for message in consumer.consume(100, timeout=0.5):
            if message.error() is None and message.key() == tx.transaction_id.encode():
                found = message.value()
    consumer.close()
    assert found is not None, "no score event on the scores topic"
    assert b"card-007" not in found
    event = decode_score_event(found)
    key = harness.card_key_file.read_bytes()
    assert event.card_id_hash == CardHasher(key).pseudonym("card-007")
    assert event.model_version == "v1" and event.features["tx_amount"] == 420.0


def test_access_control_and_field_errors(harness: Harness) -> None:
    request = scoring_pb2.ScoreRequest(transaction=transaction(2))
    with pytest.raises(grpc.RpcError) as no_token:
        harness.scoring.Score(request, timeout=5)
    assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as wrong:
        harness.scoring.Score(request, metadata=[("authorization", "Bearer nope-nope-nope-nope")])
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as denied:
        harness.admin.Rollback(scoring_pb2.RollbackRequest(), metadata=harness.auth("score"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as stream_refused:
        list(harness.scoring.ScoreStream(iter([request]), timeout=5))
    assert stream_refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    bad = transaction(3)
    bad.amount = -5
    with pytest.raises(grpc.RpcError) as invalid:
        harness.score(bad)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "transaction.amount" in (invalid.value.details() or "")
    with pytest.raises(grpc.RpcError) as missing:
        harness.scoring.Score(scoring_pb2.ScoreRequest(), metadata=harness.auth())
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (missing.value.details() or "").startswith("transaction:")

    batch = scoring_pb2.ScoreBatchRequest(
        requests=[scoring_pb2.ScoreRequest(transaction=transaction(4)),
                  scoring_pb2.ScoreRequest(transaction=bad)]
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as in_batch:
        harness.scoring.ScoreBatch(batch, metadata=harness.auth())
    assert "requests[1].transaction.amount" in (in_batch.value.details() or "")

    # Probes need no token.
    check = harness.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert check.status == health_pb2.HealthCheckResponse.SERVING
    assert harness.oip.ServerLive(oip.ServerLiveRequest(), timeout=5).live


def test_batch_and_stream_answer_in_request_order(harness: Harness) -> None:
    txs = [transaction(i, amount=10.0 * (i + 1)) for i in range(5)]
    batch = harness.scoring.ScoreBatch(
        scoring_pb2.ScoreBatchRequest(
            requests=[scoring_pb2.ScoreRequest(transaction=t) for t in txs]
        ),
        metadata=harness.auth(),
    )
    assert [r.transaction_id for r in batch.responses] == [t.transaction_id for t in txs]
    streamed = list(
        harness.scoring.ScoreStream(
            iter([scoring_pb2.ScoreRequest(transaction=t) for t in txs]), metadata=harness.auth()
        )
    )
    assert [r.transaction_id for r in streamed] == [t.transaction_id for t in txs]
    assert [r.score for r in streamed] == pytest.approx(
        [r.score for r in batch.responses], abs=1e-6
    )


def test_a_stream_is_scored_concurrently_and_answered_in_order(harness: Harness) -> None:
    # More requests than the stream window, with distinct amounts so that the answers
    # cannot be in order by accident of equal scores; request ids echo back.
    requests = [
        scoring_pb2.ScoreRequest(
            transaction=transaction(i, amount=5.0 + 7.0 * i), request_id=f"r{i}"
        )
        for i in range(3 * STREAM_WINDOW)
    ]
    one_by_one = [harness.scoring.Score(r, metadata=harness.auth()).score for r in requests[:20]]
    streamed = list(harness.scoring.ScoreStream(iter(requests), metadata=harness.auth()))
    assert [r.request_id for r in streamed] == [r.request_id for r in requests]
    assert [r.transaction_id for r in streamed] == [r.transaction.transaction_id for r in requests]
    assert [r.score for r in streamed[:20]] == pytest.approx(one_by_one, abs=1e-6)


def test_an_invalid_request_ends_the_stream_after_the_answers_before_it(
    harness: Harness,
) -> None:
    bad = transaction(7)
    bad.card_id = ""
    requests = [scoring_pb2.ScoreRequest(transaction=transaction(i)) for i in range(5)]
    requests.insert(3, scoring_pb2.ScoreRequest(transaction=bad))
    answered: list[str] = []
    with pytest.raises(grpc.RpcError) as ended:
        for response in harness.scoring.ScoreStream(iter(requests), metadata=harness.auth()):
            answered.append(response.transaction_id)
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "transaction.card_id" in (ended.value.details() or "")
    assert answered == [r.transaction.transaction_id for r in requests[:3]]


def test_open_inference_protocol_infers_with_the_served_model(harness: Harness) -> None:
    width = len(harness.models["v1"].metadata.feature_names)
    config = harness.oip.ModelConfig(
        oip.ModelConfigRequest(name="fraud-xgb"), metadata=harness.auth()
    ).config
    assert list(config.input[0].dims) == [width] and config.input[0].name == "features"
    rows = np.random.default_rng(0).gamma(2.0, 30.0, size=(3, width)).astype(np.float32)
    request = oip.ModelInferRequest(
        model_name="fraud-xgb",
        inputs=[
            oip.ModelInferRequest.InferInputTensor(
                name="features", datatype="FP32", shape=[3, width]
            )
        ],
        raw_input_contents=[rows.tobytes()],
    )
    response = harness.oip.ModelInfer(request, metadata=harness.auth())
    scores = np.frombuffer(response.raw_output_contents[0], dtype="<f4")
    expected = harness.models["v1"].xgb_probability(rows)
    assert np.max(np.abs(scores - expected)) <= 1e-5
    with pytest.raises(grpc.RpcError) as unknown:
        harness.oip.ModelInfer(oip.ModelInferRequest(model_name="nope"), metadata=harness.auth())
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_hot_swap_under_load_fails_no_request_and_mixes_no_models(harness: Harness) -> None:
    """v2 arrives on model-updates while 4 clients score continuously."""
    stop = threading.Event()
    answers: list[tuple[str, float, float, int]] = []
    errors: list[str] = []
    fallbacks: list[str] = []

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            amount = float(np.round(rng.gamma(2.0, 60.0), 2))
            try:
                tx = transaction(seed, amount=amount)
                r = harness.score(tx)
                answers.append((r.model_version, amount, r.score, tx.event_time.ToMilliseconds()))
                if r.fallback_reason:
                    fallbacks.append(r.fallback_reason)
            except grpc.RpcError as exc:
                errors.append(f"{exc.code()}: {exc.details()}")

    threads = [threading.Thread(target=client, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    harness.publish(build_test_artifact(harness.store, version="v2", seed=2, trees=40),
                    events_pb2.MODEL_STATUS_CHAMPION)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(a[0] == "v2" for a in answers[-50:]):
        time.sleep(0.2)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors, errors[:5]
    # A loaded 2-core machine may stall the scorer past its Redis timeout now and
    # then; such answers are rules (route=fallback), never errors, and must stay rare.
    assert len(fallbacks) <= 0.05 * len(answers), fallbacks[:5]
    answers = [a for a in answers if a[0]]
    versions = [a[0] for a in answers]
    assert set(versions) == {"v1", "v2"}, "the swap did not happen under load"
    first_v2 = versions.index("v2")
    assert versions[first_v2:].count("v1") <= 8  # only requests already in flight
    for version, amount, score, when in answers[:: max(1, len(answers) // 60)]:
        # Every answer is exactly its version's model: nothing half-loaded or mixed.
        assert score == pytest.approx(harness.expected_score(version, amount, when), abs=1e-5)


def test_admin_canary_promote_and_rollback_are_published_to_the_log(harness: Harness) -> None:
    v3 = build_test_artifact(harness.store, version="v3", seed=3)
    # A candidate with a card and metrics: every transition must carry them forward
    # (compaction keeps only a version's latest record).
    candidate = v3.record(events_pb2.MODEL_STATUS_CANDIDATE).to_event()
    candidate.model_card_json = '{"owner":"risk-ml"}'
    candidate.metrics["average_precision"] = 0.7
    harness.models["v3"] = v3
    harness.sink.publish(candidate)
    admin = harness.auth("admin")
    ask = scoring_pb2.SetCanaryWeightRequest(version="v3", weight=0.1, reason="try")
    deadline = time.monotonic() + 20
    while True:  # until the scorer has read v3's record from the log
        try:
            canary = harness.admin.SetCanaryWeight(ask, metadata=admin, timeout=10)
            break
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    roles = {m.version: (m.status, round(m.traffic_share, 3)) for m in canary.models}
    assert roles["v3"] == (events_pb2.MODEL_STATUS_CANARY, 0.1)
    champion_before = next(
        v for v, (s, _) in roles.items() if s == events_pb2.MODEL_STATUS_CHAMPION
    )

    promoted = harness.admin.Promote(scoring_pb2.PromoteRequest(version="v3"), metadata=admin)
    assert {m.version for m in promoted.models if m.status == events_pb2.MODEL_STATUS_CHAMPION} == {
        "v3"
    }
    rolled = harness.admin.Rollback(scoring_pb2.RollbackRequest(reason="test"), metadata=admin)
    assert {m.version for m in rolled.models if m.status == events_pb2.MODEL_STATUS_CHAMPION} == {
        champion_before
    }
    with pytest.raises(grpc.RpcError) as unknown:
        harness.admin.Promote(scoring_pb2.PromoteRequest(version="v404"), metadata=admin)
    assert unknown.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    consumer = Consumer(
        {
            **harness.kafka.client_config(),
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([harness.updates_topic])
    seen: list[tuple[str, int]] = []
    v3_records: list[events_pb2.ModelVersion] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(seen) < 7:
        for m in consumer.consume(100, timeout=0.5):
            if m.error() is None:
                record = decode_model_version(m.value() or b"")
                seen.append((record.version, record.status))
                if record.version == "v3":
                    v3_records.append(record)
    consumer.close()
    assert ("v3", events_pb2.MODEL_STATUS_CANARY) in seen
    assert ("v3", events_pb2.MODEL_STATUS_ARCHIVED) in seen  # the rollback's record
    assert len(v3_records) >= 4  # candidate, canary, champion, archived
    for record in v3_records:
        assert record.model_card_json == '{"owner":"risk-ml"}'
        assert dict(record.metrics) == {"average_precision": 0.7}
        assert record.sha256 == v3.digest


def test_grpcurl_lists_services_by_reflection_checks_health_and_scores(harness: Harness) -> None:
    """A third-party client with no riskstream code: grpcurl over reflection."""
    import shutil
    import subprocess
    import sys

    grpcurl = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"
    target = f"127.0.0.1:{harness.scorer.port}"  # type: ignore[union-attr]

    def run(*args: str) -> str:
        done = subprocess.run(
            [grpcurl, "-plaintext", *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = run(target, "list").split()
    assert {"riskstream.v1.FraudScoring", "inference.GRPCInferenceService",
            "grpc.health.v1.Health"} <= set(listed)  # fmt: skip
    assert '"SERVING"' in run(target, "grpc.health.v1.Health/Check")
    body = json.dumps(
        {"transaction": {"transaction_id": "grpcurl-1", "card_id": "card-007",
                         "terminal_id": "term-01", "amount": 77.0, "currency": "EUR",
                         "event_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
    )  # fmt: skip
    reply = json.loads(
        run("-H", f"authorization: Bearer {harness.tokens['score']}", "-d", body, target,
            "riskstream.v1.FraudScoring/Score")
    )  # fmt: skip
    assert reply["transaction_id"] == "grpcurl-1"
    assert reply["route"] == "ROUTE_CHAMPION" and reply["model_version"]
