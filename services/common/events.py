"""Kafka payloads to validated protobuf messages and back: the one wire kernel.

Topics carry the protobuf JSON mapping of the ``riskstream.v1`` messages with
the .proto's snake_case names, so kcat, Flink SQL and any other producer can
write them. Every consumer decodes through here, so a record is either a message
that passed its ``validate_*`` rules or an :class:`InvalidEvent` naming the
offending field, which a stream processor can dead-letter with that reason.

Decoding is stricter than ``json_format`` in the places where it silently
coerces: a JSON array or string is not taken for an object, ``true`` is not
taken for 1.0, and a quoted number must follow the JSON number grammar (Python's
``float()`` would take ``"1_000"``, ``" 5 "`` and ``"inf"``). Quoted ``"NaN"`` and
``"Infinity"`` are legal in the mapping, so validators check finiteness.

Validators and decoders raise InvalidEvent naming the first offending field.
They all take the same keyword-only clock arguments:
``now`` (timezone-aware; the wall clock when None) and ``max_future_skew`` (how
far past ``now`` a timestamp may lie, for producers' clock skew), so tests pin
time. No I/O here: the Kafka adapters hand bytes in and take bytes out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from riskstream.v1 import events_pb2
from services.common.errors import InvalidEvent
from services.common.iso_codes import ISO_3166_ALPHA2_CODES, ISO_4217_CODES
from services.common.pii import looks_like_pan

PAYLOAD_FIELD = "<payload>"
MAX_FUTURE_SKEW = timedelta(minutes=5)
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_ID_LENGTH = 64
MAX_AMOUNT = 1e9
ENTITY_TYPES = frozenset({"card", "terminal"})

_M = TypeVar("_M", bound=Message)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_FLOAT_WORDS = frozenset({"NaN", "Infinity", "-Infinity"})
_FLOAT_TYPES = frozenset({FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT})
_FIELD_PREFIX = re.compile(r"Failed to parse (\w+) field: ")
_UNKNOWN_FIELD = re.compile(r'has no field named "(?P<name>.*?)" at "(?P<at>[^"]*)"', re.S)
_MCC = re.compile(r"[0-9]{4}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def encode(message: Message) -> bytes:
    """Serialize a message as the topics' compact JSON (snake_case, enum names, UTF-8).

    Fields at their default value are left out, as ``json_format`` does, so an
    added field does not change the bytes of existing events. Encoding does not
    validate: call the matching ``validate_*`` where the message is built.

    Args:
        message: any ``riskstream.v1`` message.
    """
    document = json_format.MessageToDict(message, preserving_proto_field_name=True)
    _sort_map_fields(message.DESCRIPTOR, document)
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def _sort_map_fields(descriptor: Any, document: dict[str, Any]) -> None:
    """Order every map field's keys, in place, so equal messages encode to equal bytes.

    Protobuf maps have no order: upb iterates a parsed map in hash order, so
    without this a decoded event re-encodes to different bytes than it arrived as.
    """
    for field in descriptor.fields:
        value = document.get(field.name)
        if value is None or field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            document[field.name] = dict(sorted(value.items()))
        elif isinstance(value, list):
            for item in value:
                _sort_map_fields(field.message_type, item)
        elif isinstance(value, dict):
            _sort_map_fields(field.message_type, value)


# --- parsing -----------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key!r}")
        document[key] = value
    return document


def _parse(payload: bytes, message: _M) -> _M:
    """Fill ``message`` from JSON bytes, turning every failure into InvalidEvent."""
    try:
        document = json.loads(payload.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidEvent(field=PAYLOAD_FIELD, reason=f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(document, dict):
        # json_format would iterate an array or a string as if it were the keys.
        kind = type(document).__name__
        raise InvalidEvent(field=PAYLOAD_FIELD, reason=f"expected a JSON object, not {kind}")
    _check_json_types(document, cast(Descriptor, message.DESCRIPTOR), "")
    try:
        json_format.ParseDict(document, message)
    except json_format.ParseError as exc:
        field, reason = _describe_parse_error(str(exc), message.DESCRIPTOR.name)
        raise InvalidEvent(field=field, reason=reason) from exc
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise InvalidEvent(field=PAYLOAD_FIELD, reason=f"{type(exc).__name__}: {exc}") from exc
    return message


def _check_json_types(document: dict[str, Any], descriptor: Descriptor, path: str) -> None:
    """Reject the JSON values that json_format coerces although the mapping forbids them."""
    by_json_name = {f.json_name: f for f in descriptor.fields}
    for key, value in document.items():
        field = descriptor.fields_by_name.get(key) or by_json_name.get(key)
        if field is None or value is None:
            continue  # json_format reports unknown fields; null means "default"
        name = f"{path}.{key}" if path else key
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            item_field = field.message_type.fields_by_name["value"]
            pairs = value.items() if isinstance(value, dict) else ()
            items = [(f"{name}[{k}]", v) for k, v in pairs]
        elif field.is_repeated:
            item_field = field
            elements = value if isinstance(value, list) else ()
            items = [(f"{name}[{i}]", v) for i, v in enumerate(elements)]
        else:
            item_field, items = field, [(name, value)]
        for item_path, item in items:
            _check_json_value(item_field, item, item_path)


def _check_json_value(field: FieldDescriptor, value: Any, path: str) -> None:
    message_type = field.message_type
    if message_type is not None:
        if isinstance(value, dict) and not message_type.full_name.startswith("google."):
            _check_json_types(value, message_type, path)
    elif isinstance(value, bool):
        if field.cpp_type != FieldDescriptor.CPPTYPE_BOOL:
            raise InvalidEvent(field=path, reason="got a JSON boolean for a non-boolean field")
    elif (
        field.cpp_type in _FLOAT_TYPES
        and isinstance(value, str)
        and not (_NUMBER.fullmatch(value) or value in _FLOAT_WORDS)
    ):
        raise InvalidEvent(field=path, reason=f"not a JSON number: {value!r}")


def _describe_parse_error(text: str, root: str) -> tuple[str, str]:
    """Recover (field path, reason) from a json_format.ParseError message.

    json_format wraps each level as ``Failed to parse <name> field: <inner>.`` and
    the innermost message usually ends with `` at <Root>.<path>`` (with ``[i]``
    for list items and map keys), which is the most precise path it gives.
    """
    chain: list[str] = []
    rest = text
    while match := _FIELD_PREFIX.match(rest):
        chain.append(match.group(1))
        rest = rest[match.end() :]
    if match := _UNKNOWN_FIELD.search(rest):
        parent = _strip_root(match["at"], root)
        return (f"{parent}.{match['name']}" if parent else match["name"]), "unknown field"
    rest = rest.split("\n", 1)[0].rstrip(".")
    at = re.search(rf" at ({re.escape(root)}(?:[.\[]\S*)?)$", rest)
    reason = rest[: at.start()] if at else rest
    if at and (path := _strip_root(at.group(1), root)):
        return path, reason
    return (".".join(chain) or PAYLOAD_FIELD), reason


def _strip_root(path: str, root: str) -> str:
    return path[len(root) + 1 :] if path.startswith(root + ".") else ""


# --- field rules -------------------------------------------------------------


def _check_not_pan(value: str, field: str) -> None:
    if looks_like_pan(value):
        # The value itself stays out of the reason: reasons end up in logs and the DLQ.
        raise InvalidEvent(
            field=field,
            reason="looks like a raw card number (PAN: 13-19 digits passing Luhn); "
            "only card tokens may travel on our topics",
        )


def _check_id(value: str, field: str, *, required: bool = True, pan_check: bool = False) -> None:
    if not value:
        if required:
            raise InvalidEvent(field=field, reason="required")
        return
    if pan_check:
        _check_not_pan(value, field)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(field=field, reason=f"longer than {MAX_ID_LENGTH} characters")
    if not value.isprintable() or any(char.isspace() for char in value):
        raise InvalidEvent(field=field, reason="must be printable, without whitespace")


def _check_number(
    value: float, field: str, *, low: float = -math.inf, high: float = math.inf
) -> None:
    if not math.isfinite(value):
        raise InvalidEvent(field=field, reason=f"must be a finite number, got {value}")
    if not low <= value <= high:
        raise InvalidEvent(field=field, reason=f"{value} is outside [{low}, {high}]")


def _check_values(values: Mapping[str, float], field: str) -> None:
    for key, value in values.items():
        if not key:
            raise InvalidEvent(field=field, reason="empty key")
        _check_number(value, f"{field}[{key}]")


def _check_enum(message: Message, field: str, *, required: bool = False) -> None:
    value = getattr(message, field)
    enum = message.DESCRIPTOR.fields_by_name[field].enum_type
    if enum is None:
        raise TypeError(f"{field} is not an enum field")
    if value not in enum.values_by_number:
        raise InvalidEvent(field=field, reason=f"{value} is not a {enum.name} value")
    if required and value == 0:
        raise InvalidEvent(field=field, reason=f"required (not {enum.values_by_number[0].name})")


def _check_time(
    message: Message, field: str, now: datetime | None, skew: timedelta, *, required: bool = True
) -> None:
    """A timestamp is set (if required), not before 2000 and not beyond now + skew."""
    if not message.HasField(field):
        if required:
            raise InvalidEvent(field=field, reason="required")
        return
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    nanos = getattr(message, field).ToNanoseconds()
    if nanos < _epoch_nanos(EARLIEST_EVENT_TIME):
        raise InvalidEvent(field=field, reason=f"before {EARLIEST_EVENT_TIME.date()}")
    if nanos > _epoch_nanos(now + skew):
        raise InvalidEvent(
            field=field, reason=f"more than {skew} in the future (now is {now.isoformat()})"
        )


def _epoch_nanos(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1_000


def _check_order(message: Message, earlier: str, later: str) -> None:
    if not (message.HasField(earlier) and message.HasField(later)):
        return
    if getattr(message, later).ToNanoseconds() < getattr(message, earlier).ToNanoseconds():
        raise InvalidEvent(field=later, reason=f"before {earlier}")


# --- validators (all share the clock keywords, so tests can pin "now") --------


def validate_transaction(
    tx: events_pb2.Transaction,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = MAX_FUTURE_SKEW,
) -> None:
    """Check a transaction against the rules of the ``transactions`` topic."""
    _check_id(tx.transaction_id, "transaction_id")
    _check_id(tx.card_id, "card_id", pan_check=True)
    _check_id(tx.terminal_id, "terminal_id")
    _check_id(tx.merchant_id, "merchant_id", required=False)
    _check_number(tx.amount, "amount", low=0.0, high=MAX_AMOUNT)
    if not tx.currency:
        raise InvalidEvent(field="currency", reason="required")
    if tx.currency not in ISO_4217_CODES:
        raise InvalidEvent(field="currency", reason=f"{tx.currency!r} is not an ISO 4217 code")
    if tx.merchant_category and not _MCC.fullmatch(tx.merchant_category):
        raise InvalidEvent(field="merchant_category", reason="must be 4 digits (ISO 18245 MCC)")
    if tx.country and tx.country not in ISO_3166_ALPHA2_CODES:
        raise InvalidEvent(field="country", reason=f"{tx.country!r} is not ISO 3166-1 alpha-2")
    _check_enum(tx, "channel")
    _check_time(tx, "event_time", now, max_future_skew)


def validate_label(
    label: events_pb2.Label,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = MAX_FUTURE_SKEW,
) -> None:
    """Check a label: a verdict is known only after its transaction happened."""
    _check_id(label.transaction_id, "transaction_id")
    _check_id(label.card_id, "card_id", required=False, pan_check=True)
    _check_id(label.terminal_id, "terminal_id", required=False)
    _check_time(label, "event_time", now, max_future_skew)
    _check_time(label, "label_time", now, max_future_skew)
    _check_order(label, "event_time", "label_time")
    _check_enum(label, "source")


def validate_feature_row(
    row: events_pb2.FeatureRow,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = MAX_FUTURE_SKEW,
) -> None:
    """Check a feature-log row: a model must never see a non-finite feature."""
    if row.entity_type not in ENTITY_TYPES:
        raise InvalidEvent(field="entity_type", reason=f"must be one of {sorted(ENTITY_TYPES)}")
    _check_id(row.entity_id, "entity_id", pan_check=True)
    _check_id(row.transaction_id, "transaction_id", required=False)
    _check_time(row, "event_time", now, max_future_skew)
    _check_time(row, "computed_at", now, max_future_skew, required=False)
    _check_values(row.values, "values")
    if not row.feature_set_version:
        raise InvalidEvent(field="feature_set_version", reason="required")


def validate_score_event(
    event: events_pb2.ScoreEvent,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = MAX_FUTURE_SKEW,
) -> None:
    """Check a score event: the audit trail must be replayable and free of raw card ids."""
    _check_id(event.transaction_id, "transaction_id")
    _check_id(event.card_id_hash, "card_id_hash", pan_check=True)
    _check_id(event.terminal_id, "terminal_id", required=False)
    _check_number(event.score, "score", low=0.0, high=1.0)
    _check_enum(event, "decision")
    _check_enum(event, "route")
    _check_values(event.features, "features")
    for index, reason in enumerate(event.reason_codes):
        _check_number(reason.contribution, f"reason_codes[{index}].contribution")
    _check_number(event.latency_ms, "latency_ms", low=0.0)
    _check_number(event.feature_age_ms, "feature_age_ms")
    _check_number(event.amount, "amount", low=0.0, high=MAX_AMOUNT)
    _check_time(event, "event_time", now, max_future_skew, required=False)
    _check_time(event, "scored_at", now, max_future_skew, required=False)


def validate_retrain_request(
    request: events_pb2.RetrainRequest,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = MAX_FUTURE_SKEW,
) -> None:
    """Check a retrain request: it must say which model and why."""
    _check_id(request.model_name, "model_name")
    _check_id(request.request_id, "request_id", required=False)
    _check_enum(request, "reason", required=True)
    for index, evidence in enumerate(request.evidence):
        path = f"evidence[{index}]"
        _check_number(evidence.statistic, f"{path}.statistic")
        _check_number(evidence.p_value, f"{path}.p_value", low=0.0, high=1.0)
        _check_number(evidence.psi, f"{path}.psi")
        _check_number(evidence.window_rows, f"{path}.window_rows", low=0)
    for field in ("window_start", "window_end", "requested_at"):
        _check_time(request, field, now, max_future_skew, required=False)
    _check_order(request, "window_start", "window_end")


def validate_model_version(
    version: events_pb2.ModelVersion,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = MAX_FUTURE_SKEW,
) -> None:
    """Check a registry event: scorers verify artifacts by this sha256 before loading."""
    _check_id(version.model_name, "model_name")
    _check_id(version.version, "version")
    _check_enum(version, "status")
    if (version.artifact_uri or version.sha256) and not _SHA256.fullmatch(version.sha256):
        # Lower case only: it is compared with hashlib's hexdigest() as a string.
        raise InvalidEvent(field="sha256", reason="must be 64 lower-case hex digits")
    _check_values(version.metrics, "metrics")
    if version.HasField("rollout"):
        _check_number(version.rollout.canary_weight, "rollout.canary_weight", low=0.0, high=1.0)
    if version.HasField("thresholds"):
        review, decline = version.thresholds.review, version.thresholds.decline
        _check_number(review, "thresholds.review", low=0.0, high=1.0)
        _check_number(decline, "thresholds.decline", low=review, high=1.0)
    _check_time(version, "created_at", now, max_future_skew, required=False)
    _check_time(version, "transition_time", now, max_future_skew, required=False)


# --- decoders ------------------------------------------------------------------


def decode_transaction(
    payload: bytes, *, now: datetime | None = None, max_future_skew: timedelta = MAX_FUTURE_SKEW
) -> events_pb2.Transaction:
    """Parse and validate a ``transactions`` record.

    Args:
        payload: the Kafka record value.
        now: the current time (timezone-aware); the wall clock when None.
        max_future_skew: how far past ``now`` the event time may be.

    Returns:
        The validated transaction.

    Raises:
        InvalidEvent: the payload is not a valid transaction; ``field`` names why.

    Example:
        >>> tx = decode_transaction(
        ...     b'{"transaction_id":"t1","card_id":"c1","terminal_id":"m1","amount":12.5,'
        ...     b'"currency":"EUR","event_time":"2026-11-26T10:00:00Z"}',
        ...     now=datetime(2026, 11, 26, 10, 1, tzinfo=UTC),
        ... )
        >>> tx.amount, tx.currency
        (12.5, 'EUR')
        >>> decode_transaction(encode(tx), now=datetime(2026, 11, 26, 10, 1, tzinfo=UTC)) == tx
        True
        >>> decode_transaction(b'{"amount": "abc"}')
        Traceback (most recent call last):
        ...
        services.common.errors.InvalidEvent: amount: not a JSON number: 'abc'
    """
    tx = _parse(payload, events_pb2.Transaction())
    validate_transaction(tx, now=now, max_future_skew=max_future_skew)
    return tx


def decode_label(
    payload: bytes, *, now: datetime | None = None, max_future_skew: timedelta = MAX_FUTURE_SKEW
) -> events_pb2.Label:
    """Parse and validate a ``labels`` record; raises InvalidEvent like decode_transaction."""
    label = _parse(payload, events_pb2.Label())
    validate_label(label, now=now, max_future_skew=max_future_skew)
    return label


def decode_feature_row(
    payload: bytes, *, now: datetime | None = None, max_future_skew: timedelta = MAX_FUTURE_SKEW
) -> events_pb2.FeatureRow:
    """Parse and validate a ``features`` record; raises InvalidEvent like decode_transaction."""
    row = _parse(payload, events_pb2.FeatureRow())
    validate_feature_row(row, now=now, max_future_skew=max_future_skew)
    return row


def decode_score_event(
    payload: bytes, *, now: datetime | None = None, max_future_skew: timedelta = MAX_FUTURE_SKEW
) -> events_pb2.ScoreEvent:
    """Parse and validate a ``scores`` record; raises InvalidEvent like decode_transaction."""
    event = _parse(payload, events_pb2.ScoreEvent())
    validate_score_event(event, now=now, max_future_skew=max_future_skew)
    return event


def decode_retrain_request(
    payload: bytes, *, now: datetime | None = None, max_future_skew: timedelta = MAX_FUTURE_SKEW
) -> events_pb2.RetrainRequest:
    """Parse and validate a ``retrain-requests`` record; raises InvalidEvent like the others."""
    request = _parse(payload, events_pb2.RetrainRequest())
    validate_retrain_request(request, now=now, max_future_skew=max_future_skew)
    return request


def decode_model_version(
    payload: bytes, *, now: datetime | None = None, max_future_skew: timedelta = MAX_FUTURE_SKEW
) -> events_pb2.ModelVersion:
    """Parse and validate a ``model-updates`` record; raises InvalidEvent like the others."""
    version = _parse(payload, events_pb2.ModelVersion())
    validate_model_version(version, now=now, max_future_skew=max_future_skew)
    return version


#: The decoder for each topic's values, so a consumer picks by the topic it reads.
DECODERS: Mapping[str, Callable[[bytes], Message]] = MappingProxyType(
    {
        "transactions": decode_transaction,
        "labels": decode_label,
        "features": decode_feature_row,
        "scores": decode_score_event,
        "retrain-requests": decode_retrain_request,
        "model-updates": decode_model_version,
    }
)
