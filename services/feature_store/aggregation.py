"""The per-event aggregation kernel: the features of one card or one terminal.

Pure, standard library only (no numpy), no I/O: the PyFlink job (its own environment)
and the tests import the same code. The semantics are those of
:mod:`services.feature_store.definitions`; :mod:`services.feature_store.reference` is
an independent pandas implementation, and tests prove the two equal event by event.

State of one entity: its retained transactions in event-time order (ties in arrival
order), as plain parallel lists. An event is inserted at its event-time position
(after every retained one with the same or an earlier time), so an out-of-order event
gets the features a sorted replay of the events received so far gives it, and later
events see it. Windows are found by bisection; sums are recomputed from the window's
amounts with :func:`math.fsum` (the correctly rounded sum of the amounts, whatever
their order or magnitude: no drift from adding and subtracting), maxima and distinct
terminals from the window's slice. Cost per event is O(log n + window size).

Retention: an entity keeps the transactions with event time > newest - ``RETENTION_S``
where newest is the newest event time it has seen and ``RETENTION_S`` =
``MAX_LOOKBACK_S`` + ``ALLOWED_LATENESS_S``. So an event up to ``ALLOWED_LATENESS_S``
behind the newest one gets exact features (a card's even up to 7 days more, since its
windows reach back 30 days of the 37 kept). A later event is *too late*: its features
are computed over what is retained (its longest windows may be truncated) and it is
not stored. Callers can tell with :attr:`CardAggregator.newest_event_time_ms`.

Labels (terminals): a label names its transaction by id and by the transaction's event
time (``Label.event_time`` on the ``labels`` topic, not the label time). The latest
label of a transaction wins (so a correction works; a duplicate counts once). A label
for a transaction not yet seen waits, at most ``MAX_PENDING_LABELS`` of them per
terminal, until that transaction arrives or falls out of retention. Terminal risk at t
counts the frauds whose label has arrived before the transaction at t is processed:
with labels delivered at event time + the label delay D, and a label due at the same
instant as a transaction processed first (as the replay does), that is every fraud in
(t - D - N, t - D].
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from array import array
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from math import fsum
from typing import Any

from services.feature_store.definitions import (
    CARD_AMOUNT_WINDOWS,
    CARD_FEATURES,
    CARD_TERMINAL_WINDOWS,
    DAY,
    LABEL_DELAY_S,
    MAX_LOOKBACK_S,
    NO_OLDER_MEAN,
    NO_PREVIOUS,
    TERMINAL_FEATURES,
    TERMINAL_WINDOWS,
    amount_ratios,
)
from services.feature_store.time_flags import request_features

__all__ = [
    "ALLOWED_LATENESS_S",
    "MAX_PENDING_LABELS",
    "RETENTION_S",
    "STATE_VERSION",
    "CardAggregator",
    "LabelEvent",
    "TerminalAggregator",
    "TxEvent",
    "request_features",
]

#: How far behind its entity's newest event an event may be and still get exact features.
ALLOWED_LATENESS_S = 1 * DAY
#: State kept per entity, behind its newest event.
RETENTION_S = MAX_LOOKBACK_S + ALLOWED_LATENESS_S
#: Labels waiting for their transaction, per terminal (the oldest beyond this are dropped).
MAX_PENDING_LABELS = 1_000
#: Version of the bytes of ``to_state``; ``from_state`` rejects any other.
STATE_VERSION = 1

_MS = 1000
_RETENTION_MS = RETENTION_S * _MS
_CARD_MAGIC = b"RSCA"
_TERMINAL_MAGIC = b"RSTE"
_HEADER = struct.Struct("<4sHIq")  # magic, version, transaction count, parameter
_COUNTS = struct.Struct("<II")
_CHECKSUM = struct.Struct("<I")  # CRC-32 of everything before it
_SWAP = sys.byteorder != "little"


@dataclass(frozen=True, slots=True)
class TxEvent:
    """A transaction, as the kernel needs it.

    Attributes:
        transaction_id: unique id of the transaction.
        card_id: the card (the card aggregator's key).
        terminal_id: the terminal (the terminal aggregator's key).
        amount: the amount (finite).
        event_time_ms: event time, milliseconds since the Unix epoch (UTC).

    Examples:
        >>> TxEvent("tx-1", "card-1", "term-1", 12.5, 1_522_540_831_000).amount
        12.5
    """

    transaction_id: str
    card_id: str
    terminal_id: str
    amount: float
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """A label of one transaction of a terminal.

    Attributes:
        transaction_id: the labelled transaction.
        terminal_id: its terminal (the terminal aggregator's key).
        event_time_ms: the labelled *transaction's* event time (``Label.event_time``),
            milliseconds since the Unix epoch (UTC); not the time the label arrived.
        is_fraud: the verdict.

    Examples:
        >>> LabelEvent("tx-1", "term-1", 1_522_540_831_000, True).is_fraud
        True
    """

    transaction_id: str
    terminal_id: str
    event_time_ms: int
    is_fraud: bool


_CARD_WINDOWS_MS = tuple(w.seconds * _MS for w in CARD_AMOUNT_WINDOWS)  # nested, shortest first
_CARD_TERMINAL_WINDOWS_MS = tuple(w.seconds * _MS for w in CARD_TERMINAL_WINDOWS)
_WINDOW_NAMES = [w.name for w in CARD_AMOUNT_WINDOWS]
_MEAN_30D = 4 * _WINDOW_NAMES.index("30d") + 2  # index in values
_MEAN_7D, _MAX_7D = 4 * _WINDOW_NAMES.index("7d") + 2, 4 * _WINDOW_NAMES.index("7d") + 3
_MEAN_1D = 4 * _WINDOW_NAMES.index("1d") + 2
_WINDOW_7D_MS = CARD_AMOUNT_WINDOWS[_WINDOW_NAMES.index("7d")].seconds * _MS
_WINDOW_30D_MS = CARD_AMOUNT_WINDOWS[_WINDOW_NAMES.index("30d")].seconds * _MS
_TERMINAL_WINDOWS_MS = tuple(w.seconds * _MS for w in TERMINAL_WINDOWS)

# The value lists below are built in this order; a change of definitions fails here.
_CARD_ORDER = (
    *(
        f"card_{kind}_{w.name}"
        for w in CARD_AMOUNT_WINDOWS
        for kind in ("tx_count", "amount_sum", "amount_mean", "amount_max")
    ),
    "card_seconds_since_prev",
    *(f"card_distinct_terminals_{w.name}" for w in CARD_TERMINAL_WINDOWS),
    "card_amount_to_mean_30d",
    "card_amount_mean_7_30d",
    "card_amount_to_mean_7_30d",
    "card_amount_max_7d_to_mean_7_30d",
    "card_amount_to_mean_1d",
    "card_amount_to_mean_7d",
)
_TERMINAL_ORDER = tuple(
    f"terminal_{kind}_{w.name}"
    for kind in ("tx_count", "delayed_tx_count", "risk")
    for w in TERMINAL_WINDOWS
)
if (
    _CARD_ORDER != CARD_FEATURES
    or _TERMINAL_ORDER != TERMINAL_FEATURES
    or list(_CARD_WINDOWS_MS) != sorted(_CARD_WINDOWS_MS)
    or array("I").itemsize != 4  # the state format's index width
):  # pragma: no cover
    raise ImportError("aggregation: feature definitions changed, update the kernel")


class CardAggregator:
    """The state and features of one card.

    Examples:
        >>> card = CardAggregator()
        >>> t0 = 1_522_540_800_000  # 2018-04-01 00:00 UTC
        >>> f = card.update(TxEvent("a", "card-1", "term-1", 10.0, t0))
        >>> f["card_tx_count_1h"], f["card_seconds_since_prev"]
        (1.0, -1.0)
        >>> f = card.update(TxEvent("b", "card-1", "term-2", 30.0, t0 + 600_000))
        >>> f["card_tx_count_10m"], f["card_tx_count_1h"], f["card_amount_mean_1h"]
        (1.0, 2.0, 20.0)
        >>> f["card_distinct_terminals_1h"], f["card_amount_to_mean_30d"]
        (2.0, 1.5)
        >>> # a late event goes to its event-time place
        >>> f = card.update(TxEvent("c", "card-1", "term-1", 20.0, t0 + 60_000))
        >>> f["card_tx_count_1h"], f["card_amount_max_1h"], f["card_seconds_since_prev"]
        (2.0, 20.0, 60.0)
        >>> restored = CardAggregator.from_state(card.to_state())
        >>> restored.to_state() == card.to_state(), len(restored)
        (True, 3)
    """

    __slots__ = ("_amounts", "_terminals", "_times")

    def __init__(self) -> None:
        self._times: list[int] = []
        self._amounts: list[float] = []
        self._terminals: list[str] = []

    def __len__(self) -> int:
        """The number of transactions held."""
        return len(self._times)

    @property
    def newest_event_time_ms(self) -> int | None:
        """The newest event time seen (None before the first event)."""
        return self._times[-1] if self._times else None

    def update(self, tx: TxEvent) -> dict[str, float]:
        """Adds a transaction and returns the card's features as of it.

        Args:
            tx: a transaction of this card, in any event-time order.

        Returns:
            Every feature of ``CARD_FEATURES``, in that order, over the windows
            (t - W, t] at the transaction's event time t, the transaction included.
        """
        t = tx.event_time_ms
        times = self._times
        horizon = max(times[-1], t) - _RETENTION_MS if times else t - _RETENTION_MS
        if times and times[0] <= horizon:
            self._drop_through(horizon)
        p = bisect_right(times, t)
        amounts, terminals = self._amounts, self._terminals
        amount = float(tx.amount)
        times.insert(p, t)
        amounts.insert(p, amount)
        terminals.insert(p, tx.terminal_id)
        hi = p + 1

        values: list[float] = []
        top, inner = amount, p  # max so far, start of the previous (nested) window
        for window in _CARD_WINDOWS_MS:
            lo = bisect_right(times, t - window, 0, inner)
            if lo < inner:
                top = max(top, *amounts[lo:inner])
            total = fsum(amounts[lo:hi])
            values += (float(hi - lo), total, total / (hi - lo), top)
            inner = lo
        values.append((t - times[p - 1]) / _MS if p else NO_PREVIOUS)
        for window in _CARD_TERMINAL_WINDOWS_MS:
            lo = bisect_right(times, t - window, 0, p)
            values.append(float(len(set(terminals[lo:hi]))))
        mean_30d = values[_MEAN_30D]
        values.append(amount / mean_30d if mean_30d != 0 else 1.0)
        # (t - 30 d, t - 7 d]: the card's level before the last week.
        older_lo = bisect_right(times, t - _WINDOW_30D_MS, 0, p)
        older_hi = bisect_right(times, t - _WINDOW_7D_MS, older_lo, p)
        older = older_hi - older_lo
        older_mean = fsum(amounts[older_lo:older_hi]) / older if older else NO_OLDER_MEAN
        values += amount_ratios(
            amount, older_mean, values[_MAX_7D], values[_MEAN_1D], values[_MEAN_7D]
        )

        if t <= horizon:  # too late to keep
            del times[p], amounts[p], terminals[p]
        return dict(zip(CARD_FEATURES, values, strict=True))

    def _drop_through(self, horizon: int) -> None:
        k = bisect_right(self._times, horizon)
        del self._times[:k], self._amounts[:k], self._terminals[:k]

    def to_state(self) -> bytes:
        """The state as bytes: a versioned header, little-endian arrays, the ids."""
        return _seal(
            (
                _HEADER.pack(_CARD_MAGIC, STATE_VERSION, len(self._times), 0),
                _pack("q", self._times),
                _pack("d", self._amounts),
                _pack_strings(self._terminals),
            )
        )

    @classmethod
    def from_state(cls, data: bytes) -> CardAggregator:
        """Restores an aggregator from :meth:`to_state` bytes.

        Raises:
            ValueError: the bytes are not a card state of this ``STATE_VERSION``.
        """
        data, n, _, offset = _open(data, _CARD_MAGIC)
        card = cls()
        card._times, offset = _unpack("q", data, offset, n)
        card._amounts, offset = _unpack("d", data, offset, n)
        card._terminals = _unpack_strings(data, offset, n)
        return card


class TerminalAggregator:
    """The state and features of one terminal.

    Args:
        label_delay_s: the label delay D of the delayed windows, seconds (> 0).

    Raises:
        ValueError: ``label_delay_s`` is not a positive int.

    Examples:
        >>> term = TerminalAggregator(label_delay_s=86_400)
        >>> t0 = 1_522_540_800_000
        >>> _ = term.update(TxEvent("a", "card-1", "term-1", 10.0, t0))
        >>> term.add_label(LabelEvent("a", "term-1", t0, True))
        >>> f = term.update(TxEvent("b", "card-2", "term-1", 5.0, t0 + 86_400_000))
        >>> f["terminal_tx_count_1d"], f["terminal_tx_count_7d"]
        (1.0, 2.0)
        >>> f["terminal_delayed_tx_count_1d"], f["terminal_risk_1d"]
        (1.0, 1.0)
        >>> restored = TerminalAggregator.from_state(term.to_state())
        >>> restored.to_state() == term.to_state(), restored.label_delay_s
        (True, 86400)
    """

    __slots__ = ("_delay_ms", "_fraud_ids", "_fraud_times", "_ids", "_pending", "_times")

    def __init__(self, label_delay_s: int = LABEL_DELAY_S) -> None:
        if not isinstance(label_delay_s, int) or label_delay_s <= 0:
            raise ValueError(f"label_delay_s: must be an int > 0, got {label_delay_s!r}")
        self._delay_ms = label_delay_s * _MS
        self._times: list[int] = []
        self._ids: list[str] = []
        self._fraud_ids: dict[str, int] = {}  # id -> event time, of the fraud transactions
        self._fraud_times: list[int] = []  # event times of the fraud transactions, sorted
        self._pending: dict[str, tuple[int, bool]] = {}  # id -> (event time, is_fraud)

    def __len__(self) -> int:
        """The number of transactions held."""
        return len(self._times)

    @property
    def label_delay_s(self) -> int:
        """The label delay D, seconds."""
        return self._delay_ms // _MS

    @property
    def newest_event_time_ms(self) -> int | None:
        """The newest transaction event time seen (None before the first)."""
        return self._times[-1] if self._times else None

    @property
    def pending_labels(self) -> int:
        """Labels held until their transaction arrives."""
        return len(self._pending)

    def update(self, tx: TxEvent) -> dict[str, float]:
        """Adds a transaction and returns the terminal's features as of it.

        Args:
            tx: a transaction of this terminal, in any event-time order.

        Returns:
            Every feature of ``TERMINAL_FEATURES``, in that order.
        """
        t = tx.event_time_ms
        times = self._times
        horizon = max(times[-1], t) - _RETENTION_MS if times else t - _RETENTION_MS
        if times and times[0] <= horizon:
            self._drop_through(horizon)
        if self._pending:
            self._drop_pending_through(horizon)
        p = bisect_right(times, t)
        times.insert(p, t)
        self._ids.insert(p, tx.transaction_id)
        too_late = t <= horizon
        if not too_late and tx.transaction_id in self._pending:
            self._set_label(tx.transaction_id, t, self._pending.pop(tx.transaction_id)[1])
        hi = p + 1

        values = [float(hi - bisect_right(times, t - w, 0, p)) for w in _TERMINAL_WINDOWS_MS]
        end = t - self._delay_ms
        delayed_hi = bisect_right(times, end, 0, hi)
        fraud_hi = bisect_right(self._fraud_times, end)
        counts, risks = [], []
        for window in _TERMINAL_WINDOWS_MS:
            count = delayed_hi - bisect_right(times, end - window, 0, delayed_hi)
            frauds = fraud_hi - bisect_right(self._fraud_times, end - window, 0, fraud_hi)
            counts.append(float(count))
            risks.append(frauds / count if count else 0.0)

        if too_late:  # computed over the retained state, not kept
            del times[p], self._ids[p]
        return dict(zip(TERMINAL_FEATURES, values + counts + risks, strict=True))

    def add_label(self, label: LabelEvent) -> None:
        """Records the label of one of this terminal's transactions.

        Args:
            label: the label; its ``event_time_ms`` is the transaction's event time.
        """
        t = label.event_time_ms
        if self._times and t <= self._times[-1] - _RETENTION_MS:
            return  # its transaction is (or would be) out of retention
        lo, hi = bisect_left(self._times, t), bisect_right(self._times, t)
        if label.transaction_id in self._ids[lo:hi]:
            self._set_label(label.transaction_id, t, label.is_fraud)
            return
        self._pending.pop(label.transaction_id, None)  # re-insert: newest last
        self._pending[label.transaction_id] = (t, label.is_fraud)
        while len(self._pending) > MAX_PENDING_LABELS:
            del self._pending[next(iter(self._pending))]

    def _set_label(self, transaction_id: str, t: int, is_fraud: bool) -> None:
        if is_fraud == (transaction_id in self._fraud_ids):
            return
        if is_fraud:
            self._fraud_ids[transaction_id] = t
            insort(self._fraud_times, t)
        else:
            del self._fraud_times[
                bisect_left(self._fraud_times, self._fraud_ids.pop(transaction_id))
            ]

    def _drop_through(self, horizon: int) -> None:
        k = bisect_right(self._times, horizon)
        if self._fraud_ids:
            for transaction_id in self._ids[:k]:
                self._fraud_ids.pop(transaction_id, None)
            del self._fraud_times[: bisect_right(self._fraud_times, horizon)]
        del self._times[:k], self._ids[:k]

    def _drop_pending_through(self, horizon: int) -> None:
        for transaction_id, (t, _) in list(self._pending.items()):
            if t <= horizon:
                del self._pending[transaction_id]

    def to_state(self) -> bytes:
        """The state as bytes: a versioned header, little-endian arrays, the ids."""
        times, ids = self._times, self._ids
        frauds = sorted(
            ids.index(transaction_id, bisect_left(times, t), bisect_right(times, t))
            for transaction_id, t in self._fraud_ids.items()
        )
        pending = list(self._pending.items())
        return _seal(
            (
                _HEADER.pack(_TERMINAL_MAGIC, STATE_VERSION, len(self._times), self._delay_ms),
                _pack("q", self._times),
                _COUNTS.pack(len(frauds), len(pending)),
                _pack("I", frauds),
                _pack("q", [t for _, (t, _) in pending]),
                bytes(f for _, (_, f) in pending),
                _pack_strings(self._ids + [transaction_id for transaction_id, _ in pending]),
            )
        )

    @classmethod
    def from_state(cls, data: bytes) -> TerminalAggregator:
        """Restores an aggregator from :meth:`to_state` bytes.

        Raises:
            ValueError: the bytes are not a terminal state of this ``STATE_VERSION``.
        """
        data, n, delay_ms, offset = _open(data, _TERMINAL_MAGIC)
        term = cls()
        term._delay_ms = delay_ms
        term._times, offset = _unpack("q", data, offset, n)
        if len(data) < offset + _COUNTS.size:
            raise ValueError("state: truncated")
        n_frauds, n_pending = _COUNTS.unpack_from(data, offset)
        frauds, offset = _unpack("I", data, offset + _COUNTS.size, n_frauds)
        pending_times, offset = _unpack("q", data, offset, n_pending)
        pending_flags, offset = _unpack("B", data, offset, n_pending)
        ids = _unpack_strings(data, offset, n + n_pending)
        term._ids = ids[:n]
        try:
            term._fraud_ids = {ids[i]: term._times[i] for i in frauds}
            term._fraud_times = sorted(term._fraud_ids.values())
        except IndexError:
            raise ValueError("terminal state: bad fraud index") from None
        term._pending = {
            i: (t, bool(f)) for i, t, f in zip(ids[n:], pending_times, pending_flags, strict=True)
        }
        return term


def _pack(code: str, values: list[Any]) -> bytes:
    packed = array(code, values)
    if _SWAP:  # pragma: no cover - big-endian hosts
        packed.byteswap()
    return packed.tobytes()


def _unpack(code: str, data: bytes, offset: int, n: int) -> tuple[list[Any], int]:
    values = array(code)
    end = offset + n * values.itemsize
    if end > len(data):
        raise ValueError("state: truncated")
    values.frombytes(data[offset:end])
    if _SWAP:  # pragma: no cover - big-endian hosts
        values.byteswap()
    return values.tolist(), end


def _seal(parts: tuple[bytes, ...]) -> bytes:
    body = b"".join(parts)
    return body + _CHECKSUM.pack(zlib.crc32(body))


def _open(data: bytes, magic: bytes) -> tuple[bytes, int, int, int]:
    """The body of sealed state bytes, its count, its parameter and the header's size."""
    if len(data) < _HEADER.size + _CHECKSUM.size:
        raise ValueError("state: truncated")
    found, version, n, parameter = _HEADER.unpack_from(data)
    if found != magic:
        raise ValueError(f"state: expected {magic!r}, found {found!r}")
    if version != STATE_VERSION:
        raise ValueError(f"state: version {version}, this kernel reads {STATE_VERSION}")
    body = data[: -_CHECKSUM.size]
    if _CHECKSUM.unpack_from(data, len(body))[0] != zlib.crc32(body):
        raise ValueError("state: checksum mismatch (truncated or corrupt)")
    return body, n, parameter, _HEADER.size


def _pack_strings(strings: list[str]) -> bytes:
    # NUL-separated UTF-8 (fast); JSON when an id itself holds a NUL.
    joined = "\0".join(strings)
    if joined.count("\0") == max(len(strings) - 1, 0):
        return b"\0" + joined.encode()
    return b"\1" + json.dumps(strings, separators=(",", ":")).encode()


def _unpack_strings(data: bytes, offset: int, n: int) -> list[str]:
    kind, blob = data[offset : offset + 1], data[offset + 1 :]
    try:
        if kind == b"\0":
            strings = blob.decode().split("\0") if n else []
        elif kind == b"\1":
            strings = json.loads(blob)
        else:
            raise ValueError("state: unknown id encoding")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("state: malformed ids") from None
    if not isinstance(strings, list) or len(strings) != n:
        raise ValueError(f"state: expected {n} ids")
    return [str(item) for item in strings] if kind == b"\1" else strings
