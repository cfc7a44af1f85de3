"""The feature job's Python functions: route, aggregate per card and terminal, write Redis.

Every event is processed as it arrives (no buffering until the watermark): the
watermark only decides whether an event is too late to use. Aggregation state is the
kernel's own bytes (``to_state``/``from_state``) in a ``ValueState`` per key, so a
checkpoint holds exactly what the kernel needs to go on.

Failure policy (one place): a record that cannot be parsed, or that is late, is
dead-lettered with the reason and counted (:class:`RouteEvents`); anything else that
fails (Redis down, a kernel error) fails the task, and Flink restarts it from the last
checkpoint, so no event is skipped and Redis converges by replay (its writes keep the
vector with the newest event time).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from flink_jobs.wire import (
    PAYLOAD,
    WireError,
    dead_letter_headers,
    feature_row_json,
    late_reason,
    parse_label,
    parse_transaction,
)

_BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())
#: A dead letter: original key, original value, headers.
DEAD_LETTER_TYPE = Types.ROW_NAMED(
    ["k", "v", "headers"], [Types.STRING(), _BYTES, Types.MAP(Types.STRING(), _BYTES)]
)
#: A ``features`` record: key = entity id, value = FeatureRow JSON.
FEATURE_RECORD_TYPE = Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.STRING()])
#: :data:`flink_jobs.wire.TxTuple`.
TX_TYPE = Types.TUPLE(
    [Types.STRING(), Types.STRING(), Types.STRING(), Types.DOUBLE(), Types.LONG()]
)
#: What the terminal function receives: ("t", TxTuple) or ("l", LabelTuple), pickled.
TERMINAL_EVENT_TYPE = Types.PICKLED_BYTE_ARRAY()
#: Keyed records as the Java key selector expects them: Row(key, value).
CARD_INPUT_TYPE = Types.ROW([Types.STRING(), TX_TYPE])
TERMINAL_INPUT_TYPE = Types.ROW([Types.STRING(), TERMINAL_EVENT_TYPE])

TERMINAL_EVENTS = OutputTag("terminal-events", TERMINAL_INPUT_TYPE)
TRANSACTION_DEAD_LETTERS = OutputTag("transaction-dead-letters", DEAD_LETTER_TYPE)
LABEL_DEAD_LETTERS = OutputTag("label-dead-letters", DEAD_LETTER_TYPE)

_NO_WATERMARK = -(2**63)
#: Aggregators kept deserialized per function (the state stays the source of truth).
_CACHE_ENTRIES = 100_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RouteEvents(ProcessFunction):
    """Raw records of both topics → keyed events, or dead letters.

    Input: ``Row(topic, k, v, partition, offset)`` from the Kafka table source, whose
    per-partition watermarks are assigned in the source. A transaction goes out as
    ``Row(card_id, tx)`` (main output, for the card function) and as
    ``Row(terminal_id, ("t", tx))`` (:data:`TERMINAL_EVENTS`); a label only as
    ``Row(terminal_id, ("l", label))``.

    A record that does not parse, or whose time (a transaction's ``event_time``, a
    label's ``label_time``) is older than the watermark minus ``allowed_lateness_ms``,
    becomes a dead letter for its topic's DLQ: the original key and bytes, with the
    reason, partition and offset in headers. Both are counted (``malformed_events``,
    ``late_events``). Routing once, before the key-by, gives both aggregations the
    same decision for every event.

    Args:
        transactions_topic: name of the transactions topic.
        allowed_lateness_ms: how far behind the watermark an event may still be.
    """

    def __init__(self, transactions_topic: str, allowed_lateness_ms: int) -> None:
        self._transactions = transactions_topic
        self._lateness = allowed_lateness_ms
        self._malformed: Any = None
        self._late: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        metrics = runtime_context.get_metrics_group()
        self._malformed = metrics.counter("malformed_events")
        self._late = metrics.counter("late_events")

    def process_element(self, record: Row, ctx: ProcessFunction.Context) -> Iterator[Any]:
        is_tx = record[0] == self._transactions
        value = record[2]
        try:
            if value is None:
                raise WireError(field=PAYLOAD, reason="null value")
            event: tuple = parse_transaction(value) if is_tx else parse_label(value)
        except WireError as exc:
            self._malformed.inc()
            yield self._dead_letter(record, is_tx, f"malformed event: {exc}", exc.field)
            return
        watermark = ctx.timer_service().current_watermark()
        event_time_ms = event[4]  # a transaction's event time, a label's label time
        if watermark != _NO_WATERMARK and event_time_ms < watermark - self._lateness:
            self._late.inc()
            reason = late_reason(event_time_ms, watermark, self._lateness)
            yield self._dead_letter(record, is_tx, reason, "event_time")
            return
        if is_tx:
            yield Row(event[1], event)
            yield TERMINAL_EVENTS, Row(event[2], ("t", event))
        else:
            yield TERMINAL_EVENTS, Row(event[1], ("l", event))

    @staticmethod
    def _dead_letter(record: Row, is_tx: bool, reason: str, field: str | None) -> tuple:
        headers = dead_letter_headers(
            source_topic=record[0],
            reason=reason,
            field=field,
            failed_at_ms=_now_ms(),
            source={"partition": str(record[3]), "offset": str(record[4])},
        )
        value = record[2]
        letter = Row(record[1], None if value is None else value.encode("utf-8"), headers)
        return (TRANSACTION_DEAD_LETTERS if is_tx else LABEL_DEAD_LETTERS), letter


class OnlineStoreBuffer:
    """Feature vectors on their way to Redis: pipelined, flushed by size or age.

    ``write`` flushes when the oldest buffered vector has waited ``flush_interval_ms``
    or ``batch_size`` vectors are buffered; the owner arms a processing-time timer
    (``needs_timer``) so a quiet stream is flushed too, and flushes in ``close``.
    """

    def __init__(
        self, *, host: str, port: int, db: int, batch_size: int, flush_interval_ms: int
    ) -> None:
        self._settings = (host, port, db)
        self._batch_size = batch_size
        self.flush_interval_ms = flush_interval_ms
        self._writer: Any = None
        self._client: Any = None
        self._oldest_ns = 0
        self.timer_armed = False

    def open(self) -> None:
        import redis

        from services.feature_store.redis_layout import RedisFeatureWriter

        host, port, db = self._settings
        self._client = redis.Redis(host=host, port=port, db=db, socket_timeout=10)
        self._writer = RedisFeatureWriter(self._client, batch_size=self._batch_size)

    def write(self, entity_type: str, entity_id: str, values: Mapping[str, float], ts: int) -> None:
        if self._writer.pending == 0:
            self._oldest_ns = time.monotonic_ns()
        self._writer.write(entity_type, entity_id, values, ts)  # flushes at batch_size
        waited_ms = (time.monotonic_ns() - self._oldest_ns) // 1_000_000
        if self._writer.pending and waited_ms >= self.flush_interval_ms:
            self.flush()

    @property
    def needs_timer(self) -> bool:
        return not self.timer_armed and self._writer.pending > 0

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
        if self._client is not None:
            self._client.close()


class _FeatureFunction(KeyedProcessFunction):
    """State, online store and output shared by the card and terminal functions.

    The kernel's state bytes live in a ``ValueState``, written after every event so a
    checkpoint is always current; a bounded cache of deserialized aggregators saves
    reading them back (this function is the only writer of its keys' state, and a
    restored or restarted operator starts with an empty cache).
    """

    entity_type = ""

    def __init__(self, store: OnlineStoreBuffer) -> None:
        self._store = store
        self._state: Any = None
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._new: Any = None
        self._version = ""

    def _open(self, runtime_context: RuntimeContext, aggregator: type) -> None:
        from services.feature_store.definitions import FEATURE_SET_VERSION

        self._new = aggregator
        self._version = FEATURE_SET_VERSION
        self._state = runtime_context.get_state(
            # Pickled bytes: PRIMITIVE_ARRAY(BYTE) state fails on None in thread mode.
            ValueStateDescriptor("aggregator", Types.PICKLED_BYTE_ARRAY())
        )
        self._cache = OrderedDict()
        self._store.open()

    def _aggregator(self, key: str) -> Any:
        aggregator = self._cache.get(key)
        if aggregator is not None:
            self._cache.move_to_end(key)
            return aggregator
        raw = self._state.value()
        aggregator = self._new() if raw is None else self._new.from_state(bytes(raw))
        self._cache[key] = aggregator
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return aggregator

    def _save(self, aggregator: Any) -> None:
        self._state.update(aggregator.to_state())

    def _emit(self, ctx: Any, entity_id: str, tx: tuple, values: Mapping[str, float]) -> Row:
        event_time_ms = tx[4]
        self._store.write(self.entity_type, entity_id, values, event_time_ms)
        if self._store.needs_timer:
            timers = ctx.timer_service()
            timers.register_processing_time_timer(
                timers.current_processing_time() + self._store.flush_interval_ms
            )
            self._store.timer_armed = True
        row = feature_row_json(
            entity_type=self.entity_type,
            entity_id=entity_id,
            transaction_id=tx[0],
            event_time_ms=event_time_ms,
            values=values,
            feature_set_version=self._version,
            computed_at_ms=_now_ms(),
        )
        return Row(entity_id, row)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> list:
        self._store.timer_armed = False
        self._store.flush()
        return []  # on_timer must return an iterable

    def close(self) -> None:
        self._store.close()


class CardFeatures(_FeatureFunction):
    """Per card (keyed by card id): the kernel's card features at every transaction."""

    entity_type = "card"

    def open(self, runtime_context: RuntimeContext) -> None:
        from services.feature_store.aggregation import CardAggregator, TxEvent

        self._tx_event = TxEvent
        self._open(runtime_context, CardAggregator)

    def process_element(self, tx: tuple, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        aggregator = self._aggregator(tx[1])
        values = aggregator.update(self._tx_event(*tx))
        self._save(aggregator)
        yield self._emit(ctx, tx[1], tx, values)


class TerminalFeatures(_FeatureFunction):
    """Per terminal (keyed by terminal id): terminal features at every transaction;
    a label only updates the state."""

    entity_type = "terminal"

    def open(self, runtime_context: RuntimeContext) -> None:
        from services.feature_store.aggregation import LabelEvent, TerminalAggregator, TxEvent

        self._tx_event = TxEvent
        self._label_event = LabelEvent
        self._open(runtime_context, TerminalAggregator)

    def process_element(self, event: tuple, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        kind, body = event
        if kind == "t":
            aggregator = self._aggregator(body[2])
            values = aggregator.update(self._tx_event(*body))
            self._save(aggregator)
            yield self._emit(ctx, body[2], body, values)
        else:
            transaction_id, terminal_id, event_time_ms, is_fraud, _label_time_ms = body
            aggregator = self._aggregator(terminal_id)
            aggregator.add_label(
                self._label_event(transaction_id, terminal_id, event_time_ms, is_fraud)
            )
            self._save(aggregator)
