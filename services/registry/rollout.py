"""Which version plays which role, derived from the ``model-updates`` event log.

The log holds one record per transition (key ``model/version``); replayed in order,
the records give the desired rollout: the latest CHAMPION record names the champion
(the one it replaced becomes *last good*, the rollback target), a CANARY record sets
the canary and its weight, SHADOW records add shadows, and REJECTED / ARCHIVED /
CANDIDATE records take a version out of traffic (an archived champion hands the role
back to the last good version). Applying the same record twice changes nothing, so
a scorer may apply its own admin changes at once and again when they come back from
the log.

Kernel: no I/O. The scorer's pool and the registry's catalog both fold with
:class:`RegistryView`, so "who is champion" has one definition. A
:class:`VersionRecord` keeps the full ``ModelVersion`` it was read from
(:attr:`VersionRecord.event`), because ``model-updates`` is compacted per version:
a transition must republish the version's whole record (card, metrics, plan), which
:meth:`VersionRecord.to_event` does through
:func:`services.registry.transitions.transition`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from riskstream.v1 import events_pb2
from services.registry.transitions import transition

CHAMPION = events_pb2.MODEL_STATUS_CHAMPION
CANARY = events_pb2.MODEL_STATUS_CANARY
SHADOW = events_pb2.MODEL_STATUS_SHADOW
OUT_OF_TRAFFIC = {
    events_pb2.MODEL_STATUS_REJECTED,
    events_pb2.MODEL_STATUS_ARCHIVED,
    events_pb2.MODEL_STATUS_CANDIDATE,
}


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """The parts of a ``ModelVersion`` record the rollout needs, and the record itself.

    Attributes:
        event: the full record this one was read from (None for records built by
            hand, e.g. in tests). Never mutated; left out of equality and hashing
            (protobuf messages are mutable and unhashable).

    Examples:
        >>> event = events_pb2.ModelVersion(model_name="m", version="v2",
        ...     status=CANARY, model_card_json='{"owner": "risk-ml"}')
        >>> event.rollout.canary_weight = 0.1
        >>> record = VersionRecord.from_event(event)
        >>> record.status == CANARY, record.canary_weight
        (True, 0.1)
        >>> promoted = replace(record, status=CHAMPION, reason="promoted").to_event()
        >>> promoted.status == CHAMPION, promoted.model_card_json, promoted.transition_reason
        (True, '{"owner": "risk-ml"}', 'promoted')
    """

    model_name: str
    version: str
    status: int
    artifact_uri: str = ""
    sha256: str = ""
    signature: bytes = b""
    canary_weight: float = 0.0
    reason: str = ""
    event: events_pb2.ModelVersion | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_event(cls, event: events_pb2.ModelVersion) -> VersionRecord:
        """The rollout's view of a ``model-updates`` record (a private copy is kept)."""
        kept = events_pb2.ModelVersion()
        kept.CopyFrom(event)
        return cls(
            model_name=event.model_name,
            version=event.version,
            status=event.status,
            artifact_uri=event.artifact_uri,
            sha256=event.sha256,
            signature=event.signature,
            canary_weight=event.rollout.canary_weight,
            reason=event.transition_reason,
            event=kept,
        )

    def to_event(self, *, at: datetime | None = None) -> events_pb2.ModelVersion:
        """This record as a ``model-updates`` transition, carrying the full record forward.

        The status, reason and canary weight are this record's; everything else
        (artifact, signature, metrics, card, plan, approval) comes from :attr:`event`.

        Raises:
            InvalidEvent: the result breaks ``validate_model_version``'s rules.
        """
        base = self.event
        if base is None:
            base = events_pb2.ModelVersion(
                model_name=self.model_name,
                version=self.version,
                artifact_uri=self.artifact_uri,
                sha256=self.sha256,
                signature=self.signature,
            )
        return transition(
            base,
            self.status,
            self.reason,
            at=at,
            canary_weight=self.canary_weight,
        )


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Roles of the versions of one model.

    Attributes:
        champion: decides for every card not on the canary.
        canary: decides for ``canary_weight`` of the cards (sticky by card hash).
        canary_weight: 0..1.
        shadows: scored off the hot path, never decide.
        last_good: the champion before the current one (the rollback target).
    """

    champion: str | None = None
    canary: str | None = None
    canary_weight: float = 0.0
    shadows: tuple[str, ...] = ()
    last_good: str | None = None

    def versions(self) -> set[str]:
        """Every version this state needs loaded (the last good one too)."""
        named = {self.champion, self.canary, self.last_good, *self.shadows}
        return {v for v in named if v}


@dataclass
class RegistryView:
    """Folds records of one model into its desired :class:`RolloutState`.

    Examples:
        >>> view = RegistryView("m")
        >>> view.apply([VersionRecord("m", "v1", CHAMPION), VersionRecord("m", "v2", CANARY,
        ...     canary_weight=0.1)])
        >>> view.state.champion, view.state.canary, view.state.canary_weight
        ('v1', 'v2', 0.1)
        >>> view.apply([VersionRecord("m", "v2", CHAMPION)])
        >>> view.state.champion, view.state.canary, view.state.last_good
        ('v2', None, 'v1')
    """

    model_name: str
    state: RolloutState = field(default_factory=RolloutState)
    records: dict[str, VersionRecord] = field(default_factory=dict)

    def apply(self, records: Iterable[VersionRecord]) -> None:
        """Apply records in log order; records of other models are ignored."""
        for record in records:
            if record.model_name != self.model_name or not record.version:
                continue
            self.records[record.version] = record
            self.state = _next_state(self.state, record)


def _next_state(state: RolloutState, record: VersionRecord) -> RolloutState:
    v = record.version
    shadows = tuple(s for s in state.shadows if s != v)
    if record.status == CHAMPION:
        if state.champion == v:
            return replace(state, shadows=shadows)
        return RolloutState(
            champion=v,
            canary=None if state.canary == v else state.canary,
            canary_weight=0.0 if state.canary == v else state.canary_weight,
            shadows=shadows,
            last_good=state.champion or state.last_good,
        )
    if record.status == CANARY:
        if state.champion == v:
            return state
        return replace(
            state, canary=v, canary_weight=min(max(record.canary_weight, 0.0), 1.0), shadows=shadows
        )
    if record.status == SHADOW:
        if v in (state.champion, state.canary):
            return state
        return replace(state, shadows=(*shadows, v))
    if record.status in OUT_OF_TRAFFIC:
        next_state = replace(state, shadows=shadows)
        if state.canary == v:
            next_state = replace(next_state, canary=None, canary_weight=0.0)
        if state.champion == v:
            next_state = replace(next_state, champion=state.last_good, last_good=None)
        if state.last_good == v:
            next_state = replace(next_state, last_good=None)
        return next_state
    return state
