"""The model's input vector, in the model's own feature order, from stored features.

The stored card and terminal vectors describe the state *after* each entity's
previous transaction, while the model was trained on features that include the
transaction being scored (windows are (t - W, t]). So the current transaction is
folded in at request time, the same way the stream will fold it in a moment later:
counts + 1, sums + amount, means recomputed, maxima updated, seconds since the
previous transaction from the stored vector's event time, the amount over the new
30-day, 7-day and 1-day means. The card's older mean, over (t - 30 d, t - 7 d], never
holds the current transaction: it is the stored 30-day minus 7-day count and sum. A
card or terminal never seen before folds onto an empty state.

What folding cannot know: transactions that left a window between the stored
vector's time and now (a window count can be too high by those) and whether the
current terminal is new for the card (distinct-terminal counts stay as stored, a
lower bound). Both shrink as the feature job keeps up; the feature age travels with
every response.

The layout is resolved once per model (which stored value feeds which input, and
how); a request only runs the resolved steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from services.feature_store.definitions import (
    CARD_FEATURES,
    CARD_RATIO_FEATURES,
    NO_OLDER_MEAN,
    NO_PREVIOUS,
    REQUEST_FEATURES,
    TERMINAL_FEATURES,
    amount_ratios,
)
from services.feature_store.time_flags import is_night, is_weekend


@dataclass(frozen=True, slots=True)
class Stored:
    """One entity's stored vector as the layout needs it (empty when not found)."""

    values: Mapping[str, float]
    event_time_ms: int | None


EMPTY = Stored({}, None)


@dataclass(frozen=True, slots=True)
class Request:
    """The transaction's own inputs."""

    amount: float
    event_time_ms: int


_Step = Callable[[Request, Stored, Stored], float]


def _get(values: Mapping[str, float], name: str, default: float = 0.0) -> float:
    return values.get(name, default)


def _folded_mean(r: Request, c: Stored, window: str) -> float:
    count = _get(c.values, f"card_tx_count_{window}") + 1.0
    return (_get(c.values, f"card_amount_sum_{window}") + r.amount) / count


def _card_ratios(r: Request, c: Stored) -> tuple[float, ...]:
    """The card's amount ratios with the current transaction folded in."""
    older = _get(c.values, "card_tx_count_30d") - _get(c.values, "card_tx_count_7d")
    older_sum = _get(c.values, "card_amount_sum_30d") - _get(c.values, "card_amount_sum_7d")
    older_mean = older_sum / older if older > 0 else NO_OLDER_MEAN
    max_7d = max(_get(c.values, "card_amount_max_7d", -math.inf), r.amount)
    return amount_ratios(
        r.amount, older_mean, max_7d, _folded_mean(r, c, "1d"), _folded_mean(r, c, "7d")
    )


def _filled_by_build(r: Request, c: Stored, t: Stored) -> float:
    """A placeholder: :meth:`VectorLayout.build` computes the ratios once a row."""
    return math.nan


def _card_step(name: str) -> _Step:
    if name == "card_seconds_since_prev":

        def since(r: Request, c: Stored, t: Stored) -> float:
            if c.event_time_ms is None:
                return NO_PREVIOUS
            return max(0.0, (r.event_time_ms - c.event_time_ms) / 1000.0)

        return since
    if name == "card_amount_to_mean_30d":

        def ratio(r: Request, c: Stored, t: Stored) -> float:
            count = _get(c.values, "card_tx_count_30d") + 1.0
            mean = (_get(c.values, "card_amount_sum_30d") + r.amount) / count
            return r.amount / mean if mean > 0 else 1.0

        return ratio
    if name in CARD_RATIO_FEATURES:
        return _filled_by_build
    family, _, window = name.rpartition("_")
    if family == "card_tx_count":
        return lambda r, c, t: _get(c.values, name) + 1.0
    if family == "card_amount_sum":
        return lambda r, c, t: _get(c.values, name) + r.amount
    if family == "card_amount_mean":
        count_name, sum_name = f"card_tx_count_{window}", f"card_amount_sum_{window}"
        return lambda r, c, t: (
            (_get(c.values, sum_name) + r.amount) / (_get(c.values, count_name) + 1.0)
        )
    if family == "card_amount_max":
        return lambda r, c, t: max(_get(c.values, name, -math.inf), r.amount)
    if family == "card_distinct_terminals":
        return lambda r, c, t: max(_get(c.values, name), 1.0)
    raise ValueError(f"no request-time rule for card feature {name!r}")


def _terminal_step(name: str) -> _Step:
    if name.startswith("terminal_tx_count_"):
        return lambda r, c, t: _get(t.values, name) + 1.0
    # Delayed counts and risks look at (t - D - W, t - D]: the current transaction
    # is not in them.
    return lambda r, c, t: _get(t.values, name)


def _request_step(name: str) -> _Step:
    if name == "tx_amount":
        return lambda r, c, t: r.amount
    if name == "tx_is_weekend":
        return lambda r, c, t: 1.0 if is_weekend(r.event_time_ms) else 0.0
    if name == "tx_is_night":
        return lambda r, c, t: 1.0 if is_night(r.event_time_ms) else 0.0
    raise ValueError(f"no request-time rule for {name!r}")


class VectorLayout:
    """Builds one model's input row; resolved once from the model's feature names.

    Args:
        feature_names: the model's inputs, in its order.

    Raises:
        ValueError: a name is not a riskstream feature.

    Examples:
        >>> layout = VectorLayout(("tx_amount", "card_tx_count_1d", "card_amount_mean_1d"))
        >>> card = Stored({"card_tx_count_1d": 1.0, "card_amount_sum_1d": 30.0}, 0)
        >>> layout.build(Request(10.0, 60_000), card, EMPTY)
        [10.0, 2.0, 20.0]
        >>> layout.build(Request(10.0, 60_000), EMPTY, EMPTY)  # a card never seen
        [10.0, 1.0, 10.0]
    """

    def __init__(self, feature_names: Sequence[str]) -> None:
        steps: list[_Step] = []
        for name in feature_names:
            if name in REQUEST_FEATURES:
                steps.append(_request_step(name))
            elif name in CARD_FEATURES:
                steps.append(_card_step(name))
            elif name in TERMINAL_FEATURES:
                steps.append(_terminal_step(name))
            else:
                raise ValueError(f"{name!r} is not a riskstream feature")
        self.feature_names = tuple(feature_names)
        self._steps = tuple(steps)
        # (row position, ratio position): the five ratios share one computation.
        self._ratio_slots = tuple(
            (i, CARD_RATIO_FEATURES.index(name))
            for i, name in enumerate(feature_names)
            if name in CARD_RATIO_FEATURES
        )

    def build(self, request: Request, card: Stored, terminal: Stored) -> list[float]:
        """The input row for one transaction (a new list; inputs are not touched)."""
        row = [step(request, card, terminal) for step in self._steps]
        if self._ratio_slots:
            ratios = _card_ratios(request, card)
            for i, k in self._ratio_slots:
                row[i] = ratios[k]
        return row
