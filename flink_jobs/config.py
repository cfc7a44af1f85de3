"""Settings of the feature job: one frozen class, built from flags over environment defaults.

Standard library only, so both environments import it: the job (``.venv-flink``) and
the stack's :class:`~services.stack.flink.FlinkJobComponent` (``.venv``), which
passes fields as the job's flags (``--field-name value``).

Defaults for the broker, Redis, the state directory and the jar cache come from the
local stack's configuration (``infra/stack.toml`` with its ``RISKSTREAM_*``
overrides, see ``services/stack/config.py``), read only when a flag is not given.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXECUTION_MODES = ("thread", "process")
#: Consumer group of the job: Kafka offsets are committed under it on each checkpoint.
DEFAULT_GROUP_ID = "riskstream-feature-job"


@dataclass(frozen=True)
class FeatureJobConfig:
    """Everything the feature job needs; units in the field names.

    Attributes:
        bootstrap_servers: Kafka ``host:port`` list.
        redis_host: online store host.
        redis_port: online store port.
        redis_db: online store database number.
        transactions_topic: input; its dead letters go to ``<name>.dlq``.
        labels_topic: input; its dead letters go to ``<name>.dlq``.
        features_topic: output, the feature log (key = entity id).
        group_id: Kafka consumer group (offsets committed on checkpoints).
        state_dir: ``$RISKSTREAM_HOME/flink``: checkpoints and logs live under it.
        jars: absolute paths of the connector jars (``pipeline.jars``).
        python_executable: the interpreter of ``.venv-flink`` (Python workers).
        python_path: entries of the workers' ``PYTHONPATH``, in order.
        execution_mode: ``thread`` (embedded in the JVM) or ``process``.
        checkpoint_interval_ms: how often state and offsets are checkpointed.
        restore: start from the latest retained checkpoint when there is one.
        out_of_orderness_ms: bounded out-of-orderness of the watermarks.
        idleness_ms: a partition with no record this long stops holding the watermark
            back. Not shorter than the longest a busy partition may wait for its turn
            while the job is back-pressured (a catch-up), or its events look late. When
            no record at all arrives for this long, terminal records still waiting for
            the watermark are applied (the end of a replay; flink_jobs/README.md).
        allowed_lateness_ms: an event older than watermark minus this is late (DLQ).
        redis_flush_interval_ms: most time a feature vector waits before Redis.
        redis_batch_size: vectors that trigger an immediate Redis flush.
        bundle_size: Python bundle size (process mode).
        bundle_time_ms: Python bundle time (process mode).
        buffer_timeout_ms: network buffer flush timeout.
        jvm_heap_mb: heap cap of the local mini-cluster's JVM.
        metrics_port: Prometheus reporter port; 0 for no reporter. Flink's reporter
            takes no bind address: it listens on every interface.
        online_repair_window_s: on a restore, the ``features`` rows produced from this
            many seconds before the restored checkpoint on are written to Redis again
            before the job starts (newer-wins), so vectors the dead run had not yet
            flushed are not lost (``flink_jobs/online_repair.py``); 0: no repair.
        parallelism: parallel tasks of every operator; 1 on the local stack (one
            slot per core, docs/SCALING.md). Above the partitions of the input
            topics, the extra source tasks idle.
        job_name: name of the Flink job.
    """

    bootstrap_servers: str
    redis_port: int
    state_dir: Path
    jars: tuple[str, ...]
    redis_host: str = "127.0.0.1"
    redis_db: int = 0
    transactions_topic: str = "transactions"
    labels_topic: str = "labels"
    features_topic: str = "features"
    group_id: str = DEFAULT_GROUP_ID
    python_executable: str = sys.executable
    python_path: tuple[str, ...] = ()
    execution_mode: str = "thread"
    checkpoint_interval_ms: int = 5_000
    restore: bool = True
    out_of_orderness_ms: int = 2_000
    idleness_ms: int = 60_000
    allowed_lateness_ms: int = 3_600_000
    redis_flush_interval_ms: int = 20
    redis_batch_size: int = 500
    bundle_size: int = 100
    bundle_time_ms: int = 10
    buffer_timeout_ms: int = 10
    jvm_heap_mb: int = 768
    metrics_port: int = 0
    online_repair_window_s: int = 60
    parallelism: int = 1
    job_name: str = "riskstream-features"

    def __post_init__(self) -> None:
        if self.execution_mode not in EXECUTION_MODES:
            raise ValueError(f"execution_mode must be one of {EXECUTION_MODES}")
        window = self.online_repair_window_s
        if not isinstance(window, int) or window < 0:
            raise ValueError(f"online_repair_window_s must be an integer >= 0, got {window!r}")
        if self.parallelism < 1:
            raise ValueError(f"parallelism must be at least 1, got {self.parallelism!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_ms", "_mb", "_size")) and (
                not isinstance(value, int) or value <= 0
            ):
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")

    @property
    def checkpoint_dir(self) -> Path:
        return self.state_dir / "checkpoints"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def transactions_dlq(self) -> str:
        return self.transactions_topic + ".dlq"

    @property
    def labels_dlq(self) -> str:
        return self.labels_topic + ".dlq"


def site_packages(python_executable: str) -> str:
    """The ``site-packages`` folder of a venv's interpreter (``<venv>/bin/python``)."""
    venv = Path(python_executable).absolute().parent.parent
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(venv / "lib" / version / "site-packages")


def default_python_path(python_executable: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """What the workers need on ``PYTHONPATH``: the caller's entries, then the venv's
    site-packages (thread mode's embedded interpreter does not see them otherwise),
    then the repository root (``services.feature_store`` and ``flink_jobs``)."""
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [*inherited, site_packages(python_executable), str(REPO_ROOT)]
    return tuple(dict.fromkeys(paths))


def _stack_defaults(env: Mapping[str, str]) -> dict[str, object]:
    """Broker, Redis, state and jars of the local stack (imported only when needed)."""
    from services.stack.config import load_stack_config
    from services.stack.jars import flink_jars

    stack = load_stack_config(env)
    return {
        "bootstrap_servers": env.get("RISKSTREAM_KAFKA_BOOTSTRAP", stack.kafka.bootstrap_servers),
        "redis_port": stack.redis.port,
        "state_dir": stack.state_dir / "flink",
        "jars": tuple(str(j) for j in flink_jars(stack.jar_cache)),
        "metrics_port": stack.metrics_ports.get("feature_job", 0),
    }


def parse_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> FeatureJobConfig:
    """Build the configuration from flags; the local stack supplies what is missing.

    Args:
        argv: the flags (``sys.argv[1:]``); every field has one, e.g. ``--redis-port``.
        env: the environment for the stack defaults (``os.environ`` when None).

    Raises:
        SystemExit: a flag is unknown or malformed (argparse's behaviour).
    """
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(prog="flink_jobs.feature_job", description=__doc__)
    for f in dataclasses.fields(FeatureJobConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "restore":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif f.name in ("jars", "python_path"):
            parser.add_argument(flag, action="append", default=None)
        else:
            kind = int if f.type in ("int", int) else str
            parser.add_argument(flag, type=kind, default=None)
    given = {k: v for k, v in vars(parser.parse_args(list(argv))).items() if v is not None}
    needed = {"bootstrap_servers", "redis_port", "state_dir", "jars", "metrics_port"}
    if not needed <= set(given):
        given = {**_stack_defaults(env), **given}
    given["state_dir"] = Path(given["state_dir"]).absolute()  # type: ignore[arg-type]
    given["jars"] = tuple(str(Path(j).absolute()) for j in given["jars"])  # type: ignore[union-attr]
    executable = str(given.get("python_executable", sys.executable))
    given["python_executable"] = executable
    if "python_path" in given:
        given["python_path"] = tuple(given["python_path"])  # type: ignore[arg-type]
    else:
        given["python_path"] = default_python_path(executable, env)
    try:
        return FeatureJobConfig(**given)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits
