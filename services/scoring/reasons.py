"""Reason codes from per-feature contributions: the features that pushed the score up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason: a feature, its value and its signed contribution to the margin."""

    code: str
    feature: str
    contribution: float
    description: str


def top_reasons(
    names: Sequence[str], values: Sequence[float], contributions: Sequence[float], k: int = 3
) -> list[Reason]:
    """The ``k`` largest positive contributions, largest first.

    Codes are the feature names upper-cased (stable as long as the feature exists).

    Examples:
        >>> rs = top_reasons(["tx_amount", "card_tx_count_1h"], [950.0, 7.0], [1.2, -0.4])
        >>> [(r.code, r.contribution) for r in rs]
        [('TX_AMOUNT', 1.2)]
        >>> rs[0].description
        'tx_amount = 950 raised the risk'
    """
    ranked = sorted((c, i) for i, c in enumerate(contributions) if c > 0)[::-1][:k]
    return [
        Reason(
            code=names[i].upper(),
            feature=names[i],
            contribution=float(c),
            description=f"{names[i]} = {values[i]:g} raised the risk",
        )
        for c, i in ranked
    ]
