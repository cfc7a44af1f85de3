"""The drift monitor's Kafka adapters: retrain requests out, and its last one read back.

:class:`KafkaRetrainPublisher` translates a :class:`~services.drift.policy.RetrainDecision`
into a ``RetrainRequest`` (key = model name) and waits for the broker's
acknowledgement. :func:`last_request_ms` reads ``retrain-requests`` (one
partition, small) from its beginning and returns when this monitor last asked for
the model: the cool-down survives a restart without any local state.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException

from riskstream.v1 import events_pb2
from services.common.errors import InvalidEvent
from services.common.events import decode_retrain_request, encode
from services.common.kafka import (
    EventProducer,
    KafkaClientSettings,
    assign_from,
    whole_log_consumer,
)
from services.drift.policy import RetrainDecision

log = logging.getLogger(__name__)

#: ``requested_by`` of the monitor's requests (how it finds its own).
REQUESTED_BY = "drift-monitor"

_REASONS = {
    "feature_drift": events_pb2.RETRAIN_REASON_FEATURE_DRIFT,
    "performance_decay": events_pb2.RETRAIN_REASON_PERFORMANCE_DECAY,
    "staleness": events_pb2.RETRAIN_REASON_STALENESS,
}


def retrain_request(decision: RetrainDecision) -> events_pb2.RetrainRequest:
    """The wire form of a decision.

    Examples:
        >>> from services.drift.policy import Evidence
        >>> d = RetrainDecision("r1", "m", "v1", "feature_drift",
        ...     (Evidence("tx_amount", "ks", 0.3, 1e-9, 0.8, 10_000),),
        ...     1_700_000_000_000, 1_700_000_060_000, 1_700_000_061_000)
        >>> r = retrain_request(d)
        >>> r.reason == events_pb2.RETRAIN_REASON_FEATURE_DRIFT, r.evidence[0].feature
        (True, 'tx_amount')
        >>> decode_retrain_request(encode(r)).request_id  # passes the topic's validation
        'r1'
    """
    request = events_pb2.RetrainRequest(
        request_id=decision.request_id,
        model_name=decision.model_name,
        reason=_REASONS[decision.reason],
        champion_version=decision.champion_version,
        requested_by=REQUESTED_BY,
    )
    for e in decision.evidence:
        request.evidence.add(
            feature=e.feature, test=e.test, statistic=e.statistic, p_value=e.p_value,
            psi=e.psi, window_rows=e.window_rows,
        )  # fmt: skip
    if decision.window_start_ms and decision.window_end_ms >= decision.window_start_ms:
        request.window_start.FromMilliseconds(decision.window_start_ms)
    if decision.window_end_ms:
        request.window_end.FromMilliseconds(decision.window_end_ms)
    request.requested_at.FromMilliseconds(decision.requested_at_ms)
    return request


class KafkaRetrainPublisher:
    """Publishes retrain requests and waits for each acknowledgement.

    Args:
        producer: the idempotent producer.
        topic: ``retrain-requests``.
    """

    def __init__(self, producer: EventProducer, *, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    def publish(self, decision: RetrainDecision) -> None:
        """Send one request.

        Raises:
            KafkaDeliveryError: the broker did not acknowledge it.
        """
        request = retrain_request(decision)
        self._producer.send(self._topic, encode(request), key=request.model_name)
        self._producer.flush(30.0)


def last_request_ms(
    settings: KafkaClientSettings, topic: str, model_name: str, *, timeout_s: float = 15.0
) -> int | None:
    """When this monitor last asked to retrain ``model_name`` (None: never, or unreadable).

    An unreadable topic is logged and treated as "never": the monitor then relies
    on the trainer's own duplicate check of request ids.
    """
    consumer = whole_log_consumer(settings, "drift-last-request")
    latest: int | None = None
    try:
        ends = assign_from(consumer, topic, timeout_s=timeout_s)
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.25):
                if message.error() is not None:
                    continue
                partition, offset, value = message.partition(), message.offset(), message.value()
                if value is not None:
                    try:
                        request = decode_retrain_request(value)
                    except InvalidEvent:
                        request = None
                    if (
                        request is not None
                        and request.model_name == model_name
                        and request.requested_by == REQUESTED_BY
                        and request.HasField("requested_at")
                    ):
                        at = request.requested_at.ToMilliseconds()
                        latest = at if latest is None else max(latest, at)
                if partition in ends and offset is not None and offset + 1 >= ends[partition]:
                    del ends[partition]
    except KafkaException as exc:
        log.warning("%s unreadable (%s): no cool-down carried over", topic, exc)
    finally:
        consumer.close()
    return latest
