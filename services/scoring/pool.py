"""The loaded model versions and the rollout the request path routes by.

Requests read :attr:`ModelPool.snapshot` once and use only what it holds, and a
snapshot is replaced by one assignment after every model it names is loaded and
warmed up: no request sees a half-loaded model, and a swap never pauses traffic.
A version whose artifact is refused does not take its role: the current champion
keeps serving and the refusal is logged and counted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from services.registry.errors import ArtifactRejected
from services.registry.rollout import RegistryView, RolloutState, VersionRecord
from services.scoring.model_loader import ServedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """What the request path routes by; never mutated."""

    champion: ServedModel | None = None
    canary: ServedModel | None = None
    canary_weight: float = 0.0
    shadows: tuple[ServedModel, ...] = ()
    last_good: ServedModel | None = None
    models: dict[str, ServedModel] = field(default_factory=dict)

    @property
    def state(self) -> RolloutState:
        """The roles, by version."""
        return RolloutState(
            champion=self.champion.version if self.champion else None,
            canary=self.canary.version if self.canary else None,
            canary_weight=self.canary_weight if self.canary else 0.0,
            shadows=tuple(s.version for s in self.shadows),
            last_good=self.last_good.version if self.last_good else None,
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """A version the pool refused to load, and why."""

    version: str
    reason: str
    detail: str


class ModelPool:
    """Applies ``model-updates`` records: loads what the rollout needs, then swaps.

    Args:
        model_name: the model this scorer serves (records of others are ignored).
        load: verifies and loads one version (blocking; raises ArtifactRejected).
        on_refused: called for each refused artifact (metrics).
        on_swapped: called with each new snapshot (metrics).
    """

    def __init__(
        self,
        model_name: str,
        load: Callable[[VersionRecord], ServedModel],
        *,
        on_refused: Callable[[Refusal], None] | None = None,
        on_swapped: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.model_name = model_name
        self.snapshot = Snapshot()
        self._view = RegistryView(model_name)
        self._load = load
        self._on_refused = on_refused
        self._on_swapped = on_swapped
        self._refused: dict[tuple[str, str], Refusal] = {}
        self._lock = threading.Lock()

    @property
    def desired(self) -> RolloutState:
        """The rollout the log asks for (may name a version that was refused)."""
        return self._view.state

    def record(self, version: str) -> VersionRecord | None:
        """The latest record of ``version``."""
        return self._view.records.get(version)

    def refusals(self) -> list[Refusal]:
        """Every refused artifact so far."""
        return list(self._refused.values())

    def apply(self, records: Iterable[VersionRecord]) -> list[Refusal]:
        """Fold records into the rollout, load what it needs and swap the snapshot.

        Blocking (loads models): call it from a worker thread.

        Returns:
            The refusals this call produced (empty when all went well).
        """
        with self._lock:
            self._view.apply(records)
            desired = self._view.state
            current = self.snapshot
            loaded = dict(current.models)
            new_refusals: list[Refusal] = []
            for version in sorted(desired.versions() - loaded.keys()):
                rec = self._view.records.get(version)
                if rec is None or (version, rec.sha256) in self._refused:
                    continue
                try:
                    loaded[version] = self._load(rec)
                except ArtifactRejected as exc:
                    refusal = Refusal(version, str(exc.reason), exc.detail)
                    self._refused[(version, rec.sha256)] = refusal
                    new_refusals.append(refusal)
                    log.warning(
                        "model %s:%s refused (%s): %s; serving %s",
                        self.model_name,
                        version,
                        exc.reason,
                        exc.detail,
                        current.champion.version if current.champion else "rules",
                    )
                    if self._on_refused is not None:
                        self._on_refused(refusal)
            self.snapshot = _effective(desired, current, loaded)
            if self.snapshot.state != current.state and self._on_swapped is not None:
                self._on_swapped(self.snapshot)
            if self.snapshot.state != current.state:
                log.info("rollout of %s: %s", self.model_name, self.snapshot.state)
            return new_refusals


def _effective(
    desired: RolloutState, current: Snapshot, loaded: dict[str, ServedModel]
) -> Snapshot:
    # A champion that could not be loaded does not take the role: the current one
    # keeps serving.
    champion = (loaded.get(desired.champion) or current.champion) if desired.champion else None
    canary = loaded.get(desired.canary or "")
    if canary is not None and champion is not None and canary.version == champion.version:
        canary = None
    shadows = tuple(loaded[s] for s in desired.shadows if s in loaded)
    last_good = loaded.get(desired.last_good or "")
    if last_good is not None and champion is not None and last_good.version == champion.version:
        last_good = None
    keep = {m.version: m for m in (champion, canary, last_good, *shadows) if m is not None}
    return Snapshot(
        champion=champion,
        canary=canary,
        canary_weight=desired.canary_weight if canary else 0.0,
        shadows=shadows,
        last_good=last_good,
        models=keep,
    )
