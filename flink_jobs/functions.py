"""The feature job's Python function: parse, classify, aggregate, write Redis.

One keyed operator does all the Python work, so records cross between the JVM and
Python once and no two Python operators contend for the interpreter. The source
(see ``feature_job.source_query``) gives every transaction two keyed records,
``c|<card id>`` and ``t|<terminal id>``, and every label one, ``t|<terminal id>``;
each key's state is that card's or terminal's aggregator.

Order. A card's transactions all come from one partition of ``transactions`` (keyed
by card), so a card record is processed as it arrives. A terminal's come from every
partition, and its labels from another topic, so a terminal record waits in keyed
state until the watermark passes its time (an event-time timer at that time); then
the terminal's due records are processed in event-time order, a label before a
transaction of the same time (a label due at t is known to the transaction at t, as
in the replay and the reference implementation), arrival order between the rest. So
terminal rows equal an event-ordered run, at the cost of the watermark's delay (the
out-of-orderness bound plus the slowest partition's lag) in their freshness. A record
already behind the watermark (late, but within the allowed lateness) is processed at
once, in its event-time place in the kernel's state, as a card record is.

Aggregation state is the kernel's own bytes (``to_state``/``from_state``) in a
``ValueState`` per key, and the waiting terminal records are a ``ListState`` with
their timers, so a checkpoint holds exactly what the job needs to go on.

Failure policy (one place, :meth:`FeatureFunction.process_element`): a record that
cannot be parsed, or that is late, is dead-lettered with the reason and counted;
anything else that fails (Redis down, a kernel error) fails the task, and Flink
restarts it from the last checkpoint, so no event is skipped and Redis converges by
replay (its writes keep the vector with the newest event time); vectors that were
still buffered when a checkpoint completed and the process died are written again
from the ``features`` topic before a restored job starts (``online_repair.py``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext, TimeDomain
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

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
#: Rank of a waiting terminal record at equal times: labels before transactions.
_LABEL_RANK, _TX_RANK = 0, 1
_NO_WATERMARK = -(2**63)
#: Aggregators kept deserialized (the state stays the source of truth).
_CACHE_ENTRIES = 100_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class OnlineStoreBuffer:
    """Feature vectors on their way to Redis: pipelined, flushed by size or age.

    ``write`` flushes when the oldest buffered vector has waited ``flush_interval_ms``
    or ``batch_size`` vectors are buffered; the owner arms a processing-time timer
    (``needs_timer``, then ``timer_at_ms``) so a quiet stream is flushed too, and
    flushes in ``close``.
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
        self.timer_at_ms: int | None = None

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
        return self.timer_at_ms is None and self._writer.pending > 0

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

    Card records are applied as they arrive. A terminal record ahead of the watermark
    waits in a ``ListState`` of ``(time, rank, event)`` with an event-time timer at its
    time; :meth:`on_timer` applies the terminal's records due by then, ordered by
    (time, label before transaction, arrival). A terminal record at or behind the
    watermark (within the allowed lateness) is applied at once. When no record at all
    has reached the function for ``idle_ms`` (every input partition idle: the
    watermark cannot advance, as at the end of a replay), a processing-time timer
    applies the terminal's waiting records in the same order, as the end of a bounded
    input would; a record that then arrives with an earlier time is placed by the
    kernel like any late one.

    The kernel's state bytes live in a ``ValueState``, written after every event (or
    every drain) so a checkpoint is always current; a bounded cache of deserialized
    aggregators saves reading them back (this function is the only writer of the
    state, and a restored or restarted operator starts with an empty cache).

    Args:
        transactions_topic: name of the transactions topic.
        allowed_lateness_ms: how far behind the watermark an event may still be.
        store: the Redis writer (opened in ``open``).
        idle_ms: input silence after which waiting terminal records are applied
            without the watermark (the source's partition idleness timeout).
    """

    def __init__(
        self,
        transactions_topic: str,
        allowed_lateness_ms: int,
        store: OnlineStoreBuffer,
        idle_ms: int = 60_000,
    ) -> None:
        self._transactions = transactions_topic
        self._lateness = allowed_lateness_ms
        self._store = store
        self._idle_ms = idle_ms
        self._last_input_ns = 0
        self._state: Any = None
        self._waiting: Any = None
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._idle_checks: dict[str, int] = {}
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
        waiting = ListStateDescriptor("waiting", Types.PICKLED_BYTE_ARRAY())
        self._waiting = runtime_context.get_list_state(waiting)
        self._cache = OrderedDict()
        self._idle_checks = {}
        metrics = runtime_context.get_metrics_group()
        self._malformed = metrics.counter("malformed_events")
        self._late = metrics.counter("late_events")
        self._store.open()
        self._last_input_ns = time.monotonic_ns()

    def process_element(self, record: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        self._last_input_ns = time.monotonic_ns()
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
        if destination == TERMINAL and event_time_ms > watermark:
            # Other partitions may still hold this terminal's earlier events.
            self._waiting.add((event_time_ms, _TX_RANK if is_tx else _LABEL_RANK, event))
            timers = ctx.timer_service()
            timers.register_event_time_timer(event_time_ms)
            key = f"{destination}|{entity_id}"
            if key not in self._idle_checks:
                self._idle_checks[key] = self._register_idle_check(timers, self._idle_ms)
            return
        aggregator = self._aggregator(f"{destination}|{entity_id}", destination)
        row = self._apply(ctx, aggregator, destination, is_tx, event)
        self._state.update(aggregator.to_state())
        if row is not None:
            yield row

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        """Event time: applies the terminal's records due by ``timestamp`` (the watermark
        has passed it). Processing time: flushes Redis, and applies every waiting record
        of the key once the input has been idle for ``idle_ms``."""
        if ctx.time_domain() == TimeDomain.EVENT_TIME:
            yield from self._drain(ctx, timestamp)
            return
        if timestamp == self._store.timer_at_ms:  # not an idle check: those are many
            self._store.timer_at_ms = None
            self._store.flush()
        key = ctx.get_current_key()
        if self._idle_checks.get(key) == timestamp:
            del self._idle_checks[key]
        idle_ms = (time.monotonic_ns() - self._last_input_ns) // 1_000_000
        if idle_ms >= self._idle_ms:
            yield from self._drain(ctx, None)
        elif key not in self._idle_checks and any(True for _ in self._waiting.get()):
            after_ms = self._idle_ms - idle_ms
            self._idle_checks[key] = self._register_idle_check(ctx.timer_service(), after_ms)

    def _drain(self, ctx: Any, until_ms: int | None) -> Iterator[Row]:
        """Applies the key's waiting terminal records with time <= ``until_ms`` (None:
        all), ordered by (time, label before transaction, arrival)."""
        due = list(self._waiting.get())
        rest = []
        if until_ms is not None:
            due, rest = [w for w in due if w[0] <= until_ms], [w for w in due if w[0] > until_ms]
        if not due:  # an earlier timer of this key drained them, or a card key
            return
        if rest:
            self._waiting.update(rest)
        else:
            self._waiting.clear()
        due.sort(key=lambda w: (w[0], w[1]))  # stable: arrival order breaks ties
        _, rank, first = due[0]
        terminal_id = first[2] if rank == _TX_RANK else first[1]
        aggregator = self._aggregator(f"{TERMINAL}|{terminal_id}", TERMINAL)
        for _, rank, event in due:
            row = self._apply(ctx, aggregator, TERMINAL, rank == _TX_RANK, event)
            if row is not None:
                yield row
        self._state.update(aggregator.to_state())

    @staticmethod
    def _register_idle_check(timers: Any, after_ms: int) -> int:
        """Arms a key's idle check about ``after_ms`` from now; returns its time.

        A key has one idle check pending at a time (``_idle_checks``, in memory): it is
        armed when the key's first record starts waiting, and when it fires with
        records still waiting and the input not yet idle, it is armed again for the
        moment the input would have been idle for ``idle_ms``. Arming one per record
        cost a timer registration and a timer call with a ``ListState`` read per
        terminal record. After a restore the map is empty, so a key may get a second
        check beside its restored one: harmless, both run the same test.
        """
        at_ms = (_now_ms() + after_ms) // 1000 * 1000 + 1000  # whole seconds
        timers.register_processing_time_timer(at_ms)
        return at_ms

    def _apply(
        self, ctx: Any, aggregator: Any, destination: str, is_tx: bool, event: tuple
    ) -> Row | None:
        """One event into its aggregator; a transaction's feature row (None for a label).
        The caller writes the aggregator's state back."""
        if is_tx:
            return self._emit(ctx, destination, event, aggregator.update(self._tx_event(*event)))
        transaction_id, terminal_id, tx_time_ms, is_fraud, _label_time_ms = event
        aggregator.add_label(self._label_event(transaction_id, terminal_id, tx_time_ms, is_fraud))
        return None

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
            at_ms = timers.current_processing_time() + self._store.flush_interval_ms
            timers.register_processing_time_timer(at_ms)
            self._store.timer_at_ms = at_ms
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
