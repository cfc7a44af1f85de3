"""The streaming feature job: transactions and labels in, card and terminal features out.

::

    transactions ─┐ Kafka source (JVM):        key by       FeatureFunction (Python):
                  ├ per-partition watermarks ─► c|card ─────► parse, lateness, kernel ─┬─► features
    labels ───────┘ a tx twice, a label once    t|terminal    state per key            ├─► Redis
                                                              (t|: in event-time       └─► *.dlq
                                                              order at the watermark)

Run it with the Flink environment's interpreter (``.venv-flink``), normally through
``services.stack.flink.FlinkJobComponent``; by hand::

    .venv-flink/bin/python -m flink_jobs.feature_job --help

It restores from the latest retained checkpoint under ``<state_dir>/checkpoints``
when there is one, and stops cleanly (cancelling the job, keeping its checkpoints)
on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (as the stack runs it): make `flink_jobs` and `services` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flink_jobs.config import FeatureJobConfig, parse_args

log = logging.getLogger("flink_jobs.feature_job")

_TERMINAL_STATES = {"FINISHED", "CANCELED", "FAILED"}


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest completed checkpoint (``<job id>/chk-<n>`` with ``_metadata``), if any."""
    found = [
        (meta.stat().st_mtime, int(meta.parent.name.removeprefix("chk-")), meta.parent)
        for meta in checkpoint_dir.glob("*/chk-*/_metadata")
        if meta.parent.name.removeprefix("chk-").isdigit()
    ]
    return max(found)[2] if found else None


def prune_checkpoints(checkpoint_dir: Path, keep: Path | None) -> None:
    """Delete earlier jobs' checkpoint folders except the one holding ``keep``.

    Each run is a new Flink job id; Flink retains only its own job's checkpoints, so
    without this every restart would leave one folder behind.
    """
    if not checkpoint_dir.is_dir():
        return
    for job_dir in checkpoint_dir.iterdir():
        if job_dir.is_dir() and (keep is None or job_dir != keep.parent):
            shutil.rmtree(job_dir, ignore_errors=True)


def flink_configuration(cfg: FeatureJobConfig, restore_from: Path | None) -> dict[str, str]:
    """Every Flink option the job sets, by its Flink 2.x key."""
    options = {
        "parallelism.default": str(cfg.parallelism),
        "pipeline.name": cfg.job_name,
        "pipeline.jars": ";".join(Path(j).as_uri() for j in cfg.jars),
        # Python: the job environment's interpreter and import path.
        "python.executable": cfg.python_executable,
        "python.pythonpath": os.pathsep.join(cfg.python_path),
        "python.execution-mode": cfg.execution_mode,
        "python.fn-execution.bundle.size": str(cfg.bundle_size),
        "python.fn-execution.bundle.time": str(cfg.bundle_time_ms),
        # Freshness: hand records on after at most this long.
        "execution.buffer-timeout.interval": f"{cfg.buffer_timeout_ms} ms",
        "pipeline.auto-watermark-interval": "200 ms",
        # Chained operators hand records on without copying them (Flink copies each
        # record between chained operators otherwise): none of the job's operators
        # keeps a record it has passed on. 2-4 days preloaded: 1,305-1,635 tx/s
        # against 1,114-1,317 without (docs/BENCHMARKS.md).
        "pipeline.object-reuse": "true",
        # State: heap backend, checkpoints on the local disk, kept when cancelled.
        "state.backend.type": "hashmap",
        "execution.checkpointing.storage": "filesystem",
        "execution.checkpointing.dir": cfg.checkpoint_dir.as_uri(),
        "execution.checkpointing.interval": f"{cfg.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "AT_LEAST_ONCE",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "2",
        "execution.checkpointing.min-pause": "1 s",
        "restart-strategy.type": "exponential-delay",
        # Read by a cluster's launcher; the local JVM gets it from JVM_ARGS (see run).
        "env.java.opts.all": f"-Xmx{cfg.jvm_heap_mb}m",
        # A slot per parallel task in the local mini-cluster's one TaskManager; on a
        # cluster (Compose, the operator) the TaskManagers' own setting rules.
        "taskmanager.numberOfTaskSlots": str(cfg.parallelism),
        "rest.bind-port": "0",
    }
    if restore_from is not None:
        options["execution.state-recovery.path"] = restore_from.as_uri()
    if cfg.metrics_port:
        options["metrics.reporter.prom.factory.class"] = (
            "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
        )
        options["metrics.reporter.prom.port"] = str(cfg.metrics_port)
    return options


def _with(cfg: FeatureJobConfig, topic: str, extra: dict[str, str]) -> str:
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": cfg.bootstrap_servers,
        # Key and value travel as they are: JSON is parsed in Python, and a dead
        # letter keeps the original key and bytes.
        "key.format": "raw",
        "key.fields": "k",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
        **extra,
    }
    return ",\n".join(f"  '{k}' = '{v}'" for k, v in options.items())


def source_ddl(name: str, cfg: FeatureJobConfig) -> str:
    """One Kafka source table over both input topics, with per-partition watermarks.

    The watermark is declared on the table so that the planner pushes it into the
    Kafka source, which tracks it per partition: a watermark assigned after the
    source would see partitions interleaved in batches (a backlog, a replay) and
    call on-time events late. One source for both topics gives the card and the
    terminal aggregation the same watermark. A record's time is a label's
    ``label_time``, else its ``event_time``; one whose time does not parse counts
    as the epoch, which never advances the watermark (Python dead-letters it).
    """
    pattern = "yyyy-MM-dd''T''HH:mm:ss[.SSSSSSSSS][.SSSSSS][.SSS]XXX"
    seconds = cfg.out_of_orderness_ms / 1000
    options = _with(
        cfg,
        f"{cfg.transactions_topic};{cfg.labels_topic}",
        {
            "properties.group.id": cfg.group_id,
            "properties.client.id.prefix": cfg.group_id,
            "properties.auto.offset.reset": "earliest",
            "scan.startup.mode": "group-offsets",
            "scan.watermark.idle-timeout": f"{cfg.idleness_ms} ms",
            "scan.topic-partition-discovery.interval": "60 s",
        },
    )
    # One JSON parse for a transaction (JSON_VALUE parses the document every call).
    label_time = "COALESCE(JSON_VALUE(v, '$.label_time'), JSON_VALUE(v, '$.event_time'))"
    time_text = (
        f"CASE WHEN `topic` = '{cfg.transactions_topic}' "
        f"THEN JSON_VALUE(v, '$.event_time') ELSE {label_time} END"
    )
    event_time = f"TO_TIMESTAMP_LTZ({time_text}, '{pattern}')"
    return f"""
        CREATE TEMPORARY TABLE `{name}` (
          k STRING,
          v STRING,
          `topic` STRING METADATA VIRTUAL,
          `partition` INT METADATA VIRTUAL,
          `offset` BIGINT METADATA VIRTUAL,
          et AS COALESCE({event_time}, TO_TIMESTAMP_LTZ(0, 3)),
          WATERMARK FOR et AS et - INTERVAL '{seconds:.3f}' SECOND
        ) WITH (
{options}
        )"""


def sink_ddl(name: str, topic: str, cfg: FeatureJobConfig, *, dead_letters: bool) -> str:
    """A Kafka sink table (at least once): key = ``k``, value = ``v`` as they are;
    dead letters also write their ``headers``."""
    columns = "k STRING, v STRING"
    if dead_letters:
        columns = "k STRING, v BYTES, headers MAP<STRING, BYTES> METADATA"
    extra = {"properties.linger.ms": "5", "sink.delivery-guarantee": "at-least-once"}
    return f"CREATE TEMPORARY TABLE `{name}` ({columns}) WITH (\n{_with(cfg, topic, extra)}\n)"


def _keyed(stream: Any, value_type: Any) -> Any:
    """Key a stream of ``Row(key, value)`` by its first field, in Java.

    ``DataStream.key_by`` would add a Python operator to compute the key; the source
    query already produces the shape that operator produces, so only the Java key
    selector that follows it is needed.
    """
    from pyflink.common.typeinfo import Types
    from pyflink.datastream.data_stream import KeyedStream
    from pyflink.java_gateway import get_gateway

    j_stream = stream._j_data_stream
    # A Python keyed operator needs a RowTypeInfo input; a table converted to a stream
    # declares its Rows with the table's ExternalTypeInfo (same objects, same fields).
    j_stream.getTransformation().setOutputType(
        Types.ROW([Types.STRING(), value_type]).get_java_type_info()
    )
    j_keyed = j_stream.keyBy(
        get_gateway().jvm.KeyByKeySelector(), Types.ROW([Types.STRING()]).get_java_type_info()
    )
    return KeyedStream(j_keyed, value_type, stream)


def source_query(table: str, cfg: FeatureJobConfig) -> str:
    """Each transaction twice (keys ``c|<card>`` and ``t|<terminal>``), each label once
    (``t|<terminal>``), as ``Row(key, Row(destination, topic, k, v, partition, offset))``:
    the shape the Java key selector of a keyed stream takes.

    A transaction's card is its record key (the topic's contract), so only the
    terminal costs a JSON parse here; without a key, the payload's ``card_id``. The ids
    here only route: Python parses and checks the payload (a record whose key is not
    its ``card_id``, or that lacks an id, is dead-lettered there).
    """
    return f"""
        SELECT
          CONCAT(d.dest, '|', COALESCE(CASE WHEN d.dest = 'c'
            THEN COALESCE(k, JSON_VALUE(v, '$.card_id'))
            ELSE JSON_VALUE(v, '$.terminal_id') END, '')) AS key,
          ROW(d.dest, `topic`, k, v, `partition`, `offset`) AS record
        FROM `{table}` CROSS JOIN UNNEST(
          CASE WHEN `topic` = '{cfg.transactions_topic}' THEN ARRAY['c', 't'] ELSE ARRAY['t'] END
        ) AS d(dest)"""


def build(env: Any, cfg: FeatureJobConfig) -> Any:
    """Add the job's source, function and sinks to ``env``.

    Returns:
        The statement set holding every sink, already attached to ``env``.
    """
    from pyflink.datastream import DataStream
    from pyflink.table import StreamTableEnvironment

    from flink_jobs.functions import (
        FEATURE_RECORD_TYPE,
        LABEL_DEAD_LETTERS,
        SOURCE_RECORD_TYPE,
        TRANSACTION_DEAD_LETTERS,
        FeatureFunction,
        OnlineStoreBuffer,
    )

    def side(stream: Any, tag: Any) -> Any:
        # DataStream.get_side_output would add a Python identity map after it.
        return DataStream(stream._j_data_stream.getSideOutput(tag.get_java_output_tag()))

    store = OnlineStoreBuffer(
        host=cfg.redis_host,
        port=cfg.redis_port,
        db=cfg.redis_db,
        batch_size=cfg.redis_batch_size,
        flush_interval_ms=cfg.redis_flush_interval_ms,
    )
    t_env = StreamTableEnvironment.create(env)
    t_env.execute_sql(source_ddl("events_source", cfg))
    records = t_env.to_data_stream(t_env.sql_query(source_query("events_source", cfg)))
    features = (
        _keyed(records, SOURCE_RECORD_TYPE)
        .process(
            FeatureFunction(
                cfg.transactions_topic, cfg.allowed_lateness_ms, store, idle_ms=cfg.idleness_ms
            ),
            FEATURE_RECORD_TYPE,
        )
        .uid("features")
    )

    t_env.execute_sql(sink_ddl("features_sink", cfg.features_topic, cfg, dead_letters=False))
    t_env.execute_sql(
        sink_ddl("transactions_dlq_sink", cfg.transactions_dlq, cfg, dead_letters=True)
    )
    t_env.execute_sql(sink_ddl("labels_dlq_sink", cfg.labels_dlq, cfg, dead_letters=True))
    statements = t_env.create_statement_set()
    statements.add_insert("features_sink", t_env.from_data_stream(features))
    statements.add_insert(
        "transactions_dlq_sink", t_env.from_data_stream(side(features, TRANSACTION_DEAD_LETTERS))
    )
    statements.add_insert(
        "labels_dlq_sink", t_env.from_data_stream(side(features, LABEL_DEAD_LETTERS))
    )
    statements.attach_as_datastream()
    return statements


def repair_online_store(cfg: FeatureJobConfig, restored: Path) -> None:
    """Re-applies the feature log's rows from ``online_repair_window_s`` before the
    restored checkpoint to Redis (``flink_jobs/online_repair.py`` says why)."""
    from flink_jobs.online_repair import reapply_feature_log

    completed_ms = int((restored / "_metadata").stat().st_mtime * 1000)
    report = reapply_feature_log(
        bootstrap_servers=cfg.bootstrap_servers,
        topic=cfg.features_topic,
        since_ms=completed_ms - cfg.online_repair_window_s * 1000,
        redis_host=cfg.redis_host,
        redis_port=cfg.redis_port,
        redis_db=cfg.redis_db,
    )
    log.info(
        "online store repaired from %s: %d rows from %d s before the checkpoint, "
        "%d vectors written (the rest were not newer), %d skipped, in %.1f s",
        cfg.features_topic, report.rows, cfg.online_repair_window_s, report.written,
        report.skipped, report.seconds,
    )  # fmt: skip


class _Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def run(cfg: FeatureJobConfig) -> int:
    """Start the job on a local mini-cluster and wait for it; returns the exit status."""
    cfg.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    restore_from = latest_checkpoint(cfg.checkpoint_dir) if cfg.restore else None
    prune_checkpoints(cfg.checkpoint_dir, restore_from)
    if restore_from is not None and cfg.online_repair_window_s:
        repair_online_store(cfg, restore_from)
    # The gateway JVM (the mini-cluster) is launched by pyflink from this
    # environment, so heap, logs and the workers' import path are set here, before
    # the first pyflink call; a Flink Configuration cannot reach that JVM's flags.
    os.environ["JVM_ARGS"] = f"-Xmx{cfg.jvm_heap_mb}m -XX:+UseSerialGC"
    os.environ["FLINK_LOG_DIR"] = str(cfg.log_dir)
    os.environ["PYTHONPATH"] = os.pathsep.join(cfg.python_path)
    if cfg.metrics_port:
        # The local mini-cluster loads no plugins, so the Prometheus reporter that
        # pyflink ships under plugins/ goes on the JVM's class path instead (the
        # launcher appends HADOOP_CLASSPATH to it).
        import pyflink

        reporter = sorted(Path(pyflink.__file__).parent.glob("plugins/metrics-prometheus/*.jar"))
        extra = [os.environ.get("HADOOP_CLASSPATH", ""), *map(str, reporter)]
        os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(p for p in extra if p)

    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    configuration = Configuration()
    for key, value in flink_configuration(cfg, restore_from).items():
        configuration.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(configuration)
    build(env, cfg)
    log.info("starting %s (%s mode, parallelism %d), restoring from %s", cfg.job_name,
             cfg.execution_mode, cfg.parallelism, restore_from or "nothing")  # fmt: skip
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    client = None
    try:
        client = env.execute_async(cfg.job_name)
        log.info("job %s submitted", client.get_job_id())
        while True:
            status = client.get_job_status().result().name
            if status in _TERMINAL_STATES:
                log.error("job ended: %s", status)
                if status == "FAILED" and restore_from is not None:
                    log.error(
                        "it was restored from %s: if the job's operators or the kernel's "
                        "state format changed since, start it with --no-restore (empty "
                        "aggregation state, from the offsets its consumer group committed)",
                        restore_from,
                    )
                return 0 if status == "FINISHED" else 1
            time.sleep(1.0)
    except _Stop as stop:
        log.info("%s: cancelling the job (its checkpoints are retained)", stop)
        if client is not None:
            client.cancel().result()
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
