"""The registry's catalog: every model version, its record, status, history and role.

Kernel: no I/O. :class:`Catalog` folds ``model-updates`` records in log order. Per
version it keeps the latest full record (what a transition must carry forward) and
the transitions the log still holds: compaction keeps only the latest record per
version, so after a compaction the history of an old version may be one line.
Roles (champion, canary, shadows, last good) come from the same
:class:`~services.registry.rollout.RegistryView` fold the scorers route by, so
``riskstream models`` never disagrees with the fleet.

A version's *recorded* status is its latest record's. Its *status* as shown to
people is the role it plays now when it plays one (``champion``, ``canary``,
``shadow``); a version whose latest record put it into traffic but which has since
lost the role (a champion replaced by a newer one, a canary replaced by another) is
``retired`` (the previous champion stays loaded as *last good*, see :attr:`role`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from riskstream.v1 import events_pb2
from services.registry.model_card import ModelCard
from services.registry.rollout import RegistryView, RolloutState, VersionRecord

#: Roles a version can play in a model's rollout.
CHAMPION_ROLE, CANARY_ROLE, SHADOW_ROLE, LAST_GOOD_ROLE = (
    "champion",
    "canary",
    "shadow",
    "last_good",
)
RETIRED = "retired"


def status_name(status: int) -> str:
    """``MODEL_STATUS_CANARY`` → ``"canary"``.

    Examples:
        >>> status_name(events_pb2.MODEL_STATUS_ARCHIVED)
        'archived'
    """
    name: str = events_pb2.ModelStatus.Name(status)
    return name.removeprefix("MODEL_STATUS_").lower()


def _iso(stamp: Timestamp, present: bool) -> str:
    if not present:
        return ""
    return stamp.ToDatetime(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Transition:
    """One record of a version, as the log still holds it.

    Attributes:
        status: the recorded status (``"canary"``).
        reason: why the status changed.
        at: ISO-8601 UTC transition time ("" when the record has none).
        approved_by: who had approved the version by then ("" when nobody).
    """

    status: str
    reason: str
    at: str
    approved_by: str


@dataclass(frozen=True)
class VersionEntry:
    """One version of a model, as of the catalog's last applied record.

    Attributes:
        model_name: the model.
        version: the version.
        record: its latest full ``ModelVersion`` record (never mutate it; build
            transitions with :func:`services.registry.transitions.transition`).
        history: its transitions in log order, oldest first.
        role: ``champion``, ``canary``, ``shadow``, ``last_good`` or None.
        position: log position of its first record (orders versions of equal age).
    """

    model_name: str
    version: str
    record: events_pb2.ModelVersion
    history: tuple[Transition, ...]
    role: str | None
    position: int

    @property
    def recorded_status(self) -> str:
        """The status of the latest record (``"champion"`` even when since replaced)."""
        return status_name(self.record.status)

    @property
    def status(self) -> str:
        """What the version is now: its live role, else its recorded status or ``retired``."""
        if self.role in (CHAMPION_ROLE, CANARY_ROLE, SHADOW_ROLE):
            return self.role
        if self.record.status in (
            events_pb2.MODEL_STATUS_CHAMPION,
            events_pb2.MODEL_STATUS_CANARY,
            events_pb2.MODEL_STATUS_SHADOW,
        ):
            return RETIRED
        return self.recorded_status

    @property
    def created_at(self) -> str:
        """ISO-8601 UTC creation time ("" when the record has none)."""
        return _iso(self.record.created_at, self.record.HasField("created_at"))

    @property
    def created_time(self) -> datetime | None:
        """The creation time (None when the record has none)."""
        if not self.record.HasField("created_at"):
            return None
        when: datetime = self.record.created_at.ToDatetime(UTC)
        return when

    @property
    def reason(self) -> str:
        """The latest transition's reason."""
        return str(self.record.transition_reason)

    @property
    def approved_by(self) -> str:
        """Who approved the version ("" when nobody has)."""
        return str(self.record.approved_by)

    @property
    def high_impact(self) -> bool:
        """Whether the version needs an admin approval past canary."""
        return bool(self.record.rollout.high_impact)

    def card(self) -> ModelCard | None:
        """The model card of the record (None when it carries none).

        Raises:
            InvalidModelCard: the record's card is malformed; the error names the field.
        """
        if not self.record.model_card_json:
            return None
        return ModelCard.from_json(self.record.model_card_json)


@dataclass(frozen=True)
class ModelEntry:
    """One model: its rollout and its versions in order of first appearance."""

    model_name: str
    rollout: RolloutState
    versions: tuple[VersionEntry, ...]

    def version(self, version: str) -> VersionEntry | None:
        """The entry of ``version`` (None when the log has no record of it)."""
        return next((v for v in self.versions if v.version == version), None)


class Catalog:
    """Folds ``model-updates`` records, in log order, into models and versions.

    Examples:
        >>> def rec(version, status, reason):
        ...     return events_pb2.ModelVersion(model_name="m", version=version,
        ...         status=status, transition_reason=reason, metrics={"roc_auc": 0.9})
        >>> catalog = Catalog()
        >>> catalog.apply([
        ...     rec("v1", events_pb2.MODEL_STATUS_CHAMPION, "first"),
        ...     rec("v2", events_pb2.MODEL_STATUS_CANARY, "published"),
        ...     rec("v2", events_pb2.MODEL_STATUS_CHAMPION, "promoted"),
        ... ])
        >>> model = catalog.model("m")
        >>> [(v.version, v.status, v.role) for v in model.versions]
        [('v1', 'retired', 'last_good'), ('v2', 'champion', 'champion')]
        >>> [t.status for t in model.version("v2").history]
        ['canary', 'champion']
    """

    def __init__(self) -> None:
        self._views: dict[str, RegistryView] = {}
        self._latest: dict[tuple[str, str], events_pb2.ModelVersion] = {}
        self._history: dict[tuple[str, str], list[Transition]] = {}
        self._first: dict[tuple[str, str], int] = {}
        self._seen = 0

    def apply(self, records: Iterable[events_pb2.ModelVersion]) -> None:
        """Apply records in log order (records without a model or version are ignored)."""
        for record in records:
            if not record.model_name or not record.version:
                continue
            key = (record.model_name, record.version)
            view = self._views.setdefault(record.model_name, RegistryView(record.model_name))
            view.apply([VersionRecord.from_event(record)])
            latest = events_pb2.ModelVersion()
            latest.CopyFrom(record)  # a private copy: callers may reuse their message
            self._latest[key] = latest
            self._first.setdefault(key, self._seen)
            self._seen += 1
            self._history.setdefault(key, []).append(
                Transition(
                    status=status_name(record.status),
                    reason=record.transition_reason,
                    at=_iso(record.transition_time, record.HasField("transition_time")),
                    approved_by=record.approved_by,
                )
            )

    @property
    def model_names(self) -> tuple[str, ...]:
        """Every model with a record, sorted."""
        return tuple(sorted(self._views))

    def model(self, model_name: str) -> ModelEntry | None:
        """A read-only view of one model (None when the log has no record of it)."""
        view = self._views.get(model_name)
        if view is None:
            return None
        state = view.state
        roles = {v: SHADOW_ROLE for v in state.shadows}
        for version, role in (
            (state.last_good, LAST_GOOD_ROLE),
            (state.canary, CANARY_ROLE),
            (state.champion, CHAMPION_ROLE),
        ):
            if version:
                roles[version] = role
        versions = [
            VersionEntry(
                model_name=model_name,
                version=version,
                record=record,
                history=tuple(self._history[(model_name, version)]),
                role=roles.get(version),
                position=self._first[(model_name, version)],
            )
            for (model, version), record in self._latest.items()
            if model == model_name
        ]
        versions.sort(key=lambda v: v.position)
        return ModelEntry(model_name=model_name, rollout=state, versions=tuple(versions))
