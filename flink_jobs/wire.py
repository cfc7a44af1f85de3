"""The feature job's wire kernel: topic JSON in, FeatureRow JSON and dead letters out.

Standard library only. The job runs with protobuf 5.29, which refuses the project's
generated ``riskstream.v1`` code (see ``docs/ENVIRONMENTS.md``), so it reads the
protobuf JSON mapping of ``Transaction`` and ``Label`` with :mod:`json` and writes
``FeatureRow`` the same way: snake_case names, RFC 3339 UTC timestamps ending in
``Z``, doubles as JSON numbers (``"NaN"``/``"Infinity"`` as strings, as the mapping
says). It checks only what the job relies on (ids, amount, times); the producers
validate the rest with ``services.common.events`` before publishing.

Errors: :class:`WireError` (a malformed record: it goes to the DLQ with the reason).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache

#: A transaction as the job's operators carry it:
#: (transaction_id, card_id, terminal_id, amount, event_time_ms).
TxTuple = tuple[str, str, str, float, int]
#: A label as the job's operators carry it:
#: (transaction_id, terminal_id, event_time_ms, is_fraud, label_time_ms).
LabelTuple = tuple[str, str, int, bool, int]

PAYLOAD = "<payload>"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


class WireError(ValueError):
    """A record that the job cannot use; ``field`` and ``reason`` go to the DLQ."""

    def __init__(self, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def parse_rfc3339_ms(text: object, field: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 timestamp (sub-ms truncated).

    Raises:
        WireError: not an RFC 3339 string.

    Examples:
        >>> parse_rfc3339_ms("2018-04-01T00:00:31Z", "event_time")
        1522540831000
        >>> parse_rfc3339_ms("2018-04-01T02:00:31.123456789+02:00", "event_time")
        1522540831123
    """
    if not isinstance(text, str):
        raise WireError(field=field, reason=f"expected an RFC 3339 string, got {text!r}")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise WireError(field=field, reason=f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                          tzinfo=UTC)  # fmt: skip
    except ValueError as exc:
        raise WireError(field=field, reason=f"{text!r}: {exc}") from exc
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    millis = int((fraction or "0").ljust(3, "0")[:3])
    return (moment - _EPOCH) // timedelta(milliseconds=1) + millis


def format_rfc3339(epoch_ms: int) -> str:
    """The protobuf JSON form of a Timestamp: UTC, ``Z``, 0 or 3 fraction digits.

    Examples:
        >>> format_rfc3339(1522540831000), format_rfc3339(1522540831120)
        ('2018-04-01T00:00:31Z', '2018-04-01T00:00:31.120Z')
    """
    seconds, millis = divmod(epoch_ms, 1000)
    text = _second_text(seconds)
    return f"{text}.{millis:03d}Z" if millis else text + "Z"


@lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    # Cached: a live stream stamps many rows within the same second, and strftime is
    # a tenth of a feature row's cost.
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def _document(payload: str) -> dict[str, object]:
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise WireError(field=PAYLOAD, reason=f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise WireError(
            field=PAYLOAD, reason=f"expected a JSON object, not {type(document).__name__}"
        )
    return document


def _id(document: Mapping[str, object], field: str) -> str:
    value = document.get(field)
    if not isinstance(value, str) or not value:
        raise WireError(field=field, reason="required (a non-empty string)")
    return value


def _amount(document: Mapping[str, object]) -> float:
    value = document.get("amount", 0.0)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(field="amount", reason=f"not a JSON number: {value!r}")
    amount = float(value)
    if not math.isfinite(amount) or amount < 0:
        raise WireError(field="amount", reason=f"must be a finite number >= 0, got {amount}")
    return amount


def parse_transaction(payload: str) -> TxTuple:
    """A ``transactions`` record as the tuple the operators carry.

    Raises:
        WireError: not a JSON object, a required id is missing, the amount is not
            a non-negative number or ``event_time`` is not RFC 3339.

    Examples:
        >>> parse_transaction('{"transaction_id":"t1","card_id":"c1","terminal_id":"m1",'
        ...                   '"amount":12.5,"event_time":"2018-04-01T00:00:31Z"}')
        ('t1', 'c1', 'm1', 12.5, 1522540831000)
    """
    document = _document(payload)
    return (
        _id(document, "transaction_id"),
        _id(document, "card_id"),
        _id(document, "terminal_id"),
        _amount(document),
        parse_rfc3339_ms(document.get("event_time"), "event_time"),
    )


def parse_label(payload: str) -> LabelTuple:
    """A ``labels`` record as the tuple the operators carry.

    ``event_time`` is the labelled transaction's (it places the label in the
    terminal windows); ``label_time`` drives the labels' watermark and defaults to
    ``event_time``.

    Raises:
        WireError: as :func:`parse_transaction`, or ``is_fraud`` is not a boolean.

    Examples:
        >>> parse_label('{"transaction_id":"t1","terminal_id":"m1","is_fraud":true,'
        ...             '"event_time":"2018-04-01T00:00:31Z","label_time":"2018-04-08T00:00:31Z"}')
        ('t1', 'm1', 1522540831000, True, 1523145631000)
    """
    document = _document(payload)
    is_fraud = document.get("is_fraud", False)
    if not isinstance(is_fraud, bool):
        raise WireError(field="is_fraud", reason=f"not a JSON boolean: {is_fraud!r}")
    event_time_ms = parse_rfc3339_ms(document.get("event_time"), "event_time")
    label_time = document.get("label_time")
    return (
        _id(document, "transaction_id"),
        _id(document, "terminal_id"),
        event_time_ms,
        is_fraud,
        event_time_ms if label_time is None else parse_rfc3339_ms(label_time, "label_time"),
    )


def _double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else _NON_FINITE[value]


def feature_row_json(
    *,
    entity_type: str,
    entity_id: str,
    transaction_id: str,
    event_time_ms: int,
    values: Mapping[str, float],
    feature_set_version: str,
    computed_at_ms: int,
) -> str:
    """A ``FeatureRow`` in the protobuf JSON mapping (the ``features`` topic's value).

    Examples:
        >>> feature_row_json(entity_type="card", entity_id="c1", transaction_id="t1",
        ...                  event_time_ms=1522540831000, values={"n": 1.0},
        ...                  feature_set_version="fs-1", computed_at_ms=1522540831500)
        '{"entity_type":"card","entity_id":"c1","transaction_id":"t1","event_time":"2018-04-01T00:00:31Z","values":{"n":1.0},"feature_set_version":"fs-1","computed_at":"2018-04-01T00:00:31.500Z"}'
    """
    document = {
        "entity_type": entity_type,
        "entity_id": entity_id,
        "transaction_id": transaction_id,
        "event_time": format_rfc3339(event_time_ms),
        "values": {name: _double(float(v)) for name, v in values.items()},
        "feature_set_version": feature_set_version,
        "computed_at": format_rfc3339(computed_at_ms),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


#: A ``features`` row as the online-store repair reads it:
#: (entity_type, entity_id, event_time_ms, values, feature_set_version).
FeatureRowTuple = tuple[str, str, int, dict[str, float], str]


def parse_feature_row(payload: str | bytes) -> FeatureRowTuple:
    """A ``features`` record (what :func:`feature_row_json` wrote) back as a tuple.

    Raises:
        WireError: not a JSON object, an id or the version is missing, ``event_time``
            is not RFC 3339, or a value is not a double of the JSON mapping.

    Examples:
        >>> row = feature_row_json(entity_type="card", entity_id="c1", transaction_id="t1",
        ...                        event_time_ms=1522540831120, values={"n": 2.5, "r": math.nan},
        ...                        feature_set_version="fs-1", computed_at_ms=1522540831500)
        >>> entity_type, entity_id, at_ms, values, version = parse_feature_row(row)
        >>> entity_type, entity_id, at_ms, values["n"], math.isnan(values["r"]), version
        ('card', 'c1', 1522540831120, 2.5, True, 'fs-1')
    """
    document = _document(payload.decode() if isinstance(payload, bytes) else payload)
    raw = document.get("values")
    if not isinstance(raw, dict):
        raise WireError(field="values", reason="required (a JSON object)")
    values = {}
    for name, value in raw.items():
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WireError(field=f"values.{name}", reason=f"not a double: {value!r}")
        values[name] = float(value)
    return (
        _id(document, "entity_type"),
        _id(document, "entity_id"),
        parse_rfc3339_ms(document.get("event_time"), "event_time"),
        values,
        _id(document, "feature_set_version"),
    )


def dead_letter_headers(
    *,
    source_topic: str,
    reason: str,
    field: str | None,
    failed_at_ms: int,
    source: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """Headers of a dead letter, named as ``services.common.kafka.DeadLetterPublisher``'s.

    Examples:
        >>> dead_letter_headers(source_topic="transactions", reason="late event: x",
        ...                     field="event_time", failed_at_ms=5, source={"offset": "7"})
        ... # doctest: +NORMALIZE_WHITESPACE
        {'dlq.reason': b'late event: x', 'dlq.source.topic': b'transactions',
         'dlq.failed_at_ms': b'5', 'dlq.source.offset': b'7', 'dlq.field': b'event_time'}
    """
    headers = {
        "dlq.reason": reason.encode(),
        "dlq.source.topic": source_topic.encode(),
        "dlq.failed_at_ms": str(failed_at_ms).encode(),
    }
    headers.update((f"dlq.source.{k}", v.encode()) for k, v in (source or {}).items())
    if field:
        headers["dlq.field"] = field.encode()
    return headers


def late_reason(event_time_ms: int, watermark_ms: int, allowed_lateness_ms: int) -> str:
    """Why an event is late, for its dead letter.

    Examples:
        >>> reason = late_reason(0, 7_200_000, 3_600_000)
        >>> reason.startswith("late event: event time 1970-01-01T00:00:00Z is 7200.000 s behind")
        True
    """
    return (
        f"late event: event time {format_rfc3339(event_time_ms)} is "
        f"{(watermark_ms - event_time_ms) / 1000:.3f} s behind the watermark "
        f"{format_rfc3339(watermark_ms)} (allowed lateness {allowed_lateness_ms / 1000:.3f} s)"
    )
