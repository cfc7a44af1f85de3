"""Canary against champion: attribute each score event to a version and keep both windows.

Kernel: no I/O. A decision the model made carries its version and route (CHAMPION
or CANARY). A model *error* ends in rules: the scorer publishes route FALLBACK,
reason ``model_error`` and the version that failed. Events of scorers older than
that (no version) are attributed the way the scorer routed them — the card's bucket
(the first 8 bytes of the keyed card hash the event carries,
:func:`services.scoring.routing.bucket_of`) under the canary weight
(:func:`services.scoring.routing.takes_canary`). Fallbacks for other reasons
(features unavailable, deadline, no model) happen before routing and belong to no
version. Shadow scores never decide and are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.controller.precision import Flagged, LabelJoin, Labelled
from services.controller.windows import Observation, VersionWindow, WindowStats
from services.scoring.routing import takes_canary

MODEL_ERROR = "model_error"


@dataclass(frozen=True, slots=True)
class Scored:
    """One score event, as the controller needs it.

    Attributes:
        transaction_id: the scored transaction.
        card_bucket: the card's routing bucket (-1 when the hash is unreadable).
        at_ms: when it was scored, epoch ms.
        route: "champion", "canary", "fallback" or "shadow".
        version: the deciding version ("" on a fallback).
        score: the score.
        decision: "approve", "review" or "decline".
        latency_ms: server-side time to decide.
        fallback_reason: why rules decided ("" otherwise).
    """

    transaction_id: str
    card_bucket: int
    at_ms: int
    route: str
    version: str
    score: float
    decision: str
    latency_ms: float
    fallback_reason: str = ""


@dataclass(frozen=True, slots=True)
class Rollout:
    """What is being compared: since when, and how cards are split.

    Attributes:
        champion: the champion version.
        canary: the canary version.
        canary_weight: share of cards on the canary, 0..1.
        started_ms: when the canary started (its CANARY record), epoch ms.
    """

    champion: str
    canary: str
    canary_weight: float
    started_ms: int


class Comparison:
    """The canary's and the champion's windows, and the precision of their flags.

    Args:
        rollout: the versions compared.
        window_s: window length, seconds.
        max_pending: flagged decisions (and early labels) held until joined.

    Examples:
        >>> c = Comparison(Rollout("v1", "v2", 0.1, started_ms=0), window_s=60)
        >>> c.update(Scored("t1", 5, 1_000, "canary", "v2", 0.9, "decline", 3.0))
        >>> c.update(Scored("t2", 5, 1_001, "fallback", "", 0.1, "approve", 1.0, "model_error"))
        >>> c.update(Scored("t3", 9_000, 1_002, "champion", "v1", 0.01, "approve", 2.0))
        >>> c.update(Labelled("t1", is_fraud=True))
        >>> canary, champion = c.stats(now_ms=2_000)
        >>> canary.requests, canary.errors, canary.declines, canary.precision
        (2, 1, 1, 1.0)
        >>> champion.requests, c.unattributed
        (1, 0)
    """

    def __init__(self, rollout: Rollout, *, window_s: float, max_pending: int = 200_000) -> None:
        self.rollout = rollout
        self._windows = {
            rollout.canary: VersionWindow(rollout.canary, window_s=window_s),
            rollout.champion: VersionWindow(rollout.champion, window_s=window_s),
        }
        self._labels = LabelJoin(max_pending=max_pending)
        self.unattributed = 0

    def _version_of(self, event: Scored) -> str | None:
        if event.route in ("champion", "canary"):
            return event.version if event.version in self._windows else None
        if event.route == "fallback" and event.fallback_reason == MODEL_ERROR:
            if event.version:  # the scorer names the version that failed
                return event.version if event.version in self._windows else None
            if event.card_bucket < 0:
                return None
            on_canary = takes_canary(event.card_bucket, self.rollout.canary_weight)
            return self.rollout.canary if on_canary else self.rollout.champion
        return None

    def update(self, item: Scored | Labelled) -> None:
        """Count a score event of either version, or join a label."""
        if isinstance(item, Labelled):
            self._labels.update(item)
            return
        if item.route == "shadow" or item.at_ms < self.rollout.started_ms:
            return
        version = self._version_of(item)
        if version is None:
            self.unattributed += item.route != "fallback" or item.fallback_reason == MODEL_ERROR
            return
        error = item.route == "fallback"
        flagged = not error and item.decision in ("review", "decline")
        self._windows[version].update(
            Observation(
                version, item.at_ms, error=error, score=item.score, latency_ms=item.latency_ms,
                declined=not error and item.decision == "decline", flagged=flagged,
            )
        )  # fmt: skip
        if flagged:
            self._labels.update(Flagged(item.transaction_id, version))

    def stats(self, now_ms: int) -> tuple[WindowStats, WindowStats]:
        """``(canary, champion)`` over the window ending at ``now_ms``."""
        canary, champion = self.rollout.canary, self.rollout.champion

        def of(version: str) -> WindowStats:
            seen = self._labels.outcomes(version)
            return self._windows[version].stats(now_ms, labelled=seen.labelled, frauds=seen.frauds)

        return of(canary), of(champion)
