"""The one definition of every riskstream feature.

Plain Python, standard library only: the PyFlink job (in its own environment), the
reference backfill, the Feast repository and the scorer all import this module, so a
feature is defined exactly once. Changing anything here changes
:data:`FEATURE_SET_VERSION`, which travels with every feature row and every model.

Semantics (event time, UTC):

* A window of length W at a transaction with event time t covers (t - W, t]: it
  includes the current transaction and every earlier one of the same entity with
  event time > t - W (so, with timestamps in whole seconds or milliseconds, one that
  happened exactly W before is out). Transactions with the same event time as the
  current one that were received before it are in; those received after it are not.
* Per card: count, sum, mean and max of the amount over 10 minutes, 1 hour, 1, 7 and
  30 days; seconds since the card's previous transaction (-1 for its first);
  distinct terminals over 1 hour and 1 day; the amount divided by the card's 30-day
  mean (1 when that mean is 0). Amount ratios against the card's recent and older
  levels: the mean over (t - 30 d, t - 7 d] (-1 when the card has no transaction
  there), the amount over that mean and the 7-day maximum over it (-1 when that mean
  is not positive), and the amount over the 1-day and 7-day means (1 when the mean
  is 0). The older window leaves out the last week, which a compromised card's
  inflated amounts would otherwise pull up.
* Per terminal: transaction count over 1, 7 and 30 days; and, shifted by the label
  delay D (7 days by default), over (t - D - N days, t - D]: the transaction count
  and the fraud risk = frauds among them / that count (0 when the count is 0), with
  frauds known from the ``labels`` topic (the Fraud Detection Handbook's definition).
* Time flags of the transaction itself: weekend (Saturday or Sunday) and night
  (hour ≤ 6), both 0/1.

The 15 features of the handbook's baseline are listed in :data:`HANDBOOK_FEATURES`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SECOND = 1
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

#: Default label delay: how long after a transaction its label is known.
LABEL_DELAY_S = 7 * DAY
#: Night: hour of day (UTC) at or below which a transaction is "night".
NIGHT_LAST_HOUR = 6
#: Value of ``card_seconds_since_prev`` for a card's first transaction.
NO_PREVIOUS = -1.0


@dataclass(frozen=True)
class Window:
    """A trailing event-time window (t - seconds, t], named by its suffix."""

    name: str
    seconds: int


CARD_AMOUNT_WINDOWS = (
    Window("10m", 10 * MINUTE),
    Window("1h", HOUR),
    Window("1d", DAY),
    Window("7d", 7 * DAY),
    Window("30d", 30 * DAY),
)
CARD_TERMINAL_WINDOWS = (Window("1h", HOUR), Window("1d", DAY))
TERMINAL_WINDOWS = (Window("1d", DAY), Window("7d", 7 * DAY), Window("30d", 30 * DAY))
#: The longest look-back of any feature: state older than this can be dropped.
MAX_LOOKBACK_S = max(30 * DAY, LABEL_DELAY_S + 30 * DAY)

CARD = "card"
TERMINAL = "terminal"
ENTITY_TYPES = (CARD, TERMINAL)
#: Feast entity join keys (one per entity type).
JOIN_KEYS = {CARD: "card_id", TERMINAL: "terminal_id"}


#: The card's amount ratios, after ``card_amount_to_mean_30d`` in the card vector.
CARD_RATIO_FEATURES: tuple[str, ...] = (
    "card_amount_mean_7_30d",
    "card_amount_to_mean_7_30d",
    "card_amount_max_7d_to_mean_7_30d",
    "card_amount_to_mean_1d",
    "card_amount_to_mean_7d",
)
#: Value of ``card_amount_mean_7_30d`` and of the ratios over it when there is none.
NO_OLDER_MEAN = -1.0


def amount_ratios(
    amount: float, older_mean: float, max_7d: float, mean_1d: float, mean_7d: float
) -> tuple[float, ...]:
    """The values of ``CARD_RATIO_FEATURES``, in that order, from their parts.

    Used by the kernel, the reference implementation (element-wise over arrays)
    and the scorer's request-time rules, so the edge cases are defined once.

    Examples:
        >>> amount_ratios(50.0, 10.0, 60.0, 25.0, 20.0)
        (10.0, 5.0, 6.0, 2.0, 2.5)
        >>> amount_ratios(50.0, -1.0, 60.0, 0.0, 0.0)
        (-1.0, -1.0, -1.0, 1.0, 1.0)
    """
    older_ok = older_mean > 0
    return (
        older_mean,
        amount / older_mean if older_ok else NO_OLDER_MEAN,
        max_7d / older_mean if older_ok else NO_OLDER_MEAN,
        amount / mean_1d if mean_1d != 0 else 1.0,
        amount / mean_7d if mean_7d != 0 else 1.0,
    )


def _card_features() -> tuple[str, ...]:
    names: list[str] = []
    for w in CARD_AMOUNT_WINDOWS:
        names += [
            f"card_tx_count_{w.name}",
            f"card_amount_sum_{w.name}",
            f"card_amount_mean_{w.name}",
            f"card_amount_max_{w.name}",
        ]
    names.append("card_seconds_since_prev")
    names += [f"card_distinct_terminals_{w.name}" for w in CARD_TERMINAL_WINDOWS]
    names.append("card_amount_to_mean_30d")
    names += list(CARD_RATIO_FEATURES)
    return tuple(names)


def _terminal_features() -> tuple[str, ...]:
    names = [f"terminal_tx_count_{w.name}" for w in TERMINAL_WINDOWS]
    names += [f"terminal_delayed_tx_count_{w.name}" for w in TERMINAL_WINDOWS]
    names += [f"terminal_risk_{w.name}" for w in TERMINAL_WINDOWS]
    return tuple(names)


#: Card feature vector, in this order (the Feast feature view's schema order).
CARD_FEATURES: tuple[str, ...] = _card_features()
#: Terminal feature vector, in this order.
TERMINAL_FEATURES: tuple[str, ...] = _terminal_features()
#: Features of the transaction itself, computed at request time (never stored).
REQUEST_FEATURES: tuple[str, ...] = ("tx_amount", "tx_is_weekend", "tx_is_night")
FEATURES_BY_ENTITY = {CARD: CARD_FEATURES, TERMINAL: TERMINAL_FEATURES}

#: The Fraud Detection Handbook's 15 baseline features, in its order.
HANDBOOK_FEATURES: tuple[str, ...] = (
    "tx_amount",
    "tx_is_weekend",
    "tx_is_night",
    "card_tx_count_1d",
    "card_amount_mean_1d",
    "card_tx_count_7d",
    "card_amount_mean_7d",
    "card_tx_count_30d",
    "card_amount_mean_30d",
    "terminal_delayed_tx_count_1d",
    "terminal_risk_1d",
    "terminal_delayed_tx_count_7d",
    "terminal_risk_7d",
    "terminal_delayed_tx_count_30d",
    "terminal_risk_30d",
)

#: Bump when a definition's semantics change without a name or window changing.
SEMANTICS_REVISION = 1


def _version() -> str:
    spec = repr(
        (
            SEMANTICS_REVISION,
            CARD_FEATURES,
            TERMINAL_FEATURES,
            REQUEST_FEATURES,
            CARD_AMOUNT_WINDOWS,
            CARD_TERMINAL_WINDOWS,
            TERMINAL_WINDOWS,
            LABEL_DELAY_S,
            NIGHT_LAST_HOUR,
            NO_PREVIOUS,
        )
    )
    return "fs-" + hashlib.sha256(spec.encode()).hexdigest()[:12]


#: Changes whenever any definition above changes.
FEATURE_SET_VERSION: str = _version()
