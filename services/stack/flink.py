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
from collections.abc import Mapping
from pathlib import Path

from services.common.errors import InfraError
from services.stack.components import Component, Health
from services.stack.config import REPO_ROOT, StackConfig
from services.stack.groups import ConsumerLag, consumer_lag
from services.stack.jars import flink_jars
from services.stack.process import ManagedProcess

JOB_SCRIPT = REPO_ROOT / "flink_jobs" / "feature_job.py"
DEFAULT_PYTHON = REPO_ROOT / ".venv-flink" / "bin" / "python"
#: Must match flink_jobs.config.DEFAULT_GROUP_ID (the job's default consumer group).
DEFAULT_GROUP_ID = "riskstream-feature-job"


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
        # The metrics port is not claimed: a second stack on this machine (tests, a
        # developer's private one) shares infra/stack.toml's metrics ports, and the
        # job runs without its Prometheus reporter when the port is taken.
        return ()

    @property
    def metrics_port(self) -> int:
        """Prometheus reporter port: the job setting, ``$RISKSTREAM_FLINK_METRICS_PORT``,
        else ``metrics_ports.feature_job`` (0: no reporter)."""
        default = os.environ.get(
            "RISKSTREAM_FLINK_METRICS_PORT", self.config.metrics_ports.get("feature_job", 0)
        )
        return int(str(self.job.get("metrics_port", default)))

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
            "metrics_port": self.metrics_port,
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
