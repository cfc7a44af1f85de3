"""Unit tests of services.common.events: the topics' JSON wire format and its validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from riskstream.v1 import events_pb2
from services.common import events
from services.common.errors import InvalidEvent

NOW = datetime(2026, 11, 26, 10, 5, tzinfo=UTC)
KCAT_LINE = (
    b'{"transaction_id":"t1","card_id":"c1","terminal_id":"m1","amount":12.5,'
    b'"currency":"EUR","event_time":"2026-11-26T10:00:00Z"}'
)


def ts(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


def full_messages() -> dict[str, Message]:
    """One valid, fully populated message per topic."""
    return {
        "transactions": events_pb2.Transaction(
            transaction_id="t1",
            card_id="card-tok-7f3a",
            terminal_id="term-9",
            merchant_id="m-1",
            amount=99.95,
            currency="EUR",
            merchant_category="5411",
            channel=events_pb2.CHANNEL_ECOMMERCE,
            country="DE",
            event_time=ts("2026-11-26T10:00:00.250Z"),
        ),
        "labels": events_pb2.Label(
            transaction_id="t1",
            card_id="card-tok-7f3a",
            terminal_id="term-9",
            is_fraud=True,
            event_time=ts("2026-11-20T10:00:00Z"),
            label_time=ts("2026-11-26T09:00:00Z"),
            source=events_pb2.LABEL_SOURCE_CHARGEBACK,
            fraud_scenario="amount_threshold",
        ),
        "features": events_pb2.FeatureRow(
            entity_type="card",
            entity_id="card-tok-7f3a",
            transaction_id="t1",
            event_time=ts("2026-11-26T10:00:00Z"),
            values={"amount_mean_1d": 42.5, "tx_count_7d": 3.0},
            feature_set_version="fs-1",
            computed_at=ts("2026-11-26T10:00:01Z"),
        ),
        "scores": events_pb2.ScoreEvent(
            transaction_id="t1",
            card_id_hash="b3f1c2",
            terminal_id="term-9",
            event_time=ts("2026-11-26T10:00:00Z"),
            scored_at=ts("2026-11-26T10:00:00.004Z"),
            features={"amount_mean_1d": 42.5},
            feature_set_version="fs-1",
            score=0.87,
            decision=events_pb2.DECISION_DECLINE,
            model_name="fraud-xgb",
            model_version="7",
            route=events_pb2.ROUTE_CANARY,
            reason_codes=[events_pb2.ReasonCode(code="HIGH_AMOUNT", contribution=-0.5)],
            latency_ms=3.2,
            feature_age_ms=120.0,
            amount=99.95,
        ),
        "retrain-requests": events_pb2.RetrainRequest(
            request_id="r1",
            model_name="fraud-xgb",
            reason=events_pb2.RETRAIN_REASON_FEATURE_DRIFT,
            evidence=[
                events_pb2.DriftEvidence(
                    feature="amount", test="ks", statistic=0.3, p_value=0.001, window_rows=5000
                )
            ],
            window_start=ts("2026-11-19T00:00:00Z"),
            window_end=ts("2026-11-26T00:00:00Z"),
            requested_at=ts("2026-11-26T10:00:00Z"),
            champion_version="6",
            requested_by="drift",
        ),
        "model-updates": events_pb2.ModelVersion(
            model_name="fraud-xgb",
            version="7",
            status=events_pb2.MODEL_STATUS_CANARY,
            artifact_uri="file:///models/fraud-xgb/7/model.onnx",
            sha256="ab" * 32,
            signature=b"\x00\x01\xfe\xff",
            signing_key_id="k1",
            feature_set_version="fs-1",
            feature_names=["amount", "amount_mean_1d"],
            metrics={"average_precision": 0.81},
            rollout=events_pb2.RolloutPlan(canary_weight=0.05, min_canary_requests=1000),
            thresholds=events_pb2.DecisionThresholds(review=0.5, decline=0.9),
            created_at=ts("2026-11-26T09:00:00Z"),
        ),
    }


TOPICS = list(full_messages())


def decode(topic: str, payload: bytes) -> Message:
    return events.DECODERS[topic](payload, now=NOW)  # type: ignore[call-arg]


def tx_payload(**changes: object) -> bytes:
    """The kcat line with keys replaced (None removes a key)."""
    document = json.loads(KCAT_LINE)
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return json.dumps(document).encode()


def rejected_field(decoder, payload: bytes) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidEvent) as caught:
        decoder(payload, now=NOW)
    return caught.value.field


# --- round trips ----------------------------------------------------------------


@pytest.mark.parametrize("topic", TOPICS)
def test_round_trip_is_lossless_and_byte_stable(topic: str) -> None:
    message = full_messages()[topic]
    payload = events.encode(message)
    decoded = decode(topic, payload)
    assert decoded == message
    assert type(decoded) is type(message)
    assert events.encode(decoded) == payload


def test_encoding_is_compact_snake_case_json_with_enum_names_and_rfc3339_times() -> None:
    payload = events.encode(full_messages()["transactions"])
    text = payload.decode("utf-8")
    assert ", " not in text and ": " not in text and "\n" not in text
    document = json.loads(text)
    assert document["card_id"] == "card-tok-7f3a"
    assert document["channel"] == "CHANNEL_ECOMMERCE"
    assert document["event_time"] == "2026-11-26T10:00:00.250Z"
    assert "cardId" not in document and "eventTime" not in document


def test_encoding_leaves_out_default_fields_and_keeps_utf8() -> None:
    tx = events_pb2.Transaction(transaction_id="tx-é", channel=events_pb2.CHANNEL_UNSPECIFIED)
    assert events.encode(tx) == '{"transaction_id":"tx-é"}'.encode()


def test_encoding_of_maps_int64_and_bytes_follows_the_json_mapping() -> None:
    document = json.loads(events.encode(full_messages()["model-updates"]))
    assert document["metrics"] == {"average_precision": 0.81}
    assert document["rollout"]["min_canary_requests"] == "1000"  # int64 as a string
    assert document["signature"] == "AAH+/w=="  # base64


def test_hand_written_kcat_line_is_accepted() -> None:
    tx = events.decode_transaction(KCAT_LINE, now=NOW)
    assert (tx.transaction_id, tx.card_id, tx.terminal_id) == ("t1", "c1", "m1")
    assert tx.amount == 12.5
    assert tx.currency == "EUR"
    assert tx.channel == events_pb2.CHANNEL_UNSPECIFIED
    assert tx.event_time.ToJsonString() == "2026-11-26T10:00:00Z"


def test_quoted_numbers_enum_numbers_and_offsets_are_accepted_as_the_mapping_allows() -> None:
    payload = tx_payload(amount="12.5", channel=3, event_time="2026-11-26T11:00:00+01:00")
    tx = events.decode_transaction(payload, now=NOW)
    assert tx.amount == 12.5
    assert tx.channel == events_pb2.CHANNEL_ECOMMERCE
    assert tx.event_time.ToJsonString() == "2026-11-26T10:00:00Z"


def test_decoders_cover_every_topic() -> None:
    assert set(events.DECODERS) == {
        "transactions",
        "labels",
        "features",
        "scores",
        "retrain-requests",
        "model-updates",
    }
    with pytest.raises(TypeError):
        events.DECODERS["transactions"] = events.decode_label  # type: ignore[index]


# --- transaction rejections ------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param(tx_payload(card_id=None), "card_id", id="missing-card-id"),
        pytest.param(tx_payload(card_id=""), "card_id", id="empty-card-id"),
        pytest.param(tx_payload(transaction_id=None), "transaction_id", id="missing-tx-id"),
        pytest.param(tx_payload(terminal_id="m 1"), "terminal_id", id="whitespace-in-id"),
        pytest.param(tx_payload(terminal_id="m\u00001"), "terminal_id", id="control-char-in-id"),
        pytest.param(tx_payload(card_id="c" * 65), "card_id", id="id-too-long"),
        pytest.param(tx_payload(amount=-0.01), "amount", id="negative-amount"),
        pytest.param(tx_payload(amount="NaN"), "amount", id="nan-amount"),
        pytest.param(tx_payload(amount="Infinity"), "amount", id="infinite-amount"),
        pytest.param(tx_payload(amount="-Infinity"), "amount", id="minus-infinite-amount"),
        pytest.param(tx_payload(amount=1e9 + 1), "amount", id="amount-too-large"),
        pytest.param(tx_payload(amount="abc"), "amount", id="amount-wrong-type"),
        pytest.param(tx_payload(amount={"value": 1}), "amount", id="amount-as-object"),
        pytest.param(tx_payload(amount=[12.5]), "amount", id="amount-as-array"),
        pytest.param(tx_payload(amount=True), "amount", id="amount-as-boolean"),
        pytest.param(tx_payload(amount="1_000"), "amount", id="amount-python-float-syntax"),
        pytest.param(tx_payload(amount="inf"), "amount", id="amount-python-inf-spelling"),
        pytest.param(tx_payload(currency=None), "currency", id="missing-currency"),
        pytest.param(tx_payload(currency="XXY"), "currency", id="unknown-currency"),
        pytest.param(tx_payload(currency="eur"), "currency", id="lower-case-currency"),
        pytest.param(tx_payload(merchant_category="541"), "merchant_category", id="short-mcc"),
        pytest.param(tx_payload(country="ZZ"), "country", id="unknown-country"),
        pytest.param(tx_payload(channel="CHANNEL_TELEPATHY"), "channel", id="unknown-channel"),
        pytest.param(tx_payload(channel=42), "channel", id="undefined-channel-number"),
        pytest.param(tx_payload(channel=True), "channel", id="channel-as-boolean"),
        pytest.param(tx_payload(event_time=None), "event_time", id="missing-event-time"),
        pytest.param(
            tx_payload(event_time="2026-11-26T11:05:00Z"), "event_time", id="event-time-1h-ahead"
        ),
        pytest.param(
            tx_payload(event_time="1999-12-31T23:59:59Z"), "event_time", id="event-time-before-2000"
        ),
        pytest.param(
            tx_payload(event_time="26/11/2026"), "event_time", id="event-time-not-rfc3339"
        ),
        pytest.param(tx_payload(event_time=1764151200), "event_time", id="event-time-as-number"),
        pytest.param(tx_payload(card_id=1234), "card_id", id="card-id-as-number"),
        pytest.param(tx_payload(card_id="4111111111111111"), "card_id", id="pan-card-id"),
        pytest.param(tx_payload(card_id="4111-1111-1111-1111"), "card_id", id="pan-with-dashes"),
        pytest.param(tx_payload(card_id="378282246310005"), "card_id", id="15-digit-amex-pan"),
        pytest.param(tx_payload(merchant_name="Shop"), "merchant_name", id="unknown-field"),
        pytest.param(b'{"transaction_id": "t1",', "<payload>", id="bad-json"),
        pytest.param(b"", "<payload>", id="empty-payload"),
        pytest.param(b"[" + KCAT_LINE + b"]", "<payload>", id="json-array"),
        pytest.param(b'"t1"', "<payload>", id="json-string"),
        pytest.param(b"null", "<payload>", id="json-null"),
        pytest.param(b"\xff\xfe{}", "<payload>", id="not-utf8"),
        pytest.param(b'{"card_id":"a","card_id":"b"}', "<payload>", id="duplicate-key"),
        pytest.param(b"[" * 100_000, "<payload>", id="deeply-nested"),
    ],
)
def test_invalid_transaction_names_the_field(payload: bytes, field: str) -> None:
    assert rejected_field(events.decode_transaction, payload) == field


def test_pan_rejection_mentions_tokens_and_does_not_echo_the_number() -> None:
    with pytest.raises(InvalidEvent) as caught:
        events.decode_transaction(tx_payload(card_id="4111111111111111"), now=NOW)
    assert "PAN" in caught.value.reason and "token" in caught.value.reason
    assert "4111" not in str(caught.value)


def test_digit_tokens_that_fail_luhn_are_not_pans() -> None:
    tx = events.decode_transaction(tx_payload(card_id="4111111111111112"), now=NOW)
    assert tx.card_id == "4111111111111112"


def test_unknown_field_error_says_so() -> None:
    with pytest.raises(InvalidEvent) as caught:
        events.decode_transaction(tx_payload(merchant_name="Shop"), now=NOW)
    assert caught.value.reason == "unknown field"


def test_future_skew_is_configurable() -> None:
    payload = tx_payload(event_time="2026-11-26T11:05:00Z")
    tx = events.decode_transaction(payload, now=NOW, max_future_skew=timedelta(hours=1))
    assert tx.event_time.ToJsonString() == "2026-11-26T11:05:00Z"
    events.decode_transaction(tx_payload(event_time="2026-11-26T10:10:00Z"), now=NOW)


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        events.decode_transaction(KCAT_LINE, now=datetime(2026, 11, 26, 10, 5))


def test_validators_check_messages_built_in_code() -> None:
    tx = full_messages()["transactions"]
    events.validate_transaction(tx, now=NOW)
    tx.amount = float("nan")
    with pytest.raises(InvalidEvent) as caught:
        events.validate_transaction(tx, now=NOW)
    assert caught.value.field == "amount"


# --- other message types -----------------------------------------------------------


def reencoded(topic: str, **changes: object) -> bytes:
    """A valid message of the topic, with JSON keys replaced (None removes a key)."""
    document = json.loads(events.encode(full_messages()[topic]))
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("topic", "changes", "field"),
    [
        ("labels", {"transaction_id": None}, "transaction_id"),
        ("labels", {"event_time": None}, "event_time"),
        ("labels", {"label_time": None}, "label_time"),
        ("labels", {"label_time": "2026-11-19T10:00:00Z"}, "label_time"),
        ("labels", {"label_time": "2026-11-27T10:00:00Z"}, "label_time"),
        ("labels", {"card_id": "4111111111111111"}, "card_id"),
        ("labels", {"is_fraud": "yes"}, "is_fraud"),
        ("features", {"entity_type": "merchant"}, "entity_type"),
        ("features", {"entity_id": None}, "entity_id"),
        ("features", {"event_time": None}, "event_time"),
        ("features", {"feature_set_version": None}, "feature_set_version"),
        ("features", {"values": {"tx_count_7d": "NaN"}}, "values[tx_count_7d]"),
        ("features", {"values": {"tx_count_7d": "many"}}, "values[tx_count_7d]"),
        ("features", {"values": [1.0]}, "values"),
        ("scores", {"transaction_id": None}, "transaction_id"),
        ("scores", {"card_id_hash": None}, "card_id_hash"),
        ("scores", {"card_id_hash": "4111111111111111"}, "card_id_hash"),
        ("scores", {"score": 1.5}, "score"),
        ("scores", {"score": "NaN"}, "score"),
        ("scores", {"decision": 9}, "decision"),
        ("scores", {"reason_codes": [{"code": "X", "weight": 1}]}, "reason_codes[0].weight"),
        ("scores", {"reason_codes": [{"contribution": "big"}]}, "reason_codes[0].contribution"),
        ("retrain-requests", {"model_name": None}, "model_name"),
        ("retrain-requests", {"reason": None}, "reason"),
        ("retrain-requests", {"reason": "RETRAIN_REASON_UNSPECIFIED"}, "reason"),
        ("retrain-requests", {"window_end": "2026-11-18T00:00:00Z"}, "window_end"),
        ("retrain-requests", {"evidence": [{"p_value": 2}]}, "evidence[0].p_value"),
        ("retrain-requests", {"evidence": [{"window_rows": "1.5"}]}, "evidence[0].window_rows"),
        ("model-updates", {"model_name": None}, "model_name"),
        ("model-updates", {"version": None}, "version"),
        ("model-updates", {"sha256": None}, "sha256"),
        ("model-updates", {"sha256": "AB" * 32}, "sha256"),
        ("model-updates", {"sha256": "ab" * 31}, "sha256"),
        ("model-updates", {"rollout": {"canary_weight": 1.5}}, "rollout.canary_weight"),
        ("model-updates", {"rollout": {"canary_weight": "x"}}, "rollout.canary_weight"),
        ("model-updates", {"rollout": {"canary": 0.1}}, "rollout.canary"),
        ("model-updates", {"thresholds": {"review": 0.9, "decline": 0.5}}, "thresholds.decline"),
        ("model-updates", {"metrics": {"auc": "-Infinity"}}, "metrics[auc]"),
    ],
)
def test_invalid_event_names_the_field(topic: str, changes: dict[str, object], field: str) -> None:
    assert rejected_field(events.DECODERS[topic], reencoded(topic, **changes)) == field


def test_model_version_without_artifact_needs_no_sha256() -> None:
    payload = reencoded("model-updates", artifact_uri=None, sha256=None)
    assert events.decode_model_version(payload, now=NOW).sha256 == ""


def test_feature_row_for_terminal_is_accepted() -> None:
    row = events.decode_feature_row(reencoded("features", entity_type="terminal"), now=NOW)
    assert row.entity_type == "terminal"
