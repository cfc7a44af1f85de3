"""infra/k8s: every manifest parses, has what its kind needs, and agrees with
infra/local/stack.toml and the code (topics, ports, probes, selectors, env names).

No cluster runs here: the files are parsed (multi-document YAML), and rendered
with `kubectl kustomize` when kubectl is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.scoring.config import ScoringConfig
from services.stack.config import REPO_ROOT, StackConfig, load_stack_config

sys.path.insert(0, str(REPO_ROOT))  # flink_jobs is a directory of the repository, not installed
from flink_jobs.config import parse_args as parse_job_args

K8S = REPO_ROOT / "infra" / "k8s"
WORKLOADS = {"Deployment", "StatefulSet"}
#: Deployment → (python module, stack.toml metrics_ports name or None).
SERVICES = {
    "riskstream-scoring": ("services.scoring", "scoring"),
    "riskstream-controller": ("services.controller", "controller"),
    "riskstream-drift": ("services.drift", "drift"),
    "riskstream-trainer": ("services.trainer", "trainer"),
    "riskstream-offline-writer": ("services.feature_store", None),
}
REQUIRED = {
    "Namespace": ["metadata.name"],
    "PersistentVolumeClaim": ["spec.accessModes", "spec.resources.requests.storage"],
    "Kafka": ["spec.kafka.version", "spec.kafka.listeners", "spec.entityOperator"],
    "KafkaNodePool": ["metadata.labels", "spec.replicas", "spec.roles", "spec.storage"],
    "KafkaTopic": ["metadata.labels", "spec.topicName", "spec.partitions", "spec.replicas",
                   "spec.config"],
    "Service": ["spec.selector", "spec.ports"],
    "StatefulSet": ["spec.serviceName", "spec.selector.matchLabels", "spec.template"],
    "Deployment": ["spec.selector.matchLabels", "spec.template.metadata.labels",
                   "spec.template.spec.containers"],
    "FlinkDeployment": ["spec.image", "spec.flinkVersion", "spec.job.jarURI", "spec.job.args",
                        "spec.jobManager.resource", "spec.taskManager.resource"],
    "HorizontalPodAutoscaler": ["spec.scaleTargetRef", "spec.minReplicas", "spec.maxReplicas",
                                "spec.metrics"],
    "PodDisruptionBudget": ["spec.selector.matchLabels"],
    "ServiceMonitor": ["spec.selector.matchLabels", "spec.endpoints"],
}  # fmt: skip


def dig(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk, "kustomization.yaml must list every manifest"
    out: list[dict[str, Any]] = []
    for name in listed:
        out += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]
    return out


@pytest.fixture(scope="module")
def stack() -> StackConfig:
    return load_stack_config({})


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def pod_templates(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pod templates (labels + spec) of workloads and of the FlinkDeployment."""
    templates = [d["spec"]["template"] for d in docs if d["kind"] in WORKLOADS]
    templates += [d["spec"]["podTemplate"] for d in of_kind(docs, "FlinkDeployment")]
    return templates


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def container_env(doc: dict[str, Any]) -> dict[str, str]:
    [container] = doc["spec"]["template"]["spec"]["containers"]
    return {e["name"]: str(e["value"]) for e in container.get("env", [])}


def test_every_document_has_the_fields_its_kind_needs(docs: list[dict[str, Any]]) -> None:
    kinds = Counter(d["kind"] for d in docs)
    assert set(kinds) == set(REQUIRED), f"unexpected kinds: {set(kinds) ^ set(REQUIRED)}"
    for doc in docs:
        assert doc.get("apiVersion") and doc["metadata"].get("name"), doc
        for path in REQUIRED[doc["kind"]]:
            assert dig(doc, path) not in (None, [], {}), f"{doc['kind']}/{doc['metadata']['name']}"
    names = Counter((d["kind"], d["metadata"]["name"]) for d in docs)
    assert max(names.values()) == 1, "a kind/name pair appears twice"


def test_workload_selectors_match_their_pod_templates(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selects(doc["spec"]["selector"]["matchLabels"], labels), doc["metadata"]


def test_images_are_pinned(docs: list[dict[str, Any]]) -> None:
    images = [c["image"] for t in pod_templates(docs) for c in t["spec"]["containers"]
              if "image" in c]  # fmt: skip
    images += [d["spec"]["image"] for d in of_kind(docs, "FlinkDeployment")]
    assert images
    for image in images:
        _, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and "/" not in tag, image


def test_kafka_is_kraft_with_node_pools_at_the_stack_version(
    docs: list[dict[str, Any]], stack: StackConfig
) -> None:
    [kafka] = of_kind(docs, "Kafka")
    assert kafka["spec"]["kafka"]["version"] == stack.kafka.version
    assert "zookeeper" not in kafka["spec"]
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    assert "topicOperator" in kafka["spec"]["entityOperator"], "KafkaTopic needs it"
    pools = of_kind(docs, "KafkaNodePool")
    assert pools and all(
        p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"] for p in pools
    )
    roles = {r for p in pools for r in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    plain = [x for x in kafka["spec"]["kafka"]["listeners"] if not x["tls"]]
    assert [x["port"] for x in plain] == [stack.kafka.port]


def test_one_kafka_topic_per_stack_topic(docs: list[dict[str, Any]], stack: StackConfig) -> None:
    [kafka] = of_kind(docs, "Kafka")
    topics = {}
    for doc in of_kind(docs, "KafkaTopic"):
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        spec = doc["spec"]
        topics[spec["topicName"]] = (
            spec["partitions"],
            int(spec["config"]["retention.ms"]),
            spec["config"]["cleanup.policy"],
        )
        min_isr = kafka["spec"]["kafka"]["config"]["min.insync.replicas"]
        assert spec["replicas"] > min_isr, "acks=all must survive one broker down"
    expected = {t.name: (t.partitions, t.retention_ms, t.cleanup_policy) for t in stack.topics}
    assert topics == expected


def test_service_environments_are_read_by_the_services(
    docs: list[dict[str, Any]], stack: StackConfig, service_env
) -> None:
    [kafka] = of_kind(docs, "Kafka")
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:{stack.kafka.port}"
    for name, (module, metrics) in SERVICES.items():
        doc = named(docs, "Deployment", name)
        [container] = doc["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [module], name
        env = container_env(doc)
        settings = service_env(module, env)  # unknown names and bad values fail here
        assert settings.kafka.bootstrap_servers == bootstrap, name
        # Loopback is every service's default: a pod must override each listen address
        # for the Service (probes, ServiceMonitor, clients) to reach it.
        assert not settings.loopback_listeners, f"{name} listens on loopback only"
        if metrics is not None:
            port = stack.metrics_ports[metrics]
            assert settings.config.metrics_port == port, name  # type: ignore[attr-defined]
            assert {"name": "metrics", "containerPort": port} in container["ports"], name
            assert "metrics_host" in settings.listen_addresses, name
    scoring = service_env("services.scoring", container_env(named(docs, "Deployment",
                          "riskstream-scoring"))).config  # fmt: skip
    assert scoring.redis_url == f"redis://redis:{stack.redis.port}/0"
    assert scoring.host == "0.0.0.0" and scoring.workers == 1
    trainer = service_env("services.trainer", container_env(named(docs, "Deployment",
                          "riskstream-trainer"))).config  # fmt: skip
    assert trainer.redis_url == f"redis://redis:{stack.redis.port}/0"  # type: ignore[attr-defined]


def test_secret_paths_are_mounted_and_never_literal(docs: list[dict[str, Any]]) -> None:
    for doc in of_kind(docs, "Deployment"):
        [container] = doc["spec"]["template"]["spec"]["containers"]
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        for name, value in container_env(doc).items():
            assert not any(s in name for s in ("PASSWORD", "TOKEN=", "SECRET")), name
            if name.endswith("_FILE"):
                assert any(value.startswith(m + "/") for m in mounts), f"{name}={value} unmounted"
    for doc in docs:
        assert doc["kind"] != "Secret", "secrets are created from files, never committed"


def test_scorer_probes_hpa_and_pdb(docs: list[dict[str, Any]]) -> None:
    scorer = named(docs, "Deployment", "riskstream-scoring")
    [container] = scorer["spec"]["template"]["spec"]["containers"]
    grpc_port = ScoringConfig().port  # the scorer's own default, 50051
    assert {"name": "grpc", "containerPort": grpc_port} in container["ports"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == grpc_port, probe
    service = named(docs, "Service", "riskstream-scoring")
    assert {"name": "grpc", "port": grpc_port, "targetPort": "grpc",
            "appProtocol": "grpc"} in service["spec"]["ports"]  # fmt: skip
    [hpa] = of_kind(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "riskstream-scoring",
    )
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert container["resources"]["requests"]["cpu"], "CPU utilisation needs a CPU request"
    [pdb] = of_kind(docs, "PodDisruptionBudget")
    labels = scorer["spec"]["template"]["metadata"]["labels"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "a drain must be possible"
    others = [t for t in pod_templates(docs) if t is not scorer["spec"]["template"]]
    assert not any(selects(pdb["spec"]["selector"]["matchLabels"], t["metadata"]["labels"])
                   for t in others)  # fmt: skip


def test_every_service_selects_a_pod_and_its_ports_exist(docs: list[dict[str, Any]]) -> None:
    templates = pod_templates(docs)
    for service in of_kind(docs, "Service"):
        selector = service["spec"]["selector"]
        matched = [t for t in templates if selects(selector, t["metadata"]["labels"])]
        assert matched, f"Service {service['metadata']['name']} selects no pod template"
        for port in service["spec"]["ports"]:
            names = {p.get("name") for t in matched for c in t["spec"]["containers"]
                     for p in c.get("ports", [])}  # fmt: skip
            assert port["targetPort"] in names, f"{service['metadata']['name']}: {port}"


def test_service_monitors_cover_every_metrics_port(
    docs: list[dict[str, Any]], stack: StackConfig
) -> None:
    services = of_kind(docs, "Service")
    scraped: dict[str, int] = {}
    for monitor in of_kind(docs, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if selects(selector, s["metadata"].get("labels", {}))]
        assert len(matched) == 1, f"ServiceMonitor {monitor['metadata']['name']}"
        [endpoint] = monitor["spec"]["endpoints"]
        [port] = [p for p in matched[0]["spec"]["ports"] if p["name"] == endpoint["port"]]
        job = {r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]}
        scraped[job["service"]] = port["port"]
        assert job["job"] == f"riskstream-{job['service']}"
    expected = {k: v for k, v in stack.metrics_ports.items() if k != "producer"}  # a CLI
    assert scraped == expected


def test_flink_deployment_runs_the_feature_job(
    docs: list[dict[str, Any]], stack: StackConfig
) -> None:
    [flink] = of_kind(docs, "FlinkDeployment")
    spec = flink["spec"]
    requirements = (REPO_ROOT / "flink_jobs" / "requirements.txt").read_text()
    version = next(
        line.split("==")[1] for line in requirements.splitlines()
        if line.startswith("apache-flink==")
    )  # fmt: skip
    assert spec["flinkVersion"] == "v" + "_".join(version.split(".")[:2])
    assert spec["job"]["jarURI"] == f"local:///opt/flink/opt/flink-python-{version}.jar"
    assert spec["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    args = spec["job"]["args"]
    script = args.index("-py") + 1
    assert Path(args[script]).relative_to("/opt/riskstream") == Path("flink_jobs/feature_job.py")
    job = parse_job_args(args[script + 1 :], env={})
    [kafka] = of_kind(docs, "Kafka")
    assert job.bootstrap_servers == f"{kafka['metadata']['name']}-kafka-bootstrap:9092"
    assert (job.redis_host, job.redis_port) == ("redis", stack.redis.port)
    # A source task per partition at most: more parallelism than partitions idles. The
    # job's --parallelism sets parallelism.default over the cluster's: both must agree.
    partitions = stack.topic("transactions").partitions
    assert 1 <= spec["job"]["parallelism"] <= partitions
    assert job.parallelism == spec["job"]["parallelism"]
    config = spec["flinkConfiguration"]
    assert config["metrics.reporter.prom.port"] == str(stack.metrics_ports["feature_job"])
    redis = named(docs, "StatefulSet", "redis")
    args_redis = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args_redis[args_redis.index("--port") + 1] == str(stack.redis.port)
    assert args_redis[args_redis.index("--maxmemory") + 1] == f"{stack.redis.maxmemory_mb}mb"
    assert named(docs, "Service", "redis")["spec"]["ports"][0]["port"] == stack.redis.port


def test_volumes_name_existing_claims(docs: list[dict[str, Any]]) -> None:
    claims = {d["metadata"]["name"] for d in of_kind(docs, "PersistentVolumeClaim")}
    claim_templates = {
        t["metadata"]["name"]
        for d in of_kind(docs, "StatefulSet")
        for t in d["spec"].get("volumeClaimTemplates", [])
    }
    for template in pod_templates(docs):
        for volume in template["spec"].get("volumes", []):
            claim = volume.get("persistentVolumeClaim")
            if claim:
                assert claim["claimName"] in claims, volume
        for container in template["spec"]["containers"]:
            declared = {v["name"] for v in template["spec"].get("volumes", [])} | claim_templates
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in declared, mount


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_every_document(docs: list[dict[str, Any]]) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True
    ).stdout
    out = [d for d in yaml.safe_load_all(rendered) if d]
    assert len(out) == len(docs)
    assert all(d["metadata"].get("namespace") == "riskstream" for d in out
               if d["kind"] != "Namespace")  # fmt: skip
