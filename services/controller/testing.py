"""In-memory fakes of the controller's adapters, for tests of the loop without Kafka."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from riskstream.v1 import events_pb2
from services.controller.baseline import Baseline
from services.controller.comparison import Scored
from services.controller.precision import Labelled


class ListRegistryLog:
    """A registry log fed by the test; caught up from the start."""

    caught_up = True

    def __init__(self, records: Iterable[events_pb2.ModelVersion] = ()) -> None:
        self.pending = list(records)

    def poll(self, timeout_s: float) -> list[events_pb2.ModelVersion]:
        """Everything added since the last poll."""
        out, self.pending = self.pending, []
        return out


class ListDecisionStream:
    """Score events and labels fed by the test, filtered by the start time asked for."""

    def __init__(self, items: Iterable[Scored | Labelled] = ()) -> None:
        self.items = list(items)
        self.started_at: list[int] = []
        self._from: int | None = None

    def start_at(self, at_ms: int) -> None:
        """Deliver (again) every item scored at or after ``at_ms``, and every label."""
        self.started_at.append(at_ms)
        self._from = at_ms
        self._cursor = 0

    def stop(self) -> None:
        """Deliver nothing until the next start."""
        self._from = None

    def poll(self, timeout_s: float) -> list[Scored | Labelled]:
        """Items not delivered since the last start."""
        if self._from is None:
            return []
        start = self._from
        fresh = self.items[self._cursor :]
        self._cursor = len(self.items)
        return [i for i in fresh if isinstance(i, Labelled) or i.at_ms >= start]


class ListPublisher:
    """Keeps what the controller publishes."""

    def __init__(self) -> None:
        self.published: list[events_pb2.ModelVersion] = []

    def publish(self, event: events_pb2.ModelVersion) -> None:
        """Keep ``event``."""
        self.published.append(event)


class StaticBaselines:
    """Baselines given by the test; a version it does not name has no reference."""

    def __init__(self, baselines: Mapping[str, Baseline] | None = None) -> None:
        self.baselines = dict(baselines or {})
        self.loaded: list[str] = []

    def load(self, record: events_pb2.ModelVersion) -> Baseline:
        """The given baseline, else one from the record's metrics alone."""
        self.loaded.append(record.version)
        found = self.baselines.get(record.version)
        if found is not None:
            return found
        return Baseline.of(record.version, dict(record.metrics), missing="no reference (test)")
