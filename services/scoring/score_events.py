"""Score events for the ``scores`` topic: the decision record, encoded off the hot path.

Encoded straight to the protobuf JSON mapping (snake_case names, enum names, RFC
3339 timestamps) with :func:`json.dumps` — several times cheaper than building the
message and running ``json_format`` — and proved equal to the message by a test
that decodes it with the topic's own decoder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from riskstream.v1 import events_pb2
from services.scoring.reasons import Reason

_DECISIONS = {v.number: v.name for v in events_pb2.Decision.DESCRIPTOR.values}
_ROUTES = {v.number: v.name for v in events_pb2.Route.DESCRIPTOR.values}


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """One decision, as the audit trail and the drift monitor need it (no raw card id).

    Attributes:
        transaction_id: the scored transaction.
        card_id_hash: keyed hash of the card id.
        terminal_id: the terminal.
        event_time_ms: the transaction's event time.
        scored_at_ms: when the scorer answered.
        amount: the transaction amount.
        feature_names: the model's input names, in its order.
        feature_values: the model's input row (the same list the model scored; the
            name → value map is built when the event is encoded, off the hot path).
        feature_set_version: the definitions behind ``features``.
        score: the calibrated score (the rule score on a fallback).
        decision: ``riskstream.v1.Decision`` value.
        model_name: the model.
        model_version: the deciding (or shadow) version; on a fallback, the version
            that failed (``model_error``) or empty.
        route: ``riskstream.v1.Route`` value.
        reasons: reason codes when they were computed.
        latency_ms: server-side time to decide.
        feature_age_ms: age of the card's stored features (-1 when none).
        fallback_reason: why rules decided.
    """

    transaction_id: str
    card_id_hash: str
    terminal_id: str
    event_time_ms: int
    scored_at_ms: int
    amount: float
    feature_names: tuple[str, ...]
    feature_values: Sequence[float]
    feature_set_version: str
    score: float
    decision: int
    model_name: str
    model_version: str
    route: int
    reasons: tuple[Reason, ...] = field(default=())
    latency_ms: float = 0.0
    feature_age_ms: float = -1.0
    fallback_reason: str = ""

    @property
    def features(self) -> Mapping[str, float]:
        """The model inputs by name; missing (non-finite) values are left out."""
        return {
            n: v
            for n, v in zip(self.feature_names, self.feature_values, strict=True)
            if math.isfinite(v)
        }


def _timestamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _number(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def encode_score_event(record: ScoreRecord) -> bytes:
    """The record in the ``scores`` topic's JSON mapping.

    Examples:
        >>> from services.common.events import decode_score_event
        >>> rec = ScoreRecord("tx1", "ab12", "t1", 1_700_000_000_000, 1_700_000_000_005,
        ...     12.5, ("tx_amount",), [12.5], "fs-1", 0.25, 1, "m", "v1", 1)
        >>> ev = decode_score_event(encode_score_event(rec))
        >>> ev.model_version, ev.features["tx_amount"], ev.event_time.ToMilliseconds()
        ('v1', 12.5, 1700000000000)
    """
    doc: dict[str, object] = {
        "transaction_id": record.transaction_id,
        "card_id_hash": record.card_id_hash,
        "terminal_id": record.terminal_id,
        "event_time": _timestamp(record.event_time_ms),
        "scored_at": _timestamp(record.scored_at_ms),
        "features": record.features,
        "feature_set_version": record.feature_set_version,
        "score": _number(record.score),
        "decision": _DECISIONS[record.decision],
        "model_name": record.model_name,
        "model_version": record.model_version,
        "route": _ROUTES[record.route],
        "reason_codes": [
            {
                "code": r.code,
                "feature": r.feature,
                "contribution": _number(r.contribution),
                "description": r.description,
            }
            for r in record.reasons
        ],
        "latency_ms": _number(record.latency_ms),
        "feature_age_ms": _number(record.feature_age_ms),
        "fallback_reason": record.fallback_reason,
        "amount": _number(record.amount),
    }
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
