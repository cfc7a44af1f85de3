"""infra/docker-compose.yml agrees with infra/local/stack.toml and with the code.

No Docker engine runs here, so the file is parsed: service names, ports, metrics
ports, topics, the Kafka version, image pins, the environment each container gets
(parsed by the service's own settings classes: every listen address must answer other
containers, every Redis and Kafka address must name a compose service), Prometheus
targets and job names, and secrets.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.stack.components import all_components
from services.stack.config import REPO_ROOT, StackConfig, load_stack_config

sys.path.insert(0, str(REPO_ROOT))  # flink_jobs is a directory of the repository, not installed
from flink_jobs.config import parse_args as parse_job_args

INFRA = REPO_ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"
PROMETHEUS = INFRA / "compose" / "prometheus.yml"
#: The one-host Prometheus configuration of the local stack: its job names are the ones
#: the rules (ServiceDown) and the dashboards ("Targets up") select.
CHECKED_IN_PROMETHEUS = INFRA / "prometheus" / "prometheus.yml"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
DOCKERFILE_FLINK = INFRA / "docker" / "Dockerfile.flink"
#: compose service → the python module it runs.
PYTHON_SERVICES = {
    "scoring": "services.scoring",
    "controller": "services.controller",
    "drift": "services.drift",
    "trainer": "services.trainer",
    "offline-writer": "services.feature_store",
}
#: stack component → the compose services that run it.
COMPONENTS = {
    "kafka": {"kafka", "kafka-topics"},
    "redis": {"redis"},
    "prometheus": {"prometheus"},
    "flink": {"flink-jobmanager", "flink-taskmanager", "feature-job"},
    **{name: {name} for name in PYTHON_SERVICES},
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def stack() -> StackConfig:
    return load_stack_config({})


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is written as a mapping"
    return {str(k): str(v) for k, v in env.items()}


def flink_properties(service: dict[str, Any]) -> dict[str, str]:
    text = env_of(service)["FLINK_PROPERTIES"]
    pairs = (line.split(":", 1) for line in text.splitlines() if line.strip())
    return {k.strip(): v.strip() for k, v in pairs}


def host_port(service: dict[str, Any], container_port: int) -> int:
    for mapping in service.get("ports", []):
        parts = str(mapping).split(":")
        if int(parts[-1]) == container_port:
            assert parts[0] == "127.0.0.1", f"{mapping}: host ports bind to loopback only"
            return int(parts[1])
    raise AssertionError(f"container port {container_port} is not published")


def test_every_stack_component_has_its_compose_services(
    services: dict[str, dict[str, Any]], stack: StackConfig
) -> None:
    components = {c.name for c in all_components(stack)}
    assert components == set(COMPONENTS), "a stack component has no compose counterpart"
    expected = set().union(*COMPONENTS.values()) | {"grafana"}
    assert set(services) == expected


def test_python_services_run_their_entry_point_from_the_riskstream_image(
    services: dict[str, dict[str, Any]],
) -> None:
    dockerfile = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["python", "-m"]' in dockerfile
    for name, module in PYTHON_SERVICES.items():
        service = services[name]
        assert service["command"] == [module], name
        assert importlib.util.find_spec(f"{module}.__main__") is not None, module
        assert service["image"] == services["scoring"]["image"]
        assert service["build"]["dockerfile"] == "infra/docker/Dockerfile"
    # Artifacts are file:// URIs: their readers and the trainer share one store, one path.
    for name in ("scoring", "drift", "trainer"):
        assert "models:/var/lib/riskstream/models" in services[name]["volumes"], name


def test_images_are_pinned_and_versions_match_the_project(
    services: dict[str, dict[str, Any]], stack: StackConfig
) -> None:
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, f"{name}: {image} unpinned"
        assert re.search(r"\d", tag), f"{name}: {image} names no version"
    assert services["kafka"]["image"] == f"apache/kafka:{stack.kafka.version}"
    assert services["kafka-topics"]["image"] == services["kafka"]["image"]

    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.M)
    froms += re.findall(r"^FROM\s+(\S+)", DOCKERFILE_FLINK.read_text(), re.M)
    for image in froms:
        assert ":" in image and not image.endswith(":latest"), image
    requirements = (REPO_ROOT / "flink_jobs" / "requirements.txt").read_text()
    flink = re.search(r"^apache-flink==(\S+)", requirements, re.M)
    assert flink is not None
    assert f"FROM flink:{flink.group(1)}-java17" in DOCKERFILE_FLINK.read_text()
    pom = (INFRA / "maven" / "flink-pom.xml").read_text()
    connector = re.search(r"<flink.kafka.connector.version>(.+?)<", pom)
    assert connector is not None
    assert f"flink-sql-connector-kafka-{connector.group(1)}.jar" in DOCKERFILE_FLINK.read_text()
    python = re.search(r"^requires-python = \">=(3\.\d+)", (REPO_ROOT / "pyproject.toml")
                       .read_text(), re.M)  # fmt: skip
    assert python is not None
    assert re.search(rf"^FROM python:{re.escape(python.group(1))}\.\d+-", DOCKERFILE.read_text(),
                     re.M)  # fmt: skip


def test_dockerfiles_copy_only_what_exists() -> None:
    for dockerfile in (DOCKERFILE, DOCKERFILE_FLINK):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY") and "--from" not in line:
                *sources, _ = shlex.split(line)[1:]
                for source in sources:
                    assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: {source}"


def test_kafka_ports_heap_and_kraft_agree_with_stack(
    services: dict[str, dict[str, Any]], stack: StackConfig
) -> None:
    kafka = services["kafka"]
    env = env_of(kafka)
    assert host_port(kafka, stack.kafka.port) == stack.kafka.port
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    listeners = dict(
        (name, int(port))
        for name, port in re.findall(r"(\w+)://[^:,]*:(\d+)", env["KAFKA_LISTENERS"])
    )
    assert listeners["CONTROLLER"] == stack.kafka.controller_port
    assert listeners["EXTERNAL"] == stack.kafka.port
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@kafka:{stack.kafka.controller_port}"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert f"-Xmx{stack.kafka.heap_mb}m" in env["KAFKA_HEAP_OPTS"].split()
    internal = f"kafka:{listeners['INTERNAL']}"
    assert f"INTERNAL://{internal}" in env["KAFKA_ADVERTISED_LISTENERS"]
    for name in PYTHON_SERVICES:
        assert env_of(services[name])["RISKSTREAM_KAFKA_BOOTSTRAP"] == internal, name


def test_topic_creation_matches_stack_topics(
    services: dict[str, dict[str, Any]], stack: StackConfig
) -> None:
    script = services["kafka-topics"]["command"][0]
    created: dict[str, tuple[int, int, str]] = {}
    for line in script.splitlines():
        if not line.startswith("create --topic"):
            continue
        words = shlex.split(line)
        args = dict(zip(words[1::2], words[2::2], strict=True))
        configs = dict(c.split("=", 1) for c in re.findall(r"--config (\S+)", line))
        created[args["--topic"]] = (
            int(args["--partitions"]),
            int(configs["retention.ms"]),
            configs["cleanup.policy"],
        )
    expected = {t.name: (t.partitions, t.retention_ms, t.cleanup_policy) for t in stack.topics}
    assert created == expected
    consumers = services["scoring"]["depends_on"]
    assert consumers["kafka-topics"]["condition"] == "service_completed_successfully"


def test_redis_and_prometheus_agree_with_stack(
    services: dict[str, dict[str, Any]], stack: StackConfig
) -> None:
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--port") + 1] == str(stack.redis.port)
    assert command[command.index("--maxmemory") + 1] == f"{stack.redis.maxmemory_mb}mb"
    assert host_port(redis, stack.redis.port) == stack.redis.port
    prometheus = services["prometheus"]
    assert host_port(prometheus, 9090) == stack.prometheus.port
    assert f"--storage.tsdb.retention.time={stack.prometheus.retention}" in prometheus["command"]
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["global"]["scrape_interval"] == f"{stack.prometheus.scrape_interval_s}s"


def test_service_environments_are_read_by_the_services(
    services: dict[str, dict[str, Any]], stack: StackConfig, service_env
) -> None:
    for name, module in PYTHON_SERVICES.items():
        env = env_of(services[name])
        settings = service_env(module, env)  # unknown names and bad values fail here
        assert settings.kafka.bootstrap_servers == env["RISKSTREAM_KAFKA_BOOTSTRAP"]
    scoring = service_env("services.scoring", env_of(services["scoring"])).config
    assert scoring.port == 50051 and scoring.host == "0.0.0.0"
    assert scoring.redis_url == f"redis://redis:{stack.redis.port}/0"
    assert scoring.workers == 1  # replicas scale it; one worker keeps one metrics port
    trainer = service_env("services.trainer", env_of(services["trainer"])).config
    assert trainer.redis_url == f"redis://redis:{stack.redis.port}/0"  # type: ignore[attr-defined]


def test_every_listen_address_answers_other_containers(
    services: dict[str, dict[str, Any]], service_env
) -> None:
    # Loopback is every service's default (the local stack exposes nothing), so a
    # container without the override would serve metrics that Prometheus never reaches.
    for name, module in PYTHON_SERVICES.items():
        settings = service_env(module, env_of(services[name]))
        assert not settings.loopback_listeners, f"{name} listens on loopback only"
        if name in ("scoring", "controller", "drift", "trainer"):  # metrics endpoints
            assert "metrics_host" in settings.listen_addresses, name


def test_metrics_ports_are_the_stack_ones(
    services: dict[str, dict[str, Any]], stack: StackConfig, service_env
) -> None:
    for name in ("scoring", "controller", "drift", "trainer"):
        config = service_env(PYTHON_SERVICES[name], env_of(services[name])).config
        assert config.metrics_port == stack.metrics_ports[name], name  # type: ignore[attr-defined]
        assert str(stack.metrics_ports[name]) in services[name]["expose"], name
    for name in ("flink-jobmanager", "flink-taskmanager"):
        props = flink_properties(services[name])
        assert props["metrics.reporter.prom.port"] == str(stack.metrics_ports["feature_job"])
        assert props["jobmanager.rpc.address"] == "flink-jobmanager"


def test_feature_job_is_submitted_with_flags_the_job_accepts(
    services: dict[str, dict[str, Any]], stack: StackConfig
) -> None:
    command = services["feature-job"]["command"]
    assert command[:2] == ["flink", "run"]
    script = command.index("--python") + 1
    assert command[script] == "/opt/riskstream/flink_jobs/feature_job.py"
    assert (REPO_ROOT / "flink_jobs" / "feature_job.py").exists()
    job = parse_job_args(command[script + 1 :], env={})
    kafka_internal = re.search(r"INTERNAL://(kafka:\d+)",
                               env_of(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"])  # fmt: skip
    assert kafka_internal is not None and job.bootstrap_servers == kafka_internal.group(1)
    assert (job.redis_host, job.redis_port) == ("redis", stack.redis.port)
    assert job.state_dir == Path("/var/lib/riskstream/flink")
    for name in ("flink-jobmanager", "flink-taskmanager", "feature-job"):
        assert "flink-state:/var/lib/riskstream/flink" in services[name]["volumes"]
    # The job's own --parallelism rules (it sets parallelism.default): one slot per
    # task on the one TaskManager, and no more tasks than partitions to read.
    slots = int(flink_properties(services["flink-taskmanager"])["taskmanager.numberOfTaskSlots"])
    assert "deploy" not in services["flink-taskmanager"], "one TaskManager"
    assert 1 <= job.parallelism <= slots
    assert job.parallelism <= stack.topic("transactions").partitions


def test_scorer_scales_and_its_healthcheck_asks_grpc_health(
    services: dict[str, dict[str, Any]],
) -> None:
    scoring = services["scoring"]
    assert scoring["deploy"]["replicas"] >= 2
    assert "ports" not in scoring, "a fixed host port clashes between replicas"
    assert "50051" in scoring["expose"]
    assert scoring["healthcheck"]["test"] == ["CMD", "grpc-health-check"]
    assert "/usr/local/bin/grpc-health-check" in DOCKERFILE.read_text()


def test_every_scrape_target_is_a_compose_service_port(
    services: dict[str, dict[str, Any]], stack: StackConfig
) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    served: dict[str, set[int]] = {"prometheus": {9090}}
    for name in ("scoring", "controller", "drift", "trainer"):
        served[name] = {int(p) for p in services[name]["expose"]}
    for name in ("flink-jobmanager", "flink-taskmanager"):
        served[name] = {int(flink_properties(services[name])["metrics.reporter.prom.port"])}
    jobs: dict[str, set[tuple[str, int]]] = {}
    for job in config["scrape_configs"]:
        targets: set[tuple[str, int]] = set()
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            targets |= {(host, int(dns["port"])) for host in dns["names"]}
        for host, port in targets:
            assert host in services, f"{job['job_name']}: {host} is not a compose service"
            assert port in served.get(host, set()), f"{job['job_name']}: {host}:{port}"
        jobs[job["job_name"]] = targets
    # Every service of stack.toml [metrics_ports] is scraped under the local stack's job
    # name; the producer is a CLI (`riskstream produce`), not a compose service.
    for service, port in stack.metrics_ports.items():
        if service == "producer":
            continue
        assert any(p == port for _, p in jobs[f"riskstream-{service}"]), service
    assert "/etc/prometheus/rules/*.yml" in config["rule_files"]


def scrape_jobs(path: Path) -> dict[str, str | None]:
    """Job name → the ``service`` label it gives its targets (static or relabelled)."""
    jobs: dict[str, str | None] = {}
    for job in yaml.safe_load(path.read_text())["scrape_configs"]:
        services = {s.get("labels", {}).get("service") for s in job.get("static_configs", [])}
        services |= {r["replacement"] for r in job.get("relabel_configs", [])
                     if r.get("target_label") == "service"}  # fmt: skip
        assert len(services - {None}) <= 1, job["job_name"]
        jobs[job["job_name"]] = next(iter(services - {None}), None)
    return jobs


def test_scrape_job_names_are_the_checked_in_ones() -> None:
    # ServiceDown and the Overview's "Targets up" select up{job=~"riskstream-.+"}: a
    # job named otherwise here would be a service nobody is paged for.
    compose = scrape_jobs(PROMETHEUS)
    checked_in = scrape_jobs(CHECKED_IN_PROMETHEUS)
    # The producer is a command run by hand (`riskstream produce`), not a compose service.
    del checked_in["riskstream-producer"]
    assert compose == checked_in


def test_mounted_configuration_exists_in_the_repository(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (INFRA / source).exists(), f"{name}: {source} is missing"


def test_secrets_are_files_never_values(compose: dict[str, Any]) -> None:
    secret_name = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|CREDENTIAL")
    for name, service in compose["services"].items():
        for key, value in env_of(service).items():
            if secret_name.search(key):
                assert key.endswith("_FILE") or key.endswith("__FILE"), f"{name}: {key}"
            if key.endswith("_FILE") and secret_name.search(key):
                assert value.startswith("/run/secrets/"), f"{name}: {key}={value}"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: secret {secret} is not declared"
    for name, secret in compose["secrets"].items():
        path = INFRA / secret["file"]
        assert path.parent == INFRA / "secrets", name
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(path)], cwd=REPO_ROOT, check=False
        )
        assert ignored.returncode == 0, f"{path} is not git-ignored"


@pytest.fixture
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(grace=None)


def test_healthcheck_script_follows_the_health_service(
    health_server: tuple[int, health.HealthServicer],
) -> None:
    port, servicer = health_server
    script = INFRA / "docker" / "grpc_health_check.py"
    env = {**os.environ, "RISKSTREAM_SCORING_PORT": str(port)}
    env.pop("RISKSTREAM_SCORING_TLS_CERT_FILE", None)

    def check() -> int:
        return subprocess.run([sys.executable, str(script)], env=env, timeout=30).returncode

    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert check() == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert check() == 1


def test_stack_toml_is_the_file_the_image_ships() -> None:
    assert "COPY infra/local/stack.toml ./infra/local/stack.toml" in DOCKERFILE.read_text()
    tomllib.loads((INFRA / "local" / "stack.toml").read_text())


def test_grafana_provisioning_finds_its_mounts(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    targets = dict(str(v).split(":")[:2][::-1] for v in grafana["volumes"] if str(v)[0] == ".")
    providers = yaml.safe_load(
        (INFRA / "grafana" / "provisioning" / "dashboards" / "riskstream.yml").read_text()
    )["providers"]
    for provider in providers:
        assert provider["options"]["path"] in targets, "dashboards are mounted where read"
    datasources = INFRA / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    for variable in re.findall(r"\$\{(\w+)\}", datasources.read_text()):
        assert variable in env_of(grafana), f"the datasource reads ${{{variable}}}"
    assert env_of(grafana)["PROMETHEUS_URL"] == "http://prometheus:9090"
