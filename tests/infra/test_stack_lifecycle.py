"""`riskstream up / down / status` on a second, private stack (own ports and state).

A private stack keeps these tests from disturbing the shared one the other tests use.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from services.common.kafka import KafkaClientSettings, producer_config
from services.stack import load_stack_config
from services.stack.components import all_components
from services.stack.process import port_open

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLI = [sys.executable, "-m", "services.cli"]
COMPONENTS = {c.name for c in all_components(load_stack_config({}))}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(home: Path) -> dict[str, str]:
    kafka, controller, redis_port, prom, scoring, scoring_metrics, rollout_metrics, trainer = (
        _free_ports(8)
    )
    (drift,) = _free_ports(1)
    return {
        **os.environ,
        "RISKSTREAM_HOME": str(home),
        "RISKSTREAM_KAFKA_PORT": str(kafka),
        "RISKSTREAM_KAFKA_CONTROLLER_PORT": str(controller),
        "RISKSTREAM_REDIS_PORT": str(redis_port),
        "RISKSTREAM_PROMETHEUS_PORT": str(prom),
        "RISKSTREAM_SCORING_PORT": str(scoring),
        "RISKSTREAM_SCORING_METRICS_PORT": str(scoring_metrics),
        "RISKSTREAM_CONTROLLER_METRICS_PORT": str(rollout_metrics),
        "RISKSTREAM_TRAINER_METRICS_PORT": str(trainer),
        "RISKSTREAM_DRIFT_METRICS_PORT": str(drift),
        "RISKSTREAM_KAFKA_HEAP_MB": "384",
    }


def _cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _status(env: dict[str, str]) -> dict[str, dict]:
    out = _cli(env, "status", "--json")
    return {row["name"]: row for row in json.loads(out.stdout)}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def private_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = _env(tmp_path / "state")
    yield env
    _cli(env, "down")  # whatever a failing test left behind


def test_up_is_idempotent_and_down_leaves_nothing_running(private_env: dict[str, str]) -> None:
    first = _cli(private_env, "up")
    assert first.returncode == 0, first.stderr
    assert "topics: 9 created" in first.stdout
    status = _status(private_env)
    assert set(status) == COMPONENTS
    assert all(row["healthy"] and row["running"] for row in status.values()), status
    pids = {name: row["pid"] for name, row in status.items()}
    # Signing is on: up made the key pair its trainer signs with and its services verify.
    keys = Path(private_env["RISKSTREAM_HOME"]) / "signing"
    assert stat.S_IMODE((keys / "signing_key.pem").stat().st_mode) == 0o600
    assert (keys / "signing_key.pub.pem").exists()

    second = _cli(private_env, "up")
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already running") == len(COMPONENTS)
    assert "0 created, 9 already present" in second.stdout
    assert {n: r["pid"] for n, r in _status(private_env).items()} == pids

    down = _cli(private_env, "down")
    assert down.returncode == 0, down.stderr
    assert not any(_alive(pid) for pid in pids.values())
    ports = [int(private_env[k]) for k in private_env if k.endswith("_PORT")]
    assert not any(port_open(p) for p in ports)
    assert not list(Path(private_env["RISKSTREAM_HOME"]).rglob("*.pid"))
    after = _cli(private_env, "status")
    assert after.returncode == 1
    assert "DOWN" in after.stdout


def test_port_held_by_a_foreign_process_is_a_clear_error(private_env: dict[str, str]) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", int(private_env["RISKSTREAM_REDIS_PORT"])))
    holder.listen()
    try:
        started = time.monotonic()
        result = _cli(private_env, "up", "--only", "redis", timeout=30)
        assert time.monotonic() - started < 20, "must fail fast, not hang"
    finally:
        holder.close()
    assert result.returncode == 1
    assert "already in use" in result.stderr
    assert private_env["RISKSTREAM_REDIS_PORT"] in result.stderr


def test_broker_restart_mid_stream_loses_no_acknowledged_event(
    private_env: dict[str, str],
) -> None:
    assert _cli(private_env, "up", "--only", "kafka").returncode == 0
    settings = KafkaClientSettings(
        bootstrap_servers=f"127.0.0.1:{private_env['RISKSTREAM_KAFKA_PORT']}"
    )
    producer = Producer(producer_config(settings))
    acked: list[str] = []
    failed: list[str] = []

    def on_delivery(err, msg) -> None:
        (failed if err else acked).append(msg.value().decode())

    stop = threading.Event()

    def stream() -> None:
        i = 0
        while not stop.is_set():
            for _ in range(50):
                producer.produce("transactions", value=f"ev-{i}".encode(), key=f"card-{i % 97}",
                                 on_delivery=on_delivery)  # fmt: skip
                i += 1
            producer.poll(0.01)
            time.sleep(0.01)

    writer = threading.Thread(target=stream)
    writer.start()
    try:
        time.sleep(2)
        assert _cli(private_env, "down", "--only", "kafka").returncode == 0
        time.sleep(1)
        restarted = _cli(private_env, "up", "--only", "kafka")
        assert restarted.returncode == 0, restarted.stderr
        time.sleep(2)
    finally:
        stop.set()
        writer.join()
    assert producer.flush(120) == 0
    assert not failed, f"{len(failed)} deliveries failed"
    assert len(acked) > 1000

    consumer = Consumer({**settings.client_config(), "group.id": "verify",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe(["transactions"])
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while len(seen) < len(acked) and time.monotonic() < deadline:
        seen.extend(m.value().decode() for m in consumer.consume(1000, 1.0) if not m.error())
    consumer.close()
    assert set(acked) <= set(seen), f"{len(set(acked) - set(seen))} acknowledged events lost"
    assert len(seen) == len(set(seen)), "idempotent producer: no duplicates after the restart"
