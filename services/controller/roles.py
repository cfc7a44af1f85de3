"""Champion, canary and every version's full record, folded from ``model-updates``.

Kernel: no I/O. Who plays which role, and each version's latest full record (which
a transition must carry forward, :func:`services.registry.transitions.transition`),
come from the registry's own fold (:class:`RegistryView`), the one the scorers
use, so the controller and the fleet never disagree on the canary. Beside it this
keeps when the current canary started: the transition time of the record that made
it the canary. Later records of the same canary (an approval, a new weight) keep
that start, so an approval does not throw the evidence away.
"""

from __future__ import annotations

from riskstream.v1 import events_pb2
from services.controller.comparison import Rollout
from services.registry.rollout import RegistryView, RolloutState, VersionRecord


class VersionRoles:
    """The rollout of one model, from its registry records in log order.

    Args:
        model_name: the model; records of other models are ignored.

    Examples:
        >>> from google.protobuf.timestamp_pb2 import Timestamp
        >>> def rec(version, status, at_s, weight=0.0):
        ...     r = events_pb2.ModelVersion(model_name="m", version=version, status=status,
        ...         transition_time=Timestamp(seconds=at_s))
        ...     r.rollout.canary_weight = weight
        ...     return r
        >>> roles = VersionRoles("m")
        >>> roles.update(rec("v1", events_pb2.MODEL_STATUS_CHAMPION, 100))
        >>> roles.update(rec("v2", events_pb2.MODEL_STATUS_CANARY, 200, 0.1))
        >>> roles.update(rec("v2", events_pb2.MODEL_STATUS_CANARY, 300, 0.1))  # approval
        >>> roles.rollout()
        Rollout(champion='v1', canary='v2', canary_weight=0.1, started_ms=200000)
        >>> roles.update(rec("v2", events_pb2.MODEL_STATUS_REJECTED, 400))
        >>> roles.rollout() is None, roles.state.champion
        (True, 'v1')
    """

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._view = RegistryView(model_name)
        self._canary_since_ms = 0

    @property
    def state(self) -> RolloutState:
        """The current roles."""
        return self._view.state

    def record(self, version: str) -> events_pb2.ModelVersion | None:
        """The latest full record of ``version``."""
        kept = self._view.records.get(version)
        return kept.event if kept is not None else None

    def update(self, record: events_pb2.ModelVersion) -> None:
        """Apply one ``model-updates`` record."""
        if record.model_name != self.model_name or not record.version:
            return
        before = self._view.state.canary
        self._view.apply([VersionRecord.from_event(record)])
        after = self._view.state.canary
        if after is not None and after != before:
            self._canary_since_ms = record.transition_time.ToMilliseconds()

    def rollout(self) -> Rollout | None:
        """The comparison to run: None unless there is both a champion and a canary."""
        state = self._view.state
        if state.champion is None or state.canary is None or state.canary_weight <= 0:
            return None
        return Rollout(state.champion, state.canary, state.canary_weight, self._canary_since_ms)
