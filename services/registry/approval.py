"""Approving a model version: who said a high-impact model may go past canary.

Kernel: no I/O. An approval is a transition to the version's *current* status with
``approved_by`` set, so it changes no role: republishing a champion's or canary's
own status is a no-op for the rollout fold, and the rollout controller reads
``approved_by`` before promoting a high-impact canary. Who may approve (an admin
token) is checked by the caller, ``riskstream approve``.
"""

from __future__ import annotations

from datetime import datetime

from riskstream.v1 import events_pb2
from services.registry.catalog import RETIRED, VersionEntry
from services.registry.errors import TransitionRefused
from services.registry.transitions import transition


def approval(
    entry: VersionEntry, by: str, *, at: datetime | None = None
) -> events_pb2.ModelVersion:
    """The record that approves ``entry`` on behalf of ``by``.

    Raises:
        TransitionRefused: ``by`` is empty; the version is rejected or archived (it
            can never serve); or it is retired, where republishing its old status
            would put it back into traffic.

    Examples:
        >>> from services.registry.catalog import Catalog
        >>> catalog = Catalog()
        >>> catalog.apply([events_pb2.ModelVersion(model_name="m", version="v2",
        ...     status=events_pb2.MODEL_STATUS_CANARY, model_card_json="{}")])
        >>> event = approval(catalog.model("m").version("v2"), "alice")
        >>> event.approved_by, event.transition_reason, event.model_card_json
        ('alice', 'approved by alice', '{}')
        >>> event.status == events_pb2.MODEL_STATUS_CANARY
        True
    """
    by = by.strip()
    if not by:
        raise TransitionRefused(version=entry.version, detail="an approval needs a name (--by)")
    if entry.status in ("rejected", "archived"):
        raise TransitionRefused(
            version=entry.version,
            detail=f"{entry.model_name}/{entry.version} is {entry.status}; it cannot be "
            "approved (publish a new version instead)",
        )
    if entry.status == RETIRED:
        raise TransitionRefused(
            version=entry.version,
            detail=f"{entry.model_name}/{entry.version} is retired (it was "
            f"{entry.recorded_status}, now replaced); approving it would put it back "
            "into traffic",
        )
    return transition(entry.record, entry.record.status, f"approved by {by}", at=at, approved_by=by)
