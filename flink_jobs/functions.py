"""The feature job's Python function: parse, classify, aggregate, write Redis.

One keyed operator does all the Python work, so records cross between the JVM and
Python once and no two Python operators contend for the interpreter. The source
(see ``feature_job.source_query``) gives every transaction two keyed records,
``c|<card id>`` and ``t|<terminal id>``, and every label one, ``t|<terminal id>``;
each key's state is that card's or terminal's aggregator.

Every event is processed as it arrives (no buffering until the watermark): the
watermark only decides whether an event is too late to use. Aggregation state is the
kernel's own bytes (``to_state``/``from_state``) in a ``ValueState`` per key, so a
checkpoint holds exactly what the kernel needs to go on.

Failure policy (one place, :meth:`FeatureFunction.process_element`): a record that
cannot be parsed, or that is late, is dead-lettered with the reason and counted;
anything else that fails (Redis down, a kernel error) fails the task, and Flink
restarts it from the last checkpoint, so no event is skipped and Redis converges by
replay (its writes keep the vector with the newest event time).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
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
#: What the function receives: (destination "c"/"t", topic, key, value, partition, offset).
SOURCE_RECORD_TYPE = Types.ROW(
    [Types.STRING(), Types.STRING(), Types.STRING(), Types.STRING(), Types.INT(), Types.LONG()]
)
TRANSACTION_DEAD_LETTERS = OutputTag("transaction-dead-letters", DEAD_LETTER_TYPE)
LABEL_DEAD_LETTERS = OutputTag("label-dead-letters", DEAD_LETTER_TYPE)

CARD, TERMINAL = "c", "t"
_NO_WATERMARK = -(2**63)
#: Aggregators kept deserialized (the state stays the source of truth).
_CACHE_ENTRIES = 100_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


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


class FeatureFunction(KeyedProcessFunction):
    """Card and terminal features of every transaction, keyed by ``c|card`` / ``t|terminal``.

    Input: :data:`SOURCE_RECORD_TYPE`. A transaction's card record updates the card's
    aggregator and emits its card row; its terminal record, the terminal's and the
    terminal row; a label updates the terminal's aggregator only. Rows go to the main
    output (``features``) and to Redis.

    A record that does not parse, or whose time (a transaction's ``event_time``, a
    label's ``label_time``) is older than the watermark minus ``allowed_lateness_ms``,
    becomes one dead letter for its topic's DLQ (from the card record of a
    transaction, whose terminal record reaches the same verdict: both see the same
    watermark), with the original key and bytes and the reason, partition and offset
    in headers; counted in ``malformed_events`` and ``late_events``.

    The kernel's state bytes live in a ``ValueState``, written after every event so a
    checkpoint is always current; a bounded cache of deserialized aggregators saves
    reading them back (this function is the only writer of the state, and a restored
    or restarted operator starts with an empty cache).

    Args:
        transactions_topic: name of the transactions topic.
        allowed_lateness_ms: how far behind the watermark an event may still be.
        store: the Redis writer (opened in ``open``).
    """

    def __init__(
        self, transactions_topic: str, allowed_lateness_ms: int, store: OnlineStoreBuffer
    ) -> None:
        self._transactions = transactions_topic
        self._lateness = allowed_lateness_ms
        self._store = store
        self._state: Any = None
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._version = ""
        self._malformed: Any = None
        self._late: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        from services.feature_store.aggregation import (
            CardAggregator,
            LabelEvent,
            TerminalAggregator,
            TxEvent,
        )
        from services.feature_store.definitions import FEATURE_SET_VERSION

        self._aggregators = {CARD: CardAggregator, TERMINAL: TerminalAggregator}
        self._tx_event, self._label_event = TxEvent, LabelEvent
        self._version = FEATURE_SET_VERSION
        # Pickled bytes: a PRIMITIVE_ARRAY(BYTE) state fails on None in thread mode.
        descriptor = ValueStateDescriptor("aggregator", Types.PICKLED_BYTE_ARRAY())
        self._state = runtime_context.get_state(descriptor)
        self._cache = OrderedDict()
        metrics = runtime_context.get_metrics_group()
        self._malformed = metrics.counter("malformed_events")
        self._late = metrics.counter("late_events")
        self._store.open()

    def process_element(self, record: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        destination, topic, value = record[0], record[1], record[3]
        is_tx = topic == self._transactions
        owns_dead_letter = destination == CARD or not is_tx
        try:
            if value is None:
                raise WireError(field=PAYLOAD, reason="null value")
            event: tuple = parse_transaction(value) if is_tx else parse_label(value)
        except WireError as exc:
            if owns_dead_letter:
                self._malformed.inc()
                yield self._dead_letter(record, is_tx, f"malformed event: {exc}", exc.field)
            return
        if is_tx and record[2] is not None and record[2] != event[1]:
            # The topic's contract (key = card id) is broken: the card's state and
            # order live under another key.
            if owns_dead_letter:
                self._malformed.inc()
                reason = f"malformed event: card_id: {event[1]!r} is not the record key"
                yield self._dead_letter(record, is_tx, reason, "card_id")
            return
        entity_id = event[1] if destination == CARD else (event[2] if is_tx else event[1])
        if ctx.get_current_key() != f"{destination}|{entity_id}":  # pragma: no cover
            # The JVM's JSON reading routed it elsewhere: this record's own letter.
            self._malformed.inc()
            reason = f"malformed event: routed as {ctx.get_current_key()!r}"
            yield self._dead_letter(record, is_tx, reason, PAYLOAD)
            return
        watermark = ctx.timer_service().current_watermark()
        event_time_ms = event[4]  # a transaction's event time, a label's label time
        if watermark != _NO_WATERMARK and event_time_ms < watermark - self._lateness:
            if owns_dead_letter:
                self._late.inc()
                reason = late_reason(event_time_ms, watermark, self._lateness)
                yield self._dead_letter(record, is_tx, reason, "event_time")
            return
        aggregator = self._aggregator(f"{destination}|{entity_id}", destination)
        if is_tx:
            values = aggregator.update(self._tx_event(*event))
            self._state.update(aggregator.to_state())
            yield self._emit(ctx, destination, event, values)
        else:
            transaction_id, terminal_id, tx_time_ms, is_fraud, _label_time_ms = event
            aggregator.add_label(self._label_event(transaction_id, terminal_id, tx_time_ms,
                                                   is_fraud))  # fmt: skip
            self._state.update(aggregator.to_state())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> list:
        self._store.timer_armed = False
        self._store.flush()
        return []  # on_timer must return an iterable

    def close(self) -> None:
        self._store.close()

    def _aggregator(self, key: str, destination: str) -> Any:
        aggregator = self._cache.get(key)
        if aggregator is not None:
            self._cache.move_to_end(key)
            return aggregator
        raw = self._state.value()
        kind = self._aggregators[destination]
        aggregator = kind() if raw is None else kind.from_state(bytes(raw))
        self._cache[key] = aggregator
        if len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return aggregator

    def _emit(self, ctx: Any, destination: str, tx: tuple, values: Mapping[str, float]) -> Row:
        entity_type, entity_id = ("card", tx[1]) if destination == CARD else ("terminal", tx[2])
        event_time_ms = tx[4]
        self._store.write(entity_type, entity_id, values, event_time_ms)
        if self._store.needs_timer:
            timers = ctx.timer_service()
            timers.register_processing_time_timer(
                timers.current_processing_time() + self._store.flush_interval_ms
            )
            self._store.timer_armed = True
        row = feature_row_json(
            entity_type=entity_type,
            entity_id=entity_id,
            transaction_id=tx[0],
            event_time_ms=event_time_ms,
            values=values,
            feature_set_version=self._version,
            computed_at_ms=_now_ms(),
        )
        return Row(entity_id, row)

    @staticmethod
    def _dead_letter(record: Row, is_tx: bool, reason: str, field: str | None) -> tuple:
        headers = dead_letter_headers(
            source_topic=record[1],
            reason=reason,
            field=field,
            failed_at_ms=_now_ms(),
            source={"partition": str(record[4]), "offset": str(record[5])},
        )
        value = record[3]
        letter = Row(record[2], None if value is None else value.encode("utf-8"), headers)
        return (TRANSACTION_DEAD_LETTERS if is_tx else LABEL_DEAD_LETTERS), letter
