"""One adapter per local component: how it starts, how it answers, how it stops.

Each component writes everything under ``<state_dir>/<name>/`` and its command line
contains that directory, which is how :class:`ManagedProcess` knows it is ours.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import time
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import InfraError
from services.stack.config import HOST, REPO_ROOT, StackConfig
from services.stack.groups import consumer_lag, group_members
from services.stack.jars import kafka_jars_dir
from services.stack.process import ManagedProcess


@dataclass(frozen=True)
class Health:
    """One health probe's result."""

    ok: bool
    detail: str


class Component:
    """Base: a named process with ports, a start command and a health probe."""

    name = "component"

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.dir = config.state_dir / self.name
        self.process = ManagedProcess(
            name=self.name,
            pid_file=self.dir / f"{self.name}.pid",
            log_file=self.dir / f"{self.name}.log",
            marker=str(self.dir),
        )

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port the component listens on; the first is the client port."""
        raise NotImplementedError

    @property
    def start_timeout_s(self) -> float:
        raise NotImplementedError

    def prepare(self) -> list[str]:
        """Write configuration, initialise storage; return the command line."""
        raise NotImplementedError

    def health(self) -> Health:
        """Ask the component itself whether it serves (not just whether a port is open)."""
        raise NotImplementedError

    #: Settings naming the local signing key pair: variable -> "public" or "private".
    #: Why: artifact signing is on by default in the stack; each service that signs
    #: or verifies is pointed at ``<state>/signing`` unless its variable is set.
    signing_settings: Mapping[str, str] = {}

    def environment(self) -> dict[str, str] | None:
        """The process environment: ours plus the signing key settings (None: ours).

        Creates the local key pair on first use. A variable already set (to a key
        elsewhere, or to "" for an unsigned stack) is left as it is.
        """
        if not self.signing_settings:
            return None
        from services.registry.signing import ensure_local_key_pair

        pair = ensure_local_key_pair(self.config.state_dir)
        env = dict(os.environ)
        for variable, which in self.signing_settings.items():
            path = pair.public_key if which == "public" else pair.private_key
            env.setdefault(variable, str(path))
        return env


class KafkaComponent(Component):
    """Apache Kafka 4.x, one combined broker + KRaft controller on loopback."""

    name = "kafka"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.config.kafka.port, self.config.kafka.controller_port)

    @property
    def start_timeout_s(self) -> float:
        return self.config.kafka.start_timeout_s

    def _server_properties(self) -> str:
        k = self.config.kafka
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{HOST}:{k.controller_port}",
                f"listeners=PLAINTEXT://{HOST}:{k.port},CONTROLLER://{HOST}:{k.controller_port}",
                f"advertised.listeners=PLAINTEXT://{HOST}:{k.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.dir / 'data'}",
                # Single broker: internal topics cannot be replicated.
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                # Topics come from infra/local/stack.toml only; a typo must not create one.
                "auto.create.topics.enable=false",
                "num.partitions=1",
                "group.initial.rebalance.delay.ms=0",
                # Small machine: fewer threads than the server defaults.
                "num.network.threads=2",
                "num.io.threads=4",
                "log.retention.check.interval.ms=60000",
                "",
            ]
        )

    def prepare(self) -> list[str]:
        jars = kafka_jars_dir(self.config.jar_cache)
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self.dir / "server.properties"
        props.write_text(self._server_properties())
        log4j = self.dir / "log4j2.properties"
        log4j.write_text(
            "rootLogger.level = INFO\nrootLogger.appenderRef.out.ref = OUT\n"
            "appender.out.type = Console\nappender.out.name = OUT\n"
            "appender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = WARN\n"
            "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n"
        )
        java = shutil.which("java")
        if java is None:
            raise InfraError("java is not on PATH (Kafka needs Java 17+)", component=self.name)
        classpath = f"{jars}/*"
        if not (self.dir / "data" / "meta.properties").exists():
            self._format(java, classpath, props)
        heap = self.config.kafka.heap_mb
        return [
            java,
            f"-Xmx{heap}m",
            f"-Xms{max(64, heap // 2)}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]

    def _format(self, java: str, classpath: str, props: Path) -> None:
        """Format KRaft storage on first start (``kafka-storage format``)."""
        import subprocess

        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        cluster_id = "A" + cluster_id[1:]  # Kafka rejects ids starting with '-'
        result = subprocess.run(
            [java, "-Xmx256m", "-cp", classpath, "kafka.tools.StorageTool", "format",
             "-t", cluster_id, "-c", str(props)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise InfraError(f"storage format failed: {result.stderr[-2000:]}", component="kafka")

    def health(self) -> Health:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {"bootstrap.servers": self.config.kafka.bootstrap_servers, "log_level": 0}
        )
        try:
            meta = admin.list_topics(timeout=3)
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            return Health(False, f"metadata request failed: {exc}")
        if not meta.brokers:
            return Health(False, "no broker in metadata")
        topics = [t for t in meta.topics if not t.startswith("__")]
        return Health(True, f"{len(meta.brokers)} broker, {len(topics)} topics")


class RedisComponent(Component):
    """Debian's redis-server on loopback, append-only persistence."""

    name = "redis"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.config.redis.port,)

    @property
    def start_timeout_s(self) -> float:
        return self.config.redis.start_timeout_s

    def prepare(self) -> list[str]:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise InfraError("redis-server is not installed (apt-get install redis-server)",
                             component=self.name)  # fmt: skip
        self.dir.mkdir(parents=True, exist_ok=True)
        r = self.config.redis
        return [
            binary,
            "--bind", HOST,
            "--port", str(r.port),
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--maxmemory", f"{r.maxmemory_mb}mb",
            "--protected-mode", "yes",
        ]  # fmt: skip

    def health(self) -> Health:
        import redis

        client = redis.Redis(host=HOST, port=self.config.redis.port, socket_timeout=2)
        try:
            client.ping()
            info: dict[str, object] = client.info("memory")  # type: ignore[assignment]
        except redis.RedisError as exc:
            return Health(False, f"PING failed: {exc}")
        finally:
            client.close()
        return Health(True, f"PONG, used_memory={info.get('used_memory_human', '?')}")


class PrometheusComponent(Component):
    """Debian's prometheus, scraping every service's metrics port."""

    name = "prometheus"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.config.prometheus.port,)

    @property
    def start_timeout_s(self) -> float:
        return self.config.prometheus.start_timeout_s

    def scrape_config(self) -> str:
        """prometheus.yml rendered from the metrics ports of ``infra/local/stack.toml``.

        JSON is valid YAML, so no YAML library is needed to write it.
        """
        p = self.config.prometheus
        rules = sorted(str(f) for f in (REPO_ROOT / "infra" / "prometheus" / "rules").glob("*.yml"))
        jobs = [{"job_name": "prometheus", "static_configs": [{"targets": [f"{HOST}:{p.port}"]}]}]
        for service, port in sorted(self.config.metrics_ports.items()):
            jobs.append(
                {
                    "job_name": f"riskstream-{service}",
                    "static_configs": [
                        {"targets": [f"{HOST}:{port}"], "labels": {"service": service}}
                    ],
                }
            )
        doc = {
            "global": {
                "scrape_interval": f"{p.scrape_interval_s}s",
                "evaluation_interval": f"{p.scrape_interval_s}s",
            },
            "rule_files": rules,
            "scrape_configs": jobs,
        }
        return json.dumps(doc, indent=2) + "\n"

    def prepare(self) -> list[str]:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            raise InfraError("prometheus is not installed (apt-get install prometheus)",
                             component=self.name)  # fmt: skip
        self.dir.mkdir(parents=True, exist_ok=True)
        config_file = self.dir / "prometheus.yml"
        config_file.write_text(self.scrape_config())
        p = self.config.prometheus
        return [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--storage.tsdb.retention.time={p.retention}",
            f"--web.listen-address={HOST}:{p.port}",
            "--web.enable-lifecycle",
        ]

    def health(self) -> Health:
        url = f"http://{HOST}:{self.config.prometheus.port}/-/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = resp.read().decode(errors="replace").strip()
                return Health(resp.status == 200, body[:80])
        except OSError as exc:
            return Health(False, f"{url}: {exc}")


class ServiceComponent(Component):
    """A riskstream stream processor run from this environment's Python.

    Healthy when its process is ours and alive and its consumer group has a member:
    a process that runs but consumes nothing is not healthy.

    Args:
        config: the stack configuration.
        name: component name (its state directory).
        module: the ``python -m`` module to run.
        group_id: the consumer group it joins.
        topics: the topics it consumes (for its lag).
        signing_settings: its signing key variables (see :attr:`Component.signing_settings`).
    """

    def __init__(
        self,
        config: StackConfig,
        *,
        name: str,
        module: str,
        group_id: str,
        topics: tuple[str, ...],
        signing_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        super().__init__(config)
        if signing_settings is not None:
            self.signing_settings = signing_settings
        self.module = module
        self.group_id = group_id
        self.topics = topics

    @property
    def ports(self) -> tuple[int, ...]:
        return ()

    @property
    def start_timeout_s(self) -> float:
        return 60.0

    def prepare(self) -> list[str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        return [sys.executable, "-m", self.module]

    def health(self) -> Health:
        if not self.process.alive():
            return Health(False, "not running")
        try:
            members = group_members(self.config.kafka.bootstrap_servers, self.group_id)
            lag = consumer_lag(self.config.kafka.bootstrap_servers, self.group_id, self.topics)
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
            return Health(False, f"consumer group unknown: {exc}")
        behind = "n/a" if lag.uncommitted == len(lag.by_partition) else f"{lag.total:,}"
        return Health(members > 0, f"{members} consumer(s), lag {behind}")


class ScorerComponent(Component):
    """The gRPC scorer (``python -m services.scoring``) on 127.0.0.1.

    Healthy when its gRPC health service answers SERVING; the detail says whether a
    champion model is loaded (OIP ServerReady) or rules alone answer. Its tokens and
    card-hash key are generated into ``<state>/scoring`` on first start.
    """

    name = "scoring"
    signing_settings = {"RISKSTREAM_SCORING_PUBLIC_KEY_FILE": "public"}

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        from services.scoring.config import ScoringConfig

        self.scoring = ScoringConfig.from_env()

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.scoring.port, self.scoring.metrics_port)

    @property
    def start_timeout_s(self) -> float:
        return 90.0

    def prepare(self) -> list[str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        return [sys.executable, "-m", "services.scoring"]

    def health(self) -> Health:
        if not self.process.alive():
            return Health(False, "not running")
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from riskstream.oip.v2 import grpc_service_pb2, grpc_service_pb2_grpc

        target = f"{HOST}:{self.scoring.port}"
        try:
            with grpc.insecure_channel(target) as channel:
                status = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
                ready = grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel).ServerReady(
                    grpc_service_pb2.ServerReadyRequest(), timeout=2
                )
        except grpc.RpcError as exc:
            return Health(False, f"{target}: {exc.code().name}")  # type: ignore[attr-defined]
        serving = status.status == health_pb2.HealthCheckResponse.SERVING
        model = "champion loaded" if ready.ready else "no model yet: rules decide"
        return Health(serving, f"{target} {'SERVING' if serving else 'NOT SERVING'}, {model}")


class ControllerComponent(Component):
    """The rollout controller (``python -m services.controller``).

    It joins no consumer group (it reads ``scores`` from the canary's start), so its
    health is its own report: the metrics endpoint answers and the loop's last-step
    time is recent (a stalled loop is not healthy); the detail names the canary
    under evaluation and its latest verdict.
    """

    name = "controller"
    #: A loop that has not stepped for this long is stalled.
    STALL_S = 30.0
    signing_settings = {"RISKSTREAM_CONTROLLER_PUBLIC_KEY_FILE": "public"}

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        from services.controller.config import ControllerConfig

        self.controller = ControllerConfig.from_env()

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.controller.metrics_port,) if self.controller.metrics_port else ()

    @property
    def start_timeout_s(self) -> float:
        return 60.0

    def prepare(self) -> list[str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        return [sys.executable, "-m", "services.controller"]

    def health(self) -> Health:
        if not self.process.alive():
            return Health(False, "not running")
        if not self.controller.metrics_port:
            return Health(True, "running (no metrics port: loop not checked)")
        from services.common.prometheus_text import scrape, total

        url = f"http://{HOST}:{self.controller.metrics_port}/metrics"
        try:
            samples = scrape(url, timeout_s=2)
        except OSError as exc:
            return Health(False, f"{url}: {exc}")
        last_step = total(samples, "riskstream_controller_last_step_timestamp_seconds")
        canary = "no canary"
        for sample in samples:
            if sample.name == "riskstream_controller_canary" and sample.value:
                labels = sample.labels
                canary = (
                    f"canary {labels['canary']} vs champion {labels['champion']}: "
                    f"{labels['verdict']}"
                )
        idle = time.time() - last_step
        if idle > self.STALL_S:
            return Health(False, f"loop stalled ({idle:.0f} s since its last step)")
        return Health(True, canary)


class DriftComponent(ServiceComponent):
    """The drift monitor (``python -m services.drift``, a faust-streaming app).

    Healthy when its process is ours and alive, its consumer group has a member
    and its metrics answer with a timer that ran in the last 30 s (faust can keep
    a process alive whose app has stopped); the detail names the monitored
    champion, the windows judged and the retrain requests sent.
    """

    #: A timer that has not run for this long means a stalled app.
    STALL_S = 30.0
    signing_settings = {"RISKSTREAM_DRIFT_PUBLIC_KEY_FILE": "public"}

    def __init__(self, config: StackConfig) -> None:
        from services.drift.config import DriftConfig

        self.drift = DriftConfig.from_env()
        super().__init__(
            config,
            name="drift",
            module="services.drift",
            group_id=self.drift.group_id,
            topics=(self.drift.scores_topic, self.drift.labels_topic),
        )

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.drift.metrics_port,) if self.drift.metrics_port else ()

    def health(self) -> Health:
        group = super().health()
        if not group.ok or not self.drift.metrics_port:
            return group
        from services.common.prometheus_text import scrape, total

        url = f"http://{HOST}:{self.drift.metrics_port}/metrics"
        try:
            samples = scrape(url, timeout_s=2)
        except OSError as exc:
            return Health(False, f"{url}: {exc}")
        last_tick = total(samples, "riskstream_drift_last_tick_timestamp_seconds")
        windows = total(samples, "riskstream_drift_windows_total")
        requests = total(samples, "riskstream_drift_retrain_requests_total")
        champion = next(
            (
                f"champion {s.labels['version']}"
                for s in samples
                if s.name == "riskstream_drift_champion" and s.value
            ),
            "no champion",
        )
        idle = time.time() - last_tick
        if idle > self.STALL_S:
            return Health(False, f"app stalled ({idle:.0f} s since its last tick)")
        return Health(
            True, f"{group.detail}; {champion}, {windows:.0f} windows, {requests:.0f} retrains"
        )


def all_components(config: StackConfig) -> list[Component]:
    """The components in start order (stop order is the reverse)."""
    from services.stack.flink import FlinkJobComponent  # it builds on this module

    return [
        KafkaComponent(config),
        RedisComponent(config),
        PrometheusComponent(config),
        FlinkJobComponent(config),
        ServiceComponent(
            config,
            name="offline-writer",
            module="services.feature_store",
            group_id="riskstream-offline-writer",
            topics=("transactions", "labels", "features"),
        ),
        ScorerComponent(config),
        ControllerComponent(config),
        DriftComponent(config),
        ServiceComponent(
            config,
            name="trainer",
            module="services.trainer",
            group_id="riskstream-trainer",
            topics=("retrain-requests",),
            signing_settings={
                "RISKSTREAM_TRAINER_SIGNING_KEY_FILE": "private",
                "RISKSTREAM_TRAINER_PUBLIC_KEY_FILE": "public",
            },
        ),
    ]
