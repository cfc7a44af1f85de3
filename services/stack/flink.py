"""The PyFlink feature job as a stack component, and the lag of its consumer group.

The job (``flink_jobs/feature_job.py``) runs in its own environment, ``.venv-flink``
(see ``docs/ENVIRONMENTS.md``): :meth:`FlinkJobComponent.prepare` returns the command
line that starts it with that interpreter on a local mini-cluster, as a detached
process owned through a pid file like every other component. Its state (retained
checkpoints, Flink's logs) lives under ``$RISKSTREAM_HOME/flink``; started again, it
resumes from the latest retained checkpoint.

Healthy means running *and consuming*: our process is alive and a checkpoint
completed recently (a checkpoint completes only while every task, the Kafka sources
included, runs: a job that keeps failing and restarting is unhealthy, and so is a
hung one). The detail reports the lag of the job's consumer group, which the Kafka
source commits on each checkpoint (it is assigned partitions, so the group never
has members, and it has no offsets until the job has read something).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from services.common.errors import InfraError
from services.stack.components import Component, Health
from services.stack.config import REPO_ROOT, StackConfig
from services.stack.jars import flink_jars
from services.stack.process import ManagedProcess

JOB_SCRIPT = REPO_ROOT / "flink_jobs" / "feature_job.py"
DEFAULT_PYTHON = REPO_ROOT / ".venv-flink" / "bin" / "python"
#: Must match flink_jobs.config.DEFAULT_GROUP_ID (the job's default consumer group).
DEFAULT_GROUP_ID = "riskstream-feature-job"


@dataclass(frozen=True)
class ConsumerLag:
    """How far a consumer group is behind the ends of its topics.

    Attributes:
        group_id: the consumer group.
        by_partition: ``(topic, partition)`` → records not yet committed by the
            group (from the earliest retained offset where it has committed nothing).
        uncommitted: partitions without a committed offset.
    """

    group_id: str
    by_partition: Mapping[tuple[str, int], int]
    uncommitted: int

    @property
    def total(self) -> int:
        """Records behind, over every partition."""
        return sum(self.by_partition.values())

    def of_topic(self, topic: str) -> int:
        """Records behind on one topic."""
        return sum(lag for (t, _), lag in self.by_partition.items() if t == topic)


def consumer_lag(
    bootstrap_servers: str, group_id: str, topics: Sequence[str], *, timeout_s: float = 5.0
) -> ConsumerLag:
    """The lag of ``group_id`` on every partition of ``topics``.

    Raises:
        InfraError: the broker did not answer, or a topic does not exist.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    probe = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": f"{group_id}-lag-probe",
         "enable.auto.commit": False, "log_level": 0}
    )  # fmt: skip
    try:
        metadata = admin.list_topics(timeout=timeout_s)
        partitions = []
        for topic in topics:
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                raise InfraError(f"topic {topic!r} does not exist", component="flink")
            partitions += [TopicPartition(topic, p) for p in sorted(described.partitions)]
        request = ConsumerGroupTopicPartitions(group_id, partitions)
        committed = admin.list_consumer_group_offsets([request], request_timeout=timeout_s)
        offsets = {
            (tp.topic, tp.partition): tp.offset
            for tp in committed[group_id].result().topic_partitions
        }
        lags: dict[tuple[str, int], int] = {}
        uncommitted = 0
        for tp in partitions:
            low, high = probe.get_watermark_offsets(tp, timeout=timeout_s)
            offset = offsets.get((tp.topic, tp.partition), -1)
            if offset < 0:
                uncommitted += 1
                offset = low
            lags[(tp.topic, tp.partition)] = max(0, high - offset)
    except InfraError:
        raise
    except Exception as exc:  # librdkafka raises KafkaException, ValueError...
        raise InfraError(f"lag of group {group_id!r}: {exc}", component="flink") from exc
    finally:
        probe.close()
    return ConsumerLag(group_id, lags, uncommitted)


class _ProcessGroup(ManagedProcess):
    """The job's driver and everything it started (the mini-cluster JVM, and the
    Python workers in process mode): the driver leads its own session, so its
    process group holds exactly what we started."""

    def stop(self, *, timeout_s: float = 30.0) -> bool:
        pid = self.pid()
        stopped = super().stop(timeout_s=timeout_s)
        if pid is not None:
            self._kill_group(pid, signal.SIGKILL)  # leftovers once the driver is gone
        return stopped

    def kill(self) -> bool:
        """SIGKILL the whole group at once, as a crash would; True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        self._kill_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.pid() is not None:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            self.pid_file.unlink()
        return True

    @staticmethod
    def _kill_group(pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)


class FlinkJobComponent(Component):
    """The feature job on a local Flink mini-cluster, run by ``.venv-flink``'s Python.

    Args:
        config: the stack configuration (broker, Redis, state directory, jar cache,
            ``metrics_ports.feature_job``).
        python: the Flink environment's interpreter (``$RISKSTREAM_FLINK_PYTHON``,
            else ``.venv-flink/bin/python``).
        job: further job settings by ``flink_jobs.config.FeatureJobConfig`` field
            name (``transactions_topic``, ``execution_mode``, ``metrics_port``...),
            passed as its flags.
    """

    name = "flink"

    def __init__(
        self,
        config: StackConfig,
        *,
        python: Path | None = None,
        job: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(config)
        self.process = _ProcessGroup(
            name=self.name,
            pid_file=self.dir / f"{self.name}.pid",
            log_file=self.dir / f"{self.name}.log",
            marker=str(self.dir),
        )
        self.python = python or Path(os.environ.get("RISKSTREAM_FLINK_PYTHON", DEFAULT_PYTHON))
        self.job = dict(job or {})
        self.group_id = str(self.job.get("group_id", DEFAULT_GROUP_ID))
        self.checkpoint_interval_s = int(str(self.job.get("checkpoint_interval_ms", 5_000))) / 1000
        self.input_topics = (
            str(self.job.get("transactions_topic", "transactions")),
            str(self.job.get("labels_topic", "labels")),
        )

    @property
    def ports(self) -> tuple[int, ...]:
        default = self.config.metrics_ports.get("feature_job", 0)
        port = int(str(self.job.get("metrics_port", default)))
        return (port,) if port else ()

    @property
    def start_timeout_s(self) -> float:
        # JVM and Python start, job submission, then the first checkpoint.
        return 180.0

    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / "checkpoints"

    def prepare(self) -> list[str]:
        if not self.python.exists():
            raise InfraError(f"{self.python} is missing: run scripts/setup_flink_env.sh",
                             component=self.name)  # fmt: skip
        self.dir.mkdir(parents=True, exist_ok=True)
        settings: dict[str, object] = {
            "bootstrap_servers": self.config.kafka.bootstrap_servers,
            "redis_port": self.config.redis.port,
            "state_dir": self.dir,  # also the command line's ownership marker
            "python_executable": self.python,
            "metrics_port": self.ports[0] if self.ports else 0,
            **self.job,
        }
        args = [str(self.python), str(JOB_SCRIPT)]
        for jar in flink_jars(self.config.jar_cache):
            args += ["--jars", str(jar)]
        for key, value in settings.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + flag[2:])
            else:
                args += [flag, str(value)]
        return args

    def last_checkpoint_age_s(self) -> float | None:
        """Seconds since the newest completed checkpoint of this run, if any."""
        started = self.process.pid_file.stat().st_mtime if self.process.pid_file.exists() else 0
        times = [m.stat().st_mtime for m in self.checkpoint_dir.glob("*/chk-*/_metadata")]
        newest = max((t for t in times if t >= started), default=None)
        return None if newest is None else max(0.0, time.time() - newest)

    def consumer_lag(self) -> ConsumerLag:
        """Lag of the job's consumer group on its input topics (as of its last checkpoint)."""
        return consumer_lag(self.config.kafka.bootstrap_servers, self.group_id, self.input_topics)

    def health(self) -> Health:
        if not self.process.alive():
            return Health(False, "not running")
        age = self.last_checkpoint_age_s()
        if age is None:
            return Health(False, "running, no checkpoint completed yet")
        stale_after = max(3 * self.checkpoint_interval_s, 30.0)
        if age > stale_after:
            return Health(False, f"no checkpoint for {age:.0f} s: the job is not running")
        try:
            lag = self.consumer_lag()
        except InfraError as exc:
            return Health(False, str(exc))
        if lag.uncommitted == len(lag.by_partition):
            # The source commits on checkpoints, and only what it has read.
            return Health(True, f"checkpoint {age:.0f} s ago, nothing consumed yet")
        return Health(True, f"checkpoint {age:.0f} s ago, group {self.group_id} lag {lag.total:,}")
