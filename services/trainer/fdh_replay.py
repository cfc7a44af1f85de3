"""Replay a handbook-format dataset through the real pipeline into a private offline store.

Kafka → the PyFlink feature job → the offline writer → Parquet, as in production,
with nothing shared with the running stack but the broker: topics under a fresh
prefix (partitioned like the stack's), the job's own consumer group, state directory
and a private ``redis-server`` (the job writes its online vectors somewhere; the
stack's Redis serves live traffic), the offline writer's own group and root.
Everything but the offline root is removed at the end, also on failure.

The procedure, in phases (each timed):

1. start the private Redis and the job (on a mini-cluster, as ``riskstream up``);
2. publish the replay (transactions at their event times, labels at event time +
   the label delay, merged in time order) as fast as Kafka takes it, while the
   offline writer consumes the three topics;
3. wait until the job has consumed and checkpointed every input record, then until
   the offline writer has committed every record of the three topics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.errors import InfraError
from services.common.kafka import KafkaClientSettings
from services.feature_store.__main__ import run as run_offline_writer
from services.feature_store.config import FeatureStoreConfig
from services.producer.__main__ import publisher_for, stream_to_kafka
from services.producer.pacing import Pacer
from services.producer.replay import replay_csv
from services.stack.config import StackConfig
from services.stack.flink import FlinkJobComponent
from services.stack.groups import consumer_lag
from services.stack.process import wait_until

Progress = Callable[[str], None]


class EventLike(Protocol):
    """A multiprocessing event, as far as the writer needs it."""

    def is_set(self) -> bool: ...


_TOPICS = ("transactions", "labels", "features")


@dataclass(frozen=True)
class ReplayReport:
    """What a replay put into the offline store.

    Attributes:
        transactions: transactions published.
        labels: labels published.
        rejected: dataset rows the replayer rejected (sent to the DLQ).
        job_dead_letters: records the feature job dead-lettered (late or invalid).
        feature_rows: rows the job wrote to its ``features`` topic.
        seconds: phase → seconds (``start``, ``publish``, ``features``, ``offline``,
            ``total``).
    """

    transactions: int
    labels: int
    rejected: int
    job_dead_letters: int
    feature_rows: int
    seconds: Mapping[str, float]


def replay_into_offline_store(
    dataset: Path,
    offline_root: Path,
    *,
    start: datetime,
    end: datetime,
    stack: StackConfig,
    work_dir: Path,
    label_delay: timedelta = timedelta(days=7),
    timeout_s: float = 4 * 3600,
    progress: Progress | None = None,
) -> ReplayReport:
    """Replays ``[start, end)`` of ``dataset`` through Kafka and Flink into ``offline_root``.

    Args:
        dataset: the CSV (handbook format, time-ordered, gzip or plain).
        offline_root: where the offline writer lands the Parquet store.
        start: first event time (aware).
        end: last event time, exclusive (aware).
        stack: the running stack's configuration (its broker is used).
        work_dir: scratch space for the job's state and Redis (removed at the end).
        label_delay: from a transaction to its label.
        timeout_s: give up waiting for the pipeline after this long.
        progress: receives one-line progress messages.

    Raises:
        InfraError: a component failed to start, or the pipeline did not finish in time.
    """
    say = progress or (lambda _: None)
    seconds: dict[str, float] = {}
    began = mark = time.monotonic()
    prefix = f"eval-{uuid.uuid4().hex[:8]}-"
    kafka = KafkaClientSettings(
        bootstrap_servers=stack.kafka.bootstrap_servers, client_id="riskstream-evaluate"
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    with (
        _private_topics(stack, prefix),
        _private_redis(work_dir / "redis") as redis_port,
        _feature_job(stack, prefix, work_dir, redis_port) as job,
    ):
        seconds["start"] = time.monotonic() - mark
        say(f"feature job healthy after {seconds['start']:.0f} s (topics {prefix}*)")
        # The offline writer in its own process, as the stack runs it: in this one it
        # would share the interpreter lock with the publisher and halve both.
        spawn = multiprocessing.get_context("spawn")
        stop_writer = spawn.Event()
        writer = spawn.Process(
            target=_offline_writer,
            args=(offline_root, prefix, kafka, stop_writer),
            name="offline-writer",
            daemon=True,
        )
        writer.start()
        try:
            mark = time.monotonic()
            stream = replay_csv(dataset, start=start, end=end, label_delay=label_delay,
                                sorted_input=True)  # fmt: skip
            report = stream_to_kafka(stream, publisher_for(kafka, topic_prefix=prefix), Pacer())
            counts = report.counts
            seconds["publish"] = time.monotonic() - mark
            say(f"published {counts.transactions:,} transactions and {counts.labels:,} labels "
                f"in {seconds['publish']:.0f} s")  # fmt: skip

            deadline = began + timeout_s
            inputs = [prefix + "transactions", prefix + "labels"]

            def job_done() -> bool:
                lag = consumer_lag(stack.kafka.bootstrap_servers, job.group_id, inputs)
                say(f"feature job lag {lag.total:,}")
                if lag.uncommitted or lag.total:
                    return False
                # Inputs read is not rows out: a terminal's rows wait for the watermark,
                # the last ones for the partitions' idleness timeout (flink_jobs/README.md).
                out = _end_offsets(stack, [prefix + "features", prefix + "transactions.dlq"])
                rows, dead = out[prefix + "features"], out[prefix + "transactions.dlq"]
                return rows + 2 * dead >= 2 * counts.transactions

            if not wait_until(job_done, timeout_s=deadline - time.monotonic(), interval_s=15.0):
                raise InfraError("the feature job did not catch up in time", component="flink")
            seconds["features"] = time.monotonic() - mark
            outputs = [prefix + t for t in _TOPICS]

            def writer_done() -> bool:
                if not writer.is_alive():
                    return True
                lag = consumer_lag(
                    stack.kafka.bootstrap_servers, prefix + "offline-writer", outputs
                )
                say(f"offline writer lag {lag.total:,}")
                return lag.uncommitted == 0 and lag.total == 0

            if not wait_until(writer_done, timeout_s=deadline - time.monotonic(), interval_s=5.0):
                raise InfraError("the offline writer did not catch up in time", component="offline")
            if not writer.is_alive():
                raise InfraError(
                    f"offline writer exited with {writer.exitcode}", component="offline"
                )
        finally:
            stop_writer.set()
            writer.join(timeout=120)
            if writer.is_alive():
                writer.kill()
        seconds["offline"] = time.monotonic() - mark
        ends = _end_offsets(
            stack, [prefix + "features", prefix + "transactions.dlq", prefix + "labels.dlq"]
        )
    seconds["total"] = time.monotonic() - began
    return ReplayReport(
        transactions=counts.transactions,
        labels=counts.labels,
        rejected=counts.dead_letters,
        job_dead_letters=ends[prefix + "transactions.dlq"] + ends[prefix + "labels.dlq"],
        feature_rows=ends[prefix + "features"],
        seconds=seconds,
    )


@contextlib.contextmanager
def _private_topics(stack: StackConfig, prefix: str) -> Iterator[None]:
    """The three topics and their DLQs under ``prefix``, partitioned like the stack's."""
    admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap_servers})
    names: dict[str, int] = {}
    for topic in _TOPICS:
        partitions = stack.topic(topic).partitions
        names[prefix + topic] = partitions
        names[prefix + topic + ".dlq"] = partitions
    # Kept whatever the records' timestamps (the job stamps its output with 2018's event
    # times, which a time-based retention would delete); the topics go at the end.
    keep = {"retention.ms": "-1"}
    futures = admin.create_topics([NewTopic(n, p, 1, config=keep) for n, p in names.items()])
    for future in futures.values():
        future.result(30)
    try:
        yield
    finally:
        for future in admin.delete_topics(list(names)).values():
            with contextlib.suppress(Exception):  # best effort
                future.result(30)


@contextlib.contextmanager
def _private_redis(directory: Path) -> Iterator[int]:
    """A throw-away ``redis-server`` on a free port, owned by this process."""
    directory.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def answers() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        return False

    try:
        if not wait_until(answers, timeout_s=20, interval_s=0.1):
            raise InfraError("private redis-server did not start", component="redis")
        yield port
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _feature_job(
    stack: StackConfig, prefix: str, work_dir: Path, redis_port: int
) -> Iterator[FlinkJobComponent]:
    """The feature job on the private topics, started and healthy; stopped at exit."""
    config = dataclasses.replace(
        stack,
        state_dir=work_dir / "stack",
        redis=dataclasses.replace(stack.redis, port=redis_port),
    )
    job = FlinkJobComponent(
        config,
        job={
            "transactions_topic": prefix + "transactions",
            "labels_topic": prefix + "labels",
            "features_topic": prefix + "features",
            "group_id": prefix + "feature-job",
            "metrics_port": 0,
            "job_name": prefix + "features",
        },
    )
    try:
        job.process.spawn(job.prepare())
        healthy = wait_until(
            lambda: job.process.alive() and job.health().ok,
            timeout_s=job.start_timeout_s,
            interval_s=1.0,
        )
        if not healthy:
            raise InfraError(
                f"feature job not healthy: {job.health().detail}\n{job.process.log_tail(40)}",
                component="flink",
            )
        yield job
    finally:
        job.process.stop(timeout_s=30)
        shutil.rmtree(config.state_dir, ignore_errors=True)


def _offline_writer(
    offline_root: Path, prefix: str, kafka: KafkaClientSettings, stop: EventLike
) -> None:
    """The offline writer on the private topics, until ``stop`` is set (child process)."""
    config = FeatureStoreConfig(offline_root, group_id=prefix + "offline-writer")
    run_offline_writer(config, kafka, should_stop=stop.is_set, topic_prefix=prefix)


def _end_offsets(stack: StackConfig, topics: list[str]) -> dict[str, int]:
    """Records in each topic (sum of its partitions' end offsets)."""
    probe = Consumer(
        {"bootstrap.servers": stack.kafka.bootstrap_servers, "group.id": "riskstream-probe"}
    )
    try:
        out = {}
        for topic in topics:
            meta = probe.list_topics(topic, timeout=10).topics[topic]
            out[topic] = sum(
                probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions
            )
        return out
    finally:
        probe.close()
