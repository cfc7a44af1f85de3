"""The monitored champion: its verified reference and its training calendar.

Adapter. The reference comes through the registry's
:class:`services.registry.reference_loader.ArtifactReferenceLoader` (the artifact
verified as the scorer verifies it, ``reference.json`` pinned by its metadata) —
the same reader the rollout controller uses for a canary's own holdout.
"""

from __future__ import annotations

from datetime import datetime

from riskstream.v1 import events_pb2
from services.drift.monitor import Champion
from services.registry.reference_loader import ArtifactReferenceLoader


def _epoch_ms(iso: str) -> int | None:
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


class ArtifactChampionLoader:
    """Turns a champion's record into the monitored :class:`Champion`.

    Args:
        references: the verified reader of artifacts' ``reference.json``.
    """

    def __init__(self, references: ArtifactReferenceLoader) -> None:
        self._references = references

    def load(self, record: events_pb2.ModelVersion, *, canary_running: bool) -> Champion:
        """The monitored champion of ``record``.

        Raises:
            ReferenceUnavailable: the artifact does not verify, or has no (valid)
                ``reference.json``.
        """
        loaded = self._references.load(record)
        meta = loaded.metadata
        return Champion(
            version=record.version,
            reference=loaded.reference,
            created_ms=_epoch_ms(meta.created_at),
            train_end_ms=_epoch_ms(meta.train_window.end),
            canary_running=canary_running,
        )
