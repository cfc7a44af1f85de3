"""Replay of a recorded dataset in the Fraud Detection Handbook's CSV format.

Columns (by header name, any order, extra columns ignored): ``TRANSACTION_ID``,
``TX_DATETIME`` (naive, taken as UTC), ``CUSTOMER_ID``, ``TERMINAL_ID``,
``TX_AMOUNT``, ``TX_FRAUD`` (0/1) and ``TX_FRAUD_SCENARIO`` (0 genuine, 1 amount over
220, 2 compromised terminal, 3 leaked card); ``TX_TIME_SECONDS`` and ``TX_TIME_DAYS``
are derived from the others and not needed. The file may be gzip-compressed
(detected by its magic number) or plain.

The file is read line by line, so memory stays constant however long it is. It is
not parsed with ``pandas.read_csv(chunksize=...)``: pandas' C parser cannot hand back
a malformed line with its number and text (it skips it, or fails the whole read),
while every line here must either become a transaction or a :class:`RejectedRow`
for the DLQ. Each transaction costs a few microseconds of protobuf construction
anyway, so per-line parsing is not the bottleneck.

The dataset has no merchant category, channel or country: those fields stay empty
(``CHANNEL_UNSPECIFIED``); ``merchant_id`` is derived from the terminal.
"""

from __future__ import annotations

import csv
import gzip
import math
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from riskstream.v1 import events_pb2
from services.common.errors import ConfigError
from services.producer.errors import ReplayError
from services.producer.events import (
    LabelledTransaction,
    RejectedRow,
    SimulatedStream,
    merge_labels,
)
from services.producer.scenarios import SCENARIO_NAMES

REQUIRED_COLUMNS = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)
FDH_SCENARIOS: dict[int, str] = {
    0: SCENARIO_NAMES[0],
    1: SCENARIO_NAMES[1],
    2: SCENARIO_NAMES[2],
    3: SCENARIO_NAMES[3],
}
_EPOCH = datetime(1970, 1, 1)  # naive UTC, like the parsed TX_DATETIME
_GZIP_MAGIC = b"\x1f\x8b"
_MICROSECOND = timedelta(microseconds=1)


class _BadValue(ValueError):
    """A field of one row is invalid; the message becomes the rejection reason."""


def replay_csv(
    path: str | Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    label_delay: timedelta = timedelta(days=7),
    max_rows: int | None = None,
    sorted_input: bool = False,
    currency: str = "EUR",
) -> SimulatedStream:
    """Replays a CSV file as a stream of transactions, labels and rejected rows.

    Each transaction is emitted at its ``TX_DATETIME``, its label ``label_delay``
    later, merged in time order (see :func:`read_fdh_csv` for the arguments).

    Returns:
        A one-pass stream of :class:`~services.producer.events.SimulatedEvent` and
        :class:`~services.producer.events.RejectedRow` items.
    """
    return SimulatedStream(
        merge_labels(
            read_fdh_csv(
                path,
                start=start,
                end=end,
                label_delay=label_delay,
                max_rows=max_rows,
                sorted_input=sorted_input,
                currency=currency,
            )
        )
    )


def read_fdh_csv(
    path: str | Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    label_delay: timedelta = timedelta(days=7),
    max_rows: int | None = None,
    sorted_input: bool = False,
    currency: str = "EUR",
) -> Iterator[LabelledTransaction | RejectedRow]:
    """Reads a CSV file into labelled transactions, in file order.

    Ids: ``transaction_id = "fdh-<TRANSACTION_ID>"``, ``card_id = "card-<CUSTOMER_ID>"``,
    ``terminal_id = "term-<TERMINAL_ID>"``, ``merchant_id = "merch-<TERMINAL_ID>"``.

    Args:
        path: the file, gzip-compressed or plain.
        start: keep rows with ``TX_DATETIME >= start`` (aware; None: from the first).
        end: keep rows with ``TX_DATETIME < end`` (aware; None: to the last).
        label_delay: from a transaction's event time to its label's label time.
        max_rows: stop after this many data lines (kept, filtered out or rejected).
        sorted_input: the file is in time order, so reading stops at the first row
            at or after ``end`` instead of scanning the rest of the file.
        currency: ISO 4217 code of the amounts.

    Yields:
        A :class:`LabelledTransaction` per valid row in ``[start, end)`` and a
        :class:`RejectedRow` per row that cannot be parsed (rows whose date does not
        parse are rejected whatever the window; rows outside it are skipped).

    Raises:
        ConfigError: an argument is invalid.
        ReplayError: the file cannot be opened or decompressed, or its header lacks
            a required column.
    """
    start_naive = _naive_utc("start", start)
    end_naive = _naive_utc("end", end)
    if label_delay < timedelta(0):
        raise ConfigError("label_delay: must not be negative")
    if max_rows is not None and max_rows < 0:
        raise ConfigError("max_rows: must not be negative")
    if not Path(path).is_file():
        raise ReplayError("no such file", path=str(path))
    return _read(
        Path(path),
        start_naive,
        end_naive,
        label_delay // timedelta(microseconds=1),
        max_rows,
        sorted_input,
        currency,
    )


def _read(
    path: Path,
    start_naive: datetime | None,
    end_naive: datetime | None,
    delay_us: int,
    max_rows: int | None,
    sorted_input: bool,
    currency: str,
) -> Iterator[LabelledTransaction | RejectedRow]:
    name = str(path)
    try:
        with _open_text(path) as lines:
            header_line, header = _read_header(lines, name)
            columns = _column_positions(header, name)
            rows = 0
            for number, line in enumerate(lines, start=header_line + 1):
                raw = line.rstrip("\r\n")
                if not raw.strip():
                    continue
                if max_rows is not None and rows >= max_rows:
                    return
                rows += 1
                fields = _split(raw)
                if len(fields) != len(header):
                    yield RejectedRow(
                        number, raw, f"expected {len(header)} fields, got {len(fields)}"
                    )
                    continue
                try:
                    when = _parse_datetime(fields[columns["TX_DATETIME"]])
                except _BadValue as bad:
                    yield RejectedRow(number, raw, str(bad))
                    continue
                if end_naive is not None and when >= end_naive:
                    if sorted_input:
                        return
                    continue
                if start_naive is not None and when < start_naive:
                    continue
                try:
                    yield _labelled(fields, columns, when, delay_us, currency)
                except _BadValue as bad:
                    yield RejectedRow(number, raw, str(bad))
    except (OSError, EOFError, zlib.error) as exc:
        raise ReplayError(f"cannot read: {exc}", path=name) from exc


def _read_header(lines: IO[str], path: str) -> tuple[int, list[str]]:
    """The first non-blank line's number and fields."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            return number, _split(line.rstrip("\r\n"))
    raise ReplayError("empty file, no header", path=path)


def _open_text(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    return path.open(encoding="utf-8-sig", errors="replace", newline="")


def _split(line: str) -> list[str]:
    if '"' in line:
        return next(csv.reader([line]))
    return line.split(",")


def _column_positions(header: list[str], path: str) -> dict[str, int]:
    positions = {column.strip(): i for i, column in enumerate(header)}
    missing = [column for column in REQUIRED_COLUMNS if column not in positions]
    if missing:
        raise ReplayError(f"header lacks column(s) {', '.join(missing)}", path=path)
    return {column: positions[column] for column in REQUIRED_COLUMNS}


def _naive_utc(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ConfigError(f"{name}: must be timezone-aware")
    return value.astimezone(UTC).replace(tzinfo=None)


def _parse_datetime(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _BadValue(f"TX_DATETIME: not a date and time: {text!r}") from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def _parse_id(fields: list[str], columns: dict[str, int], column: str) -> int:
    text = fields[columns[column]].strip()
    try:
        value = int(text)
    except ValueError:
        raise _BadValue(f"{column}: not an integer: {text!r}") from None
    if value < 0:
        raise _BadValue(f"{column}: negative: {value}")
    return value


def _labelled(
    fields: list[str], columns: dict[str, int], when: datetime, delay_us: int, currency: str
) -> LabelledTransaction:
    tx_number = _parse_id(fields, columns, "TRANSACTION_ID")
    customer = _parse_id(fields, columns, "CUSTOMER_ID")
    terminal = _parse_id(fields, columns, "TERMINAL_ID")
    text = fields[columns["TX_AMOUNT"]].strip()
    try:
        amount = float(text)
    except ValueError:
        raise _BadValue(f"TX_AMOUNT: not a number: {text!r}") from None
    if not math.isfinite(amount) or amount < 0:
        raise _BadValue(f"TX_AMOUNT: must be finite and >= 0, got {text!r}")
    fraud = _parse_id(fields, columns, "TX_FRAUD")
    scenario = _parse_id(fields, columns, "TX_FRAUD_SCENARIO")
    if fraud not in (0, 1):
        raise _BadValue(f"TX_FRAUD: must be 0 or 1, got {fraud}")
    if scenario not in FDH_SCENARIOS:
        raise _BadValue(f"TX_FRAUD_SCENARIO: unknown scenario {scenario}")
    if (fraud == 1) != (scenario != 0):
        raise _BadValue(f"TX_FRAUD_SCENARIO: scenario {scenario} contradicts TX_FRAUD {fraud}")

    since_epoch = when - _EPOCH
    tx = events_pb2.Transaction(
        transaction_id=f"fdh-{tx_number}",
        card_id=f"card-{customer}",
        terminal_id=f"term-{terminal}",
        merchant_id=f"merch-{terminal}",
        amount=amount,
        currency=currency,
    )
    tx.event_time.seconds = since_epoch.days * 86_400 + since_epoch.seconds
    if since_epoch.microseconds:
        tx.event_time.nanos = since_epoch.microseconds * 1000
    event_us = since_epoch // _MICROSECOND
    return LabelledTransaction(
        tx, fraud == 1, FDH_SCENARIOS[scenario], (event_us + delay_us) * 1000
    )
