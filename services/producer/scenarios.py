"""Fraud scenarios of the simulator.

Scenarios 1 to 3 are the Fraud Detection Handbook's (chapter 3); they relabel (and,
for leaked cards, change the amount of) regular transactions. Scenarios 4 and 5 add
transactions of their own.

1. ``amount_threshold``: every amount above the threshold is fraud (after the drift,
   above the threshold times the drift's spend multiplier).
2. ``compromised_terminal``: each day a few terminals are compromised; every
   transaction on them during the next days (28 by default) is fraud.
3. ``leaked_card``: each day a few cards leak; during the next days (14 by default) a
   share (a third) of their transactions is fraud, with the amount multiplied (by 5).
4. ``card_testing``: a burst of small e-commerce payments on one card at one
   merchant within a few minutes, as fraudsters check that stolen cards work.
5. ``night_ecommerce``: after the drift only, cards are charged at night by a new
   kind of online merchant abroad (by default online gambling, MCC 7995, in Malta);
   amounts stay below the threshold, so rules learnt before the drift miss it.

When several apply to a regular transaction the later one wins (3 over 2 over 1), as in
the handbook. Every random choice is drawn from a generator keyed by (seed, day,
purpose), so any day can be produced without producing the days before it, and
turning one scenario off leaves the others' draws unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskstream.v1 import events_pb2
from services.producer.config import SimulatorConfig

GENUINE = 0
AMOUNT_THRESHOLD = 1
COMPROMISED_TERMINAL = 2
LEAKED_CARD = 3
CARD_TESTING = 4
NIGHT_ECOMMERCE = 5
SCENARIO_NAMES: tuple[str, ...] = (
    "",
    "amount_threshold",
    "compromised_terminal",
    "leaked_card",
    "card_testing",
    "night_ecommerce",
)

SECONDS_PER_DAY = 86_400

# Purposes of the per-day generators (the third word of their seed).
PURPOSE_TRANSACTIONS = 1
PURPOSE_COMPROMISED_TERMINALS = 2
PURPOSE_LEAKED_CARDS = 3
PURPOSE_CARD_TESTING = 4
PURPOSE_DRIFT_FRAUD = 5
PURPOSE_PROFILES = 6

_CACHE_DAYS = 64


def day_rng(seed: int, day: int, purpose: int) -> np.random.Generator:
    """The generator for one purpose on one day (``day`` may be -1 for profiles).

    Args:
        seed: the config's seed.
        day: day number, 0-based.
        purpose: one of the ``PURPOSE_*`` constants.

    Returns:
        A fresh PCG64 generator; the same arguments always give the same draws.
    """
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, day + 1, purpose])))


@dataclass(frozen=True, slots=True)
class InjectedTransactions:
    """Transactions a scenario adds to a day, as parallel arrays.

    Attributes:
        second_of_day: seconds since the day's midnight.
        customer: customer (card) number.
        terminal: terminal number.
        amount: amount in the config's currency, rounded to cents.
        scenario: scenario code (index into ``SCENARIO_NAMES``).
        channel: ``Channel`` value.
    """

    second_of_day: np.ndarray
    customer: np.ndarray
    terminal: np.ndarray
    amount: np.ndarray
    scenario: np.ndarray
    channel: np.ndarray

    @classmethod
    def empty(cls) -> InjectedTransactions:
        """No transactions."""
        ints = np.zeros(0, dtype=np.int64)
        return cls(ints, ints, ints, np.zeros(0), ints, ints)


class FraudSchedule:
    """Which terminals are compromised and which cards leaked, day by day.

    The picks of day ``k`` come from that day's own generator and stay active for the
    configured number of days, so the state on any day is computed from the picks of
    the days just before it.

    Args:
        config: the simulator settings.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def terminals_picked_on(self, day: int) -> np.ndarray:
        """The terminals compromised on ``day`` (scenario 2)."""
        c = self._config
        return self._picked(
            day, PURPOSE_COMPROMISED_TERMINALS, c.n_terminals, c.compromised_terminals_per_day
        )

    def cards_picked_on(self, day: int) -> np.ndarray:
        """The cards leaked on ``day`` (scenario 3)."""
        c = self._config
        return self._picked(day, PURPOSE_LEAKED_CARDS, c.n_customers, c.leaked_cards_per_day)

    def compromised_terminals(self, day: int) -> np.ndarray:
        """Terminals on which every transaction of ``day`` is fraud, sorted."""
        window = self._config.compromised_terminal_days
        picks = [self.terminals_picked_on(k) for k in range(max(0, day - window + 1), day + 1)]
        return np.unique(np.concatenate(picks))

    def leaked_cards(self, day: int) -> np.ndarray:
        """Cards whose transactions of ``day`` may be fraud, sorted."""
        window = self._config.leaked_card_days
        picks = [self.cards_picked_on(k) for k in range(max(0, day - window + 1), day + 1)]
        return np.unique(np.concatenate(picks))

    def _picked(self, day: int, purpose: int, population: int, n: int) -> np.ndarray:
        key = (day, purpose)
        picked = self._cache.get(key)
        if picked is None:
            if len(self._cache) >= 4 * _CACHE_DAYS:
                oldest = min(self._cache)
                del self._cache[oldest]
            picked = day_rng(self._config.seed, day, purpose).choice(population, n, replace=False)
            picked.flags.writeable = False
            self._cache[key] = picked
        return picked


def card_testing(
    config: SimulatorConfig, day: int, ecommerce_terminals: np.ndarray
) -> InjectedTransactions:
    """Scenario 4: the card-testing bursts of one day.

    Args:
        config: the simulator settings.
        day: day number.
        ecommerce_terminals: terminals where a burst may happen.

    Returns:
        The burst transactions, all fraud.
    """
    rng = day_rng(config.seed, day, PURPOSE_CARD_TESTING)
    n_bursts = int(rng.poisson(config.card_testing_bursts_per_day))
    if n_bursts == 0 or ecommerce_terminals.size == 0:
        return InjectedTransactions.empty()
    lo, hi = config.card_testing_tx_per_burst
    max_span = int(config.card_testing_max_duration.total_seconds())
    seconds, customers, terminals = [], [], []
    for _ in range(n_bursts):
        size = int(rng.integers(lo, hi + 1))
        span = int(rng.integers(0, max_span + 1))
        first = int(rng.integers(0, SECONDS_PER_DAY - span))
        offsets = np.sort(rng.integers(0, span + 1, size))
        offsets[0], offsets[-1] = 0, span  # the burst spans exactly `span` seconds
        seconds.append(first + offsets)
        customers.append(np.full(size, rng.integers(config.n_customers)))
        terminals.append(np.full(size, rng.choice(ecommerce_terminals)))
    second_of_day = np.concatenate(seconds)
    n = second_of_day.size
    amount = np.round(rng.uniform(*config.card_testing_amount_range, n), 2)
    return InjectedTransactions(
        second_of_day=second_of_day,
        customer=np.concatenate(customers),
        terminal=np.concatenate(terminals),
        amount=amount,
        scenario=np.full(n, CARD_TESTING),
        channel=np.full(n, events_pb2.CHANNEL_ECOMMERCE),
    )


def night_ecommerce(
    config: SimulatorConfig, day: int, earliest_second: int
) -> InjectedTransactions:
    """Scenario 5: the new fraud pattern on one day after the drift.

    Args:
        config: the simulator settings.
        day: day number.
        earliest_second: the drift's second of day on the day it begins, else 0.

    Returns:
        The new-pattern transactions, all fraud, at or after ``earliest_second``.
    """
    night_end = int(config.drift_fraud_night_end.total_seconds())
    if earliest_second >= night_end or config.drift_fraud_cards_per_day == 0:
        return InjectedTransactions.empty()
    rng = day_rng(config.seed, day, PURPOSE_DRIFT_FRAUD)
    cards = rng.choice(config.n_customers, config.drift_fraud_cards_per_day, replace=False)
    lo, hi = config.drift_fraud_tx_per_card
    customer = np.repeat(cards, rng.integers(lo, hi + 1, cards.size))
    n = customer.size
    first_terminal = config.n_terminals
    return InjectedTransactions(
        second_of_day=rng.integers(earliest_second, night_end, n),
        customer=customer,
        terminal=rng.integers(first_terminal, first_terminal + config.drift_fraud_terminals, n),
        amount=np.round(rng.uniform(*config.drift_fraud_amount_range, n), 2),
        scenario=np.full(n, NIGHT_ECOMMERCE),
        channel=np.full(n, events_pb2.CHANNEL_ECOMMERCE),
    )
