"""Precision of flagged decisions, as labels for their transactions arrive.

Kernel: no I/O. Labels arrive days after the decision (chargebacks), long after a
decision has left the controller's window, so the join is kept since the
comparison started, not per window: each flagged (REVIEW or DECLINE) transaction
waits for its label, bounded by ``max_pending`` (the oldest waiting one is dropped
first). A label may also come before its score event (a replay, or a slow scores
partition): it waits in a second bounded buffer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TypeVar

_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Flagged:
    """A REVIEW or DECLINE decision of ``version`` for ``transaction_id``."""

    transaction_id: str
    version: str


@dataclass(frozen=True, slots=True)
class Labelled:
    """The verdict on ``transaction_id`` (from the ``labels`` topic)."""

    transaction_id: str
    is_fraud: bool


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Flagged decisions of one version whose label has arrived, and the frauds among them."""

    labelled: int = 0
    frauds: int = 0

    @property
    def precision(self) -> float | None:
        """frauds / labelled (None before the first label)."""
        return self.frauds / self.labelled if self.labelled else None


class LabelJoin:
    """Joins flagged decisions with their labels, per version.

    Args:
        max_pending: most flagged decisions (and most early labels) held unjoined.

    Examples:
        >>> join = LabelJoin(max_pending=100)
        >>> for i in range(10):
        ...     join.update(Flagged(f"t{i}", "v2" if i % 2 else "v1"))
        >>> for i in range(10):
        ...     join.update(Labelled(f"t{i}", is_fraud=i in (1, 3, 4)))
        >>> join.outcomes("v2"), join.outcomes("v1").precision
        (Outcomes(labelled=5, frauds=2), 0.2)
        >>> join.update(Labelled("t10", is_fraud=True)); join.update(Flagged("t10", "v2"))
        >>> join.outcomes("v2")
        Outcomes(labelled=6, frauds=3)
    """

    def __init__(self, *, max_pending: int = 200_000) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._max = max_pending
        self._waiting: OrderedDict[str, str] = OrderedDict()
        self._early: OrderedDict[str, bool] = OrderedDict()
        self._outcomes: dict[str, Outcomes] = {}

    def update(self, item: Flagged | Labelled) -> None:
        """Record a flagged decision or a label; a pair that meets counts once."""
        if isinstance(item, Flagged):
            verdict = self._early.pop(item.transaction_id, None)
            if verdict is None:
                _put(self._waiting, item.transaction_id, item.version, self._max)
            else:
                self._count(item.version, verdict)
            return
        version = self._waiting.pop(item.transaction_id, None)
        if version is None:
            _put(self._early, item.transaction_id, item.is_fraud, self._max)
        else:
            self._count(version, item.is_fraud)

    def _count(self, version: str, is_fraud: bool) -> None:
        seen = self._outcomes.get(version, Outcomes())
        self._outcomes[version] = Outcomes(seen.labelled + 1, seen.frauds + is_fraud)

    def outcomes(self, version: str) -> Outcomes:
        """What is known so far about ``version``'s flagged decisions."""
        return self._outcomes.get(version, Outcomes())


def _put(buffer: OrderedDict[str, _V], key: str, value: _V, limit: int) -> None:
    buffer[key] = value
    buffer.move_to_end(key)
    while len(buffer) > limit:
        buffer.popitem(last=False)
