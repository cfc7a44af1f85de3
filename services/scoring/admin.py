"""Rollout changes asked for through the ModelAdmin RPC.

A change is checked against what this scorer holds, published to ``model-updates``
(so every scorer of the fleet converges on it, and it survives restarts) and applied
here at once through the same path as the log's records; when the record comes back
from the log, applying it again changes nothing. Each transition is the version's
latest full record moved to its new status (:meth:`VersionRecord.to_event`), so
compaction of the log never loses the version's card, metrics or plan.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from riskstream.v1 import events_pb2
from services.registry.rollout import CANARY, CHAMPION, VersionRecord
from services.registry.transitions import ModelVersionPublisher
from services.scoring.errors import RolloutRefused
from services.scoring.pool import ModelPool, Snapshot

log = logging.getLogger(__name__)

ARCHIVED = events_pb2.MODEL_STATUS_ARCHIVED


class RolloutAdmin:
    """Promote, canary weight and rollback, for one scorer's pool.

    Args:
        pool: the scorer's models.
        sink: publishes transitions (None: apply locally only).
    """

    def __init__(self, pool: ModelPool, sink: ModelVersionPublisher | None) -> None:
        self._pool = pool
        self._sink = sink

    def _known(self, version: str) -> VersionRecord:
        record = self._pool.record(version)
        if record is None:
            raise RolloutRefused(f"version {version!r} is not in the registry log")
        return record

    async def promote(self, version: str, reason: str) -> Snapshot:
        """Make ``version`` the champion."""
        base = self._known(version)
        return await self._apply([_with(base, CHAMPION, reason or "promoted by admin")])

    async def set_canary_weight(self, version: str, weight: float, reason: str) -> Snapshot:
        """Route ``weight`` of the cards to ``version`` (0 stops the canary)."""
        if not 0.0 <= weight <= 1.0:
            raise RolloutRefused(f"weight {weight} is outside [0, 1]")
        base = self._known(version)
        if self._pool.snapshot.champion and self._pool.snapshot.champion.version == version:
            raise RolloutRefused(f"{version} is the champion; it cannot be its own canary")
        status = CANARY if weight > 0 else ARCHIVED
        record = replace(
            _with(base, status, reason or f"canary weight {weight} by admin"), canary_weight=weight
        )
        return await self._apply([record])

    async def rollback(self, reason: str) -> Snapshot:
        """Give the champion role back to the last-good version; stop the canary."""
        snap = self._pool.snapshot
        reason = reason or "rolled back by admin"
        records: list[VersionRecord] = []
        if snap.canary is not None:
            records.append(_with(self._known(snap.canary.version), ARCHIVED, reason))
        if snap.last_good is not None and snap.champion is not None:
            records.append(_with(self._known(snap.last_good.version), CHAMPION, reason))
            records.append(_with(self._known(snap.champion.version), ARCHIVED, reason))
        if not records:
            raise RolloutRefused("nothing to roll back: no canary and no last-good version")
        return await self._apply(records)

    @staticmethod
    def _publish(sink: ModelVersionPublisher, events: list[events_pb2.ModelVersion]) -> None:
        for event in events:
            sink.publish(event)

    async def _apply(self, changes: list[VersionRecord]) -> Snapshot:
        events = [change.to_event() for change in changes]
        # Applied as read back from the events, so the pool keeps each version's new
        # full record, exactly as when it comes back from the log.
        records = [VersionRecord.from_event(event) for event in events]
        if self._sink is not None:
            # Publishing waits for the broker's acknowledgement: off the event loop.
            await asyncio.to_thread(self._publish, self._sink, events)
        refusals = await asyncio.to_thread(self._pool.apply, records)
        if refusals:
            raise RolloutRefused(
                "; ".join(f"{r.version} refused ({r.reason}): {r.detail}" for r in refusals)
            )
        for record in records:
            status = events_pb2.ModelStatus.Name(record.status)  # type: ignore[arg-type]
            log.info("rollout: %s -> %s (%s)", record.version, status, record.reason)
        return self._pool.snapshot


def _with(base: VersionRecord, status: int, reason: str) -> VersionRecord:
    return replace(base, status=status, reason=reason)
