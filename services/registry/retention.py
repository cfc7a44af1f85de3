"""Which old model versions to archive, and archiving them.

Kernel: no I/O (publishing goes through the :class:`ModelVersionPublisher` passed
in). A model keeps, out of the archive, every version the rollout needs — the
champion, the last good version (the rollback target), the canary and the shadows
— and the ``keep`` newest of the others (newest by creation time, then by first
appearance in the log). Versions already archived or rejected are left as they are:
archiving them again would only add records. Archiving is a transition like any
other, so the archived version's record keeps its card and metrics.
"""

from __future__ import annotations

from datetime import UTC, datetime

from riskstream.v1 import events_pb2
from services.registry.catalog import Catalog, ModelEntry, VersionEntry
from services.registry.transitions import ModelVersionPublisher, transition

ARCHIVED = events_pb2.MODEL_STATUS_ARCHIVED
_SETTLED = (events_pb2.MODEL_STATUS_ARCHIVED, events_pb2.MODEL_STATUS_REJECTED)
_UNDATED = datetime.min.replace(tzinfo=UTC)


def versions_to_archive(model: ModelEntry, keep: int) -> tuple[str, ...]:
    """The versions of ``model`` to archive, oldest first.

    Args:
        model: the model, from :meth:`Catalog.model`.
        keep: how many versions besides those the rollout needs stay unarchived.

    Raises:
        ValueError: ``keep`` is negative.

    Examples:
        >>> def rec(version, status, day):
        ...     r = events_pb2.ModelVersion(model_name="m", version=version, status=status)
        ...     r.created_at.FromDatetime(datetime(2026, 1, day, tzinfo=UTC))
        ...     return r
        >>> catalog = Catalog()
        >>> catalog.apply([rec("v1", events_pb2.MODEL_STATUS_CHAMPION, 1),
        ...     rec("v2", events_pb2.MODEL_STATUS_REJECTED, 2),
        ...     rec("v3", events_pb2.MODEL_STATUS_CANDIDATE, 3),
        ...     rec("v4", events_pb2.MODEL_STATUS_CANDIDATE, 4),
        ...     rec("v5", events_pb2.MODEL_STATUS_CANARY, 5)])
        >>> versions_to_archive(catalog.model("m"), keep=1)
        ('v3',)
    """
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    needed = model.rollout.versions()
    candidates = [
        v for v in model.versions if v.version not in needed and v.record.status not in _SETTLED
    ]
    candidates.sort(key=_age_key, reverse=True)
    return tuple(v.version for v in sorted(candidates[keep:], key=_age_key))


def _age_key(entry: VersionEntry) -> tuple[datetime, int]:
    return (entry.created_time or _UNDATED, entry.position)


def archive_transitions(
    catalog: Catalog, keep: int, *, model_name: str | None = None, at: datetime | None = None
) -> list[events_pb2.ModelVersion]:
    """The ARCHIVED transitions retention asks for (every model, or ``model_name``'s).

    Raises:
        ValueError: ``keep`` is negative.
    """
    names = catalog.model_names if model_name is None else (model_name,)
    events: list[events_pb2.ModelVersion] = []
    for name in names:
        model = catalog.model(name)
        if model is None:
            continue
        for version in versions_to_archive(model, keep):
            entry = model.version(version)
            if entry is not None:
                reason = f"retention: archived, the {keep} newest other versions are kept"
                events.append(transition(entry.record, ARCHIVED, reason, at=at))
    return events


def archive_old_versions(
    catalog: Catalog,
    keep: int,
    publisher: ModelVersionPublisher,
    *,
    model_name: str | None = None,
    at: datetime | None = None,
) -> list[events_pb2.ModelVersion]:
    """Publish the ARCHIVED transitions retention asks for; return them.

    The trainer calls this after publishing a version (with a catalog read from the
    log, e.g. :func:`services.registry.log.read_catalog`); ``riskstream models
    prune`` does the same. The catalog is not updated: read the log again to see
    the result.

    Raises:
        ValueError: ``keep`` is negative.
        KafkaDeliveryError: the publisher's broker did not acknowledge a record.
    """
    events = archive_transitions(catalog, keep, model_name=model_name, at=at)
    for event in events:
        publisher.publish(event)
    return events
