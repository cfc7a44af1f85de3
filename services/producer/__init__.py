"""Producer: simulated and replayed card transactions, with their delayed labels.

Two sources, both pure kernels with no Kafka or network code:

* :class:`TransactionSimulator` generates an endless, seeded stream following the
  Fraud Detection Handbook's process (customers, terminals, fraud scenarios, label
  delay, drift injection), configured by one :class:`SimulatorConfig`;
* :func:`replay_csv` streams a recorded dataset in the handbook's CSV format (such as
  ``shared/data/fdh/transactions.csv.gz``), gzip or plain, in constant memory.

Both give a one-pass :class:`SimulatedStream` of items in non-decreasing ``emit_at``
order: :class:`SimulatedEvent` (a ``Transaction`` at its event time, or a ``Label`` at
event time plus the label delay) and, from the replayer only, :class:`RejectedRow` for
input lines that could not be parsed. :class:`Pacer` says how long to wait before each
item.

How the Kafka wiring uses it (the only place that sleeps or talks to Kafka)::

    from google.protobuf import json_format

    stream = TransactionSimulator(config).stream()   # or replay_csv(path, ...)
    pacer = Pacer.parse(args.rate)                    # "max-rate", "60x", "500/s"
    for item in stream:
        if isinstance(item, RejectedRow):             # topic "transactions.dlq"
            send(item.topic, key=None, value=item.raw.encode(), reason=item.reason)
            continue
        time.sleep(pacer.delay(item.emit_at, time.monotonic()))
        value = json_format.MessageToJson(
            item.message, preserving_proto_field_name=True, indent=None
        )
        send(item.topic, key=item.key, value=value.encode())

``item.topic`` is ``"transactions"`` with key = ``card_id`` for transactions and
``"labels"`` with key = ``transaction_id`` for labels, as in the topic table of
ARCHITECTURE.md; ``item.message`` is the protobuf message. Items come in
non-decreasing ``emit_at`` order, so pacing by ``emit_at`` replays event time; a
finite stream ends with the labels still pending, whose ``emit_at`` lies after the
last transaction's. Labels carry ``label_time`` = event time + delay, which for a
simulation placed near the present lies in the future.

Errors: configuration problems raise :class:`~services.common.errors.ConfigError`
naming the field; an input file that cannot be replayed at all (unreadable, header
without the required columns) raises :class:`ReplayError`.
"""

from services.producer.config import SimulatorConfig
from services.producer.errors import ReplayError
from services.producer.events import (
    DLQ_TOPIC,
    LABELS_TOPIC,
    TRANSACTIONS_TOPIC,
    LabelledTransaction,
    RejectedRow,
    SimulatedEvent,
    SimulatedStream,
    merge_labels,
)
from services.producer.pacing import Pacer
from services.producer.replay import read_fdh_csv, replay_csv
from services.producer.scenarios import SCENARIO_NAMES
from services.producer.simulator import TransactionSimulator

__all__ = [
    "DLQ_TOPIC",
    "LABELS_TOPIC",
    "SCENARIO_NAMES",
    "TRANSACTIONS_TOPIC",
    "LabelledTransaction",
    "Pacer",
    "RejectedRow",
    "ReplayError",
    "SimulatedEvent",
    "SimulatedStream",
    "SimulatorConfig",
    "TransactionSimulator",
    "merge_labels",
    "read_fdh_csv",
    "replay_csv",
]
