"""The items a producer emits, and the merge that puts labels in their place in time.

Both sources (the simulator and the CSV replayer) first produce
:class:`LabelledTransaction` items in event-time order; :func:`merge_labels` turns
them into one stream of :class:`SimulatedEvent` items ordered by ``emit_at``: each
transaction at its event time, each label at its label time (event time plus the
label delay). Rows of an input file that cannot be parsed travel in the same stream
as :class:`RejectedRow` items, so that nothing is dropped silently.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from google.protobuf.timestamp_pb2 import Timestamp

from riskstream.v1 import events_pb2

TRANSACTIONS_TOPIC = "transactions"
LABELS_TOPIC = "labels"
DLQ_TOPIC = "transactions.dlq"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class LabelledTransaction:
    """A transaction together with what its label will say, and when.

    The label is kept as plain values rather than a protobuf message: a source holds
    a label delay's worth of pending labels (about 70,000 for a week of the default
    simulation), and a protobuf message costs about ten times the memory.

    Attributes:
        transaction: the transaction, emitted at its ``event_time``.
        is_fraud: the label's verdict.
        fraud_scenario: the scenario's name, ``""`` when genuine.
        label_time_ns: when the label becomes known, in nanoseconds since the Unix
            epoch (UTC).
        label_source: a ``LabelSource`` value.
    """

    transaction: events_pb2.Transaction
    is_fraud: bool
    fraud_scenario: str
    label_time_ns: int
    label_source: events_pb2.LabelSource.ValueType = events_pb2.LABEL_SOURCE_SIMULATOR

    @property
    def label_time(self) -> datetime:
        """When the label becomes known, as a UTC datetime (microsecond precision)."""
        return _EPOCH + timedelta(microseconds=self.label_time_ns // 1000)

    def label(self) -> events_pb2.Label:
        """Builds the label message."""
        tx = self.transaction
        return _build_label(
            (
                self.label_time_ns,
                0,
                tx.transaction_id,
                tx.card_id,
                tx.terminal_id,
                tx.event_time.seconds,
                tx.event_time.nanos,
                self.is_fraud,
                self.fraud_scenario,
                self.label_source,
            )
        )


@dataclass(frozen=True, slots=True)
class SimulatedEvent:
    """One item to emit: a transaction or a label, and when.

    Attributes:
        kind: ``"transaction"`` or ``"label"``.
        emit_at: the event-time instant (UTC) at which the item becomes known: the
            transaction's event time, or the label's label time.
        transaction: set when ``kind == "transaction"``, else None.
        label: set when ``kind == "label"``, else None.
    """

    kind: Literal["transaction", "label"]
    emit_at: datetime
    transaction: events_pb2.Transaction | None = None
    label: events_pb2.Label | None = None

    @property
    def message(self) -> events_pb2.Transaction | events_pb2.Label:
        """The protobuf message to send."""
        message = self.transaction if self.kind == "transaction" else self.label
        assert message is not None
        return message

    @property
    def topic(self) -> str:
        """The Kafka topic: ``transactions`` or ``labels``."""
        return TRANSACTIONS_TOPIC if self.kind == "transaction" else LABELS_TOPIC

    @property
    def key(self) -> str:
        """The Kafka key: the card id of a transaction, the transaction id of a label."""
        key: str
        if self.kind == "transaction":
            assert self.transaction is not None
            key = self.transaction.card_id
        else:
            assert self.label is not None
            key = self.label.transaction_id
        return key


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """An input row that could not be turned into a transaction.

    Attributes:
        line_number: 1-based line number in the input file (the header is line 1).
        raw: the line as read, without its line terminator.
        reason: why it was rejected, naming the column when one is at fault.
    """

    line_number: int
    raw: str
    reason: str

    @property
    def topic(self) -> str:
        """The Kafka topic for rejected input: ``transactions.dlq``."""
        return DLQ_TOPIC


def to_datetime(timestamp: Timestamp) -> datetime:
    """Converts a protobuf timestamp to an aware UTC datetime (microsecond precision).

    Args:
        timestamp: the protobuf timestamp.

    Returns:
        The same instant as a UTC datetime.
    """
    return _EPOCH + timedelta(seconds=timestamp.seconds, microseconds=timestamp.nanos // 1000)


def merge_labels(
    items: Iterable[LabelledTransaction | RejectedRow],
) -> Iterator[SimulatedEvent | RejectedRow]:
    """Interleaves each transaction's label into the stream at its label time.

    Pending labels wait in a heap ordered by label time (ties keep input order), so
    label delays may differ from label to label. A label due at or before a
    transaction's event time is emitted before that transaction; the labels still
    pending when the input ends are emitted last, in label-time order. Rejected rows
    pass through at once, in input order.

    Args:
        items: labelled transactions in non-decreasing event-time order, with
            rejected rows among them. Transactions are consumed one at a time, and
            pending labels are held as plain values until they are due.

    Yields:
        Transactions and labels in non-decreasing ``emit_at`` order (when the input
        is in event-time order), and the rejected rows.
    """
    pending: list[_Pending] = []
    sequence = 0
    for item in items:
        if isinstance(item, RejectedRow):
            yield item
            continue
        tx = item.transaction
        event_time = tx.event_time
        event_s, event_nanos = event_time.seconds, event_time.nanos
        event_ns = event_s * _NS + event_nanos
        while pending and pending[0][0] <= event_ns:
            yield _label_event(heapq.heappop(pending))
        yield SimulatedEvent(
            "transaction",
            _EPOCH + timedelta(seconds=event_s, microseconds=event_nanos // 1000),
            transaction=tx,
        )
        heapq.heappush(
            pending,
            (
                item.label_time_ns,
                sequence,
                tx.transaction_id,
                tx.card_id,
                tx.terminal_id,
                event_s,
                event_nanos,
                item.is_fraud,
                item.fraud_scenario,
                item.label_source,
            ),
        )
        sequence += 1
    while pending:
        yield _label_event(heapq.heappop(pending))


# A pending label: (label time ns, sequence, transaction id, card id, terminal id,
# event seconds, event nanos, is fraud, scenario, source); compact, and ordered by
# label time then input order.
_Pending = tuple[int, int, str, str, str, int, int, bool, str, events_pb2.LabelSource.ValueType]


def _build_label(p: _Pending) -> events_pb2.Label:
    label = events_pb2.Label(
        transaction_id=p[2],
        card_id=p[3],
        terminal_id=p[4],
        is_fraud=p[7],
        source=p[9],
        fraud_scenario=p[8],
    )
    label.event_time.seconds = p[5]
    if p[6]:
        label.event_time.nanos = p[6]
    label_s, label_nanos = divmod(p[0], _NS)
    label.label_time.seconds = label_s
    if label_nanos:
        label.label_time.nanos = label_nanos
    return label


def _label_event(p: _Pending) -> SimulatedEvent:
    return SimulatedEvent(
        "label", _EPOCH + timedelta(microseconds=p[0] // 1000), label=_build_label(p)
    )


class SimulatedStream:
    """A one-pass stream of items with a few conveniences; iterate it like a generator.

    Args:
        items: the underlying iterator.
    """

    def __init__(self, items: Iterable[SimulatedEvent | RejectedRow]) -> None:
        self._items = iter(items)

    def __iter__(self) -> SimulatedStream:
        return self

    def __next__(self) -> SimulatedEvent | RejectedRow:
        return next(self._items)

    def take(self, n: int) -> list[SimulatedEvent | RejectedRow]:
        """Consumes and returns the next ``n`` items (fewer if the stream ends).

        Args:
            n: how many items to take.

        Returns:
            The items, in stream order.
        """
        return list(itertools.islice(self._items, n))
