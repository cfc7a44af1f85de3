"""Replay of the handbook's CSV: counts, frauds, date window, rejected rows."""

from __future__ import annotations

import gzip
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from riskstream.v1 import events_pb2
from services.common.errors import ConfigError
from services.common.events import validate_label, validate_transaction
from services.producer import RejectedRow, ReplayError, SimulatedEvent, read_fdh_csv, replay_csv
from services.producer.config import handbook_dataset_path

FDH = handbook_dataset_path()
N_ROWS = 20_000

HEADER = (
    "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,"
    "TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO"
)


@pytest.fixture(scope="module")
def head() -> pd.DataFrame:
    """The first rows of the real file, read independently with pandas."""
    frame = pd.read_csv(FDH, nrows=N_ROWS)
    frame["TX_DATETIME"] = pd.to_datetime(frame["TX_DATETIME"]).dt.tz_localize("UTC")
    return frame


def test_first_20k_rows_replay_completely_in_time_order(head: pd.DataFrame) -> None:
    items = list(replay_csv(FDH, max_rows=N_ROWS))
    assert not any(isinstance(item, RejectedRow) for item in items)
    transactions = [e for e in items if e.kind == "transaction"]
    labels = [e for e in items if e.kind == "label"]
    assert len(transactions) == len(labels) == N_ROWS
    assert sum(e.label.is_fraud for e in labels) == head["TX_FRAUD"].sum() > 0
    scenarios = pd.Series([e.label.fraud_scenario for e in labels]).value_counts()
    names = {0: "", 1: "amount_threshold", 2: "compromised_terminal", 3: "leaked_card"}
    assert scenarios.to_dict() == head["TX_FRAUD_SCENARIO"].map(names).value_counts().to_dict()

    emit = [e.emit_at for e in items]
    assert all(a <= b for a, b in itertools.pairwise(emit))
    by_id = {e.transaction.transaction_id: e for e in transactions}
    for label_event in labels:
        tx_event = by_id[label_event.label.transaction_id]
        assert label_event.emit_at - tx_event.emit_at == timedelta(days=7)
        assert label_event.label.event_time == tx_event.transaction.event_time
        assert label_event.label.source == events_pb2.LABEL_SOURCE_SIMULATOR

    first = transactions[0].transaction
    row = head.iloc[0]
    assert first.transaction_id == f"fdh-{row.TRANSACTION_ID}"
    assert first.card_id == f"card-{row.CUSTOMER_ID}"
    assert first.terminal_id == f"term-{row.TERMINAL_ID}"
    assert first.amount == row.TX_AMOUNT and first.currency == "EUR"
    assert transactions[0].emit_at == row.TX_DATETIME.to_pydatetime()
    assert transactions[0].key == first.card_id and transactions[0].topic == "transactions"
    assert labels[0].key == labels[0].label.transaction_id and labels[0].topic == "labels"
    assert [e.transaction.amount for e in transactions] == head["TX_AMOUNT"].tolist()
    validate_transaction(first)
    validate_label(labels[0].label)


def test_date_window_keeps_exactly_the_rows_inside(head: pd.DataFrame) -> None:
    start = datetime(2018, 4, 1, 6, tzinfo=UTC)
    end = datetime(2018, 4, 2, 12, 30, tzinfo=UTC)
    inside = head[(head["TX_DATETIME"] >= start) & (head["TX_DATETIME"] < end)]
    assert 0 < len(inside) < len(head)
    for sorted_input in (False, True):
        rows = list(
            read_fdh_csv(FDH, start=start, end=end, max_rows=N_ROWS, sorted_input=sorted_input)
        )
        assert [lt.transaction.transaction_id for lt in rows] == [
            f"fdh-{i}" for i in inside["TRANSACTION_ID"]
        ]
        assert sum(lt.is_fraud for lt in rows) == inside["TX_FRAUD"].sum()
    # In time order, reading stops at the end of the window instead of the end of the file.
    window = read_fdh_csv(FDH, end=datetime(2018, 4, 1, 1, tzinfo=UTC), sorted_input=True)
    assert len(list(window)) == (head["TX_DATETIME"] < datetime(2018, 4, 1, 1, tzinfo=UTC)).sum()


def _write(path: Path, lines: list[str], *, compress: bool) -> Path:
    text = "\n".join(lines) + "\n"
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_bad_rows_become_rejected_rows_and_good_rows_still_flow(
    tmp_path: Path, compress: bool
) -> None:
    lines = [
        HEADER,
        "0,2018-04-01 00:00:31,596,3156,57.16,31,0,0,0",  # line 2
        "1,2018-04-01 00:02:10,4961,3412,81.51,130,0",  # too few fields
        "2,2018-04-31 00:07:56,2,1365,146.0,476,0,0,0",  # no 31 April
        "3,2018-04-01 00:09:29,4128,8737,abc,569,0,0,0",  # amount not a number
        "4,2018-04-01 00:10:34,927,9906,-1.5,634,0,0,0",  # negative amount
        "5,2018-04-01 00:10:45,568,8803,22.5,645,0,2,0",  # TX_FRAUD not 0/1
        "6,2018-04-01 00:11:30,2803,5490,10.0,690,0,0,2",  # scenario without fraud
        "7,2018-04-01 00:12:00,x12,5490,10.0,720,0,0,0",  # customer not an integer
        "",  # blank: skipped, not rejected
        '8,2018-04-01 00:13:00,12,"5490",250.0,780,0,1,1',  # quoted field: fine
        "9,2018-04-01 00:14:00,13,77,19.99,840,0,1,3",
    ]
    path = _write(tmp_path / ("t.csv.gz" if compress else "t.csv"), lines, compress=compress)
    items = list(replay_csv(path, label_delay=timedelta(days=1)))
    rejected = [item for item in items if isinstance(item, RejectedRow)]
    assert [(r.line_number, r.raw) for r in rejected] == [(n, lines[n - 1]) for n in range(3, 10)]
    reasons = [r.reason for r in rejected]
    assert reasons[0] == "expected 9 fields, got 7"
    for reason, column in zip(
        reasons[1:],
        ["TX_DATETIME", "TX_AMOUNT", "TX_AMOUNT", "TX_FRAUD", "TX_FRAUD_SCENARIO", "CUSTOMER_ID"],
        strict=True,
    ):
        assert reason.startswith(f"{column}: "), reason
    assert all(r.topic == "transactions.dlq" for r in rejected)

    events = [item for item in items if isinstance(item, SimulatedEvent)]
    ids = [e.transaction.transaction_id for e in events if e.kind == "transaction"]
    assert ids == ["fdh-0", "fdh-8", "fdh-9"]
    scenarios = [e.label.fraud_scenario for e in events if e.kind == "label"]
    assert scenarios == ["", "amount_threshold", "leaked_card"]


def test_columns_by_header_name_and_fractional_seconds(tmp_path: Path) -> None:
    lines = [
        "TX_FRAUD_SCENARIO,TX_FRAUD,TX_AMOUNT,TERMINAL_ID,CUSTOMER_ID,TX_DATETIME,TRANSACTION_ID,EXTRA",
        "0,0,12.5,7,3,2018-04-01T10:00:00.250000,41,whatever",
    ]
    path = _write(tmp_path / "reordered.csv", lines, compress=False)
    [event, label] = list(replay_csv(path, label_delay=timedelta(hours=1)))
    tx = event.transaction
    assert (tx.transaction_id, tx.card_id, tx.terminal_id, tx.amount) == (
        "fdh-41",
        "card-3",
        "term-7",
        12.5,
    )
    assert event.emit_at == datetime(2018, 4, 1, 10, 0, 0, 250_000, tzinfo=UTC)
    assert label.emit_at == datetime(2018, 4, 1, 11, 0, 0, 250_000, tzinfo=UTC)
    assert label.label.label_time.nanos == 250_000_000


def test_unreadable_input_raises_replay_error(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="no such file"):
        read_fdh_csv(tmp_path / "missing.csv")
    missing_column = _write(
        tmp_path / "m.csv", ["TRANSACTION_ID,TX_DATETIME", "1,2018-04-01"], compress=False
    )
    with pytest.raises(ReplayError, match="CUSTOMER_ID"):
        list(read_fdh_csv(missing_column))
    empty = _write(tmp_path / "e.csv", [""], compress=False)
    with pytest.raises(ReplayError, match="no header"):
        list(read_fdh_csv(empty))
    corrupt = tmp_path / "c.csv.gz"
    corrupt.write_bytes(
        gzip.compress((HEADER + "\n" + "0,2018-04-01 00:00:31,1,1,1.0,31,0,0,0\n" * 500).encode())[
            :200
        ]
    )
    with pytest.raises(ReplayError, match="cannot read"):
        list(read_fdh_csv(corrupt))
    with pytest.raises(ConfigError, match=r"^start: "):
        read_fdh_csv(missing_column, start=datetime(2018, 4, 1))
    with pytest.raises(ConfigError, match=r"^label_delay: "):
        read_fdh_csv(missing_column, label_delay=timedelta(days=-1))
