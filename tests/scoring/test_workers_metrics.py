"""Several scorer workers, one metrics endpoint: worker 0 serves every worker's sum.

A real two-worker scorer (``RISKSTREAM_SCORING_WORKERS=2``, SO_REUSEPORT) takes
Score calls on many connections, which the kernel spreads over both workers. Its
metrics endpoint must count every call, not worker 0's share, and say that two
workers report.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import grpc
import pytest
from prometheus_client.samples import Sample

from riskstream.v1 import events_pb2, scoring_pb2, scoring_pb2_grpc
from services.common.prometheus_text import scrape, total
from services.scoring.testing import ScorerProcess, scorer_test_env
from services.stack import StackConfig

pytestmark = pytest.mark.integration

SCORE = "Score"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _samples(port: int) -> list[Sample]:
    return scrape(f"http://127.0.0.1:{port}/metrics")


def _score_calls(samples: list[Sample], code: str = "OK") -> float:
    return total(samples, "riskstream_scoring_rpc_seconds_count", code=code, method=SCORE)


def _two_worker_env(
    running_stack: StackConfig, make_topic, tmp_path: Path
) -> tuple[dict[str, str], dict[str, str], int]:
    """(settings, tokens, metrics port) of a two-worker scorer on private topics."""
    metrics_port = _free_port()
    env, tokens = scorer_test_env(
        tmp_path,
        bootstrap=running_stack.kafka.bootstrap_servers,
        redis_url=f"redis://127.0.0.1:{running_stack.redis.port}/0",
        updates_topic=make_topic("model-updates", dlq=False),
        scores_topic=make_topic("scores", dlq=False),
        workers="2",
        metrics_port=str(metrics_port),
        public_key_file="",
    )
    return env, tokens, metrics_port


def _wait_for_workers(metrics_port: int, n: int) -> None:
    deadline = time.monotonic() + 30
    while total(_samples(metrics_port), "riskstream_scoring_workers") != n:
        assert time.monotonic() < deadline, f"never {n} workers reporting"
        time.sleep(0.2)


def test_two_workers_metrics_are_summed_on_one_endpoint(
    running_stack: StackConfig, make_topic, tmp_path: Path
) -> None:
    env, tokens, metrics_port = _two_worker_env(running_stack, make_topic, tmp_path)
    scorer = ScorerProcess(env, tmp_path / "scorer.log")
    auth = [("authorization", f"Bearer {tokens['score']}")]
    try:
        _wait_for_workers(metrics_port, 2)
        before = _score_calls(_samples(metrics_port))
        sent = 0
        # 24 connections: the kernel hashes each to a worker, so both get some
        # (all on one worker has probability 2 ** -23).
        for i in range(24):
            channel = grpc.insecure_channel(
                f"127.0.0.1:{scorer.port}", options=[("grpc.use_local_subchannel_pool", 1)]
            )
            with channel:
                stub = scoring_pb2_grpc.FraudScoringStub(channel)
                for j in range(5):
                    tx = events_pb2.Transaction(
                        transaction_id=f"tx-{i}-{j}", card_id=f"card-{i}", terminal_id="term-1",
                        amount=25.0, currency="EUR", channel=events_pb2.CHANNEL_ECOMMERCE,
                        country="FR",
                    )  # fmt: skip
                    tx.event_time.GetCurrentTime()
                    stub.Score(scoring_pb2.ScoreRequest(transaction=tx), metadata=auth, timeout=5)
                    sent += 1
        samples = _samples(metrics_port)
        assert _score_calls(samples) - before == sent == 120
        # The decisions too: rules, no model published.
        assert total(samples, "riskstream_scoring_fallbacks_total", reason="no_model") == 120
        assert total(samples, "riskstream_scoring_workers") == 2
        reported = {s.name for s in samples}
        assert {"riskstream_scoring_in_flight", "riskstream_scoring_canary_weight"} <= reported
        assert total(samples, "riskstream_scoring_in_flight") == 0
        # No model yet: the rollout state (reported once, not summed) is empty.
        assert total(samples, "riskstream_scoring_canary_weight") == 0
        assert not [s for s in samples if s.name == "riskstream_scoring_model_loaded"]
    finally:
        scorer.stop()


def test_riskstream_serve_runs_the_same_entry_with_its_flags_as_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    import services.scoring.__main__ as entry
    from services.cli.__main__ import main as cli

    seen: dict[str, str] = {}

    def fake_main() -> None:  # the process boundary: what it would read, not a server
        seen.update({k: v for k, v in os.environ.items() if k.startswith("RISKSTREAM_SCORING_")})

    # Registered with monkeypatch first, so what the command writes is undone after.
    for name in ("WORKERS", "PORT", "MAX_BATCH_SIZE"):
        monkeypatch.setenv(f"RISKSTREAM_SCORING_{name}", "1")
    monkeypatch.delenv("RISKSTREAM_SCORING_HOST", raising=False)
    monkeypatch.setattr(entry, "main", fake_main)
    assert cli(["serve", "--workers", "2", "--port", "50999", "--max-batch-size", "32"]) == 0
    assert seen["RISKSTREAM_SCORING_WORKERS"] == "2"
    assert seen["RISKSTREAM_SCORING_PORT"] == "50999"
    assert seen["RISKSTREAM_SCORING_MAX_BATCH_SIZE"] == "32"
    assert "RISKSTREAM_SCORING_HOST" not in seen  # unset flags leave the settings alone


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (any of its threads may have started them)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        if int(fields[1]) == pid and fields[0] != "Z":  # fields: state, ppid, ...
            found.append(int(stat.parent.name))
    return found


def test_a_killed_worker_is_started_again_and_the_sums_drop_the_dead_one(
    running_stack: StackConfig, make_topic, tmp_path: Path
) -> None:
    env, _, metrics_port = _two_worker_env(running_stack, make_topic, tmp_path)
    scorer = ScorerProcess(env, tmp_path / "scorer.log")
    try:
        _wait_for_workers(metrics_port, 2)
        [worker] = _children(scorer.process.pid)
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _children(scorer.process.pid) in ([], [worker]):
            assert time.monotonic() < deadline, "the killed worker was not started again"
            time.sleep(0.2)
        [replacement] = _children(scorer.process.pid)
        assert replacement != worker
        # The dead one's live gauge is gone from the sum (1 + the new worker's, not 3).
        _wait_for_workers(metrics_port, 2)
        log = (tmp_path / "scorer.log").read_text()
        assert f"worker 1 (pid {worker}) exited with -9; starting it again" in log
    finally:
        scorer.stop()
