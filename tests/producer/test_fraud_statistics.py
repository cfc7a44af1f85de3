"""Fraud rate, scenario mix and the scenario rules match the configuration.

Expected counts are derived from the config (and the profiles it determines), not
copied from a run: per scenario a mean and a standard deviation, and every check
allows five standard deviations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.producer import SimulatorConfig, TransactionSimulator
from services.producer.simulator import (
    SECONDS_PER_DAY,
    TIME_OF_DAY_MEAN_S,
    TIME_OF_DAY_STD_S,
)

CONFIG = SimulatorConfig(
    seed=3, n_customers=1000, n_terminals=2000, card_testing_bursts_per_day=2.0
)
DAYS = 45
SIGMAS = 5.0
REGULAR = ("", "amount_threshold", "compromised_terminal", "leaked_card")


def _phi(z: float | np.ndarray) -> float | np.ndarray:
    """Standard normal CDF."""
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(z) / math.sqrt(2.0)))


@pytest.fixture(scope="module")
def run(table_of):
    sim = TransactionSimulator(CONFIG)
    items = (lt for day in sim.iter_days(n_days=DAYS) for lt in day)
    return sim, table_of(items, int(CONFIG.start.timestamp()))


@pytest.fixture(scope="module")
def expected(run) -> dict[str, tuple[float, float]]:
    """Per scenario: (expected count, standard deviation) over the run, from the config."""
    sim, _ = run
    c, cust = CONFIG, sim.customers
    # A drawn time of day is kept when it truncates to 1..86399 s (handbook).
    p_time = float(
        _phi((SECONDS_PER_DAY - TIME_OF_DAY_MEAN_S) / TIME_OF_DAY_STD_S)
        - _phi((1 - TIME_OF_DAY_MEAN_S) / TIME_OF_DAY_STD_S)
    )
    rate = cust.mean_nb_tx_per_day * (cust.n_available > 0)  # customers without terminals: none
    per_day = p_time * rate.sum()

    days = np.arange(DAYS)
    p_terminal = 1 - (1 - c.compromised_terminals_per_day / c.n_terminals) ** np.minimum(
        days + 1, c.compromised_terminal_days
    )
    p_card = 1 - (1 - c.leaked_cards_per_day / c.n_customers) ** np.minimum(
        days + 1, c.leaked_card_days
    )
    s3 = c.leaked_card_fraud_share
    not_leaked = 1 - s3 * p_card

    # 1: P(amount > threshold) per customer; a negative draw is redrawn U(0, 2 mean).
    m, s, thr = cust.mean_amount, cust.std_amount, c.amount_threshold
    q = (1 - _phi((thr - m) / s)) + _phi(-m / s) * np.clip(1 - thr / (2 * m), 0, 1)
    e1 = float(np.sum(p_time * (rate * q).sum() * (1 - p_terminal) * not_leaked))

    # 2: a random terminal gets 1/n_terminals of the traffic; the spread of terminal
    # traffic (from the profiles) adds variance per compromised terminal.
    e2 = float(np.sum(per_day * p_terminal * not_leaked))
    usage = np.zeros(c.n_terminals)
    for k in range(c.n_customers):
        if cust.n_available[k]:
            usage[cust.available_terminals(k)] += p_time * rate[k] / cust.n_available[k]
    windows = np.minimum(days + c.compromised_terminal_days, DAYS) - days
    var2 = e2 + c.compromised_terminals_per_day * np.sum(windows**2) * usage.var()

    # 3: a random card has the mean rate; the spread of rates adds variance per card.
    e3 = float(np.sum(per_day * p_card * s3))
    windows = np.minimum(days + c.leaked_card_days, DAYS) - days
    var3 = e3 + c.leaked_cards_per_day * np.sum((s3 * p_time * windows) ** 2) * rate.var()

    # 4: compound Poisson: bursts a day times uniform burst sizes.
    lo, hi = c.card_testing_tx_per_burst
    sizes = np.arange(lo, hi + 1)
    bursts = DAYS * c.card_testing_bursts_per_day
    e4, var4 = bursts * sizes.mean(), bursts * (sizes**2).mean()

    return {
        "regular": (DAYS * per_day, math.sqrt(DAYS * per_day)),
        "amount_threshold": (e1, math.sqrt(e1)),
        "compromised_terminal": (e2, math.sqrt(var2)),
        "leaked_card": (e3, math.sqrt(var3)),
        "card_testing": (e4, math.sqrt(var4)),
    }


def test_volume_and_each_scenario_count_match_the_config(run, expected) -> None:
    _, t = run
    observed = {name: int((t["scenario"] == name).sum()) for name in expected}
    observed["regular"] = int(np.isin(t["scenario"], REGULAR).sum())
    for name, (mean, sd) in expected.items():
        assert abs(observed[name] - mean) <= SIGMAS * sd, (name, observed[name], mean, sd)


def test_fraud_rate_and_scenario_mix_match_the_config(run, expected) -> None:
    _, t = run
    scenarios = [name for name in expected if name != "regular"]
    mean_frauds = sum(expected[name][0] for name in scenarios)
    sd_frauds = math.sqrt(sum(expected[name][1] ** 2 for name in scenarios))
    frauds = int(t["is_fraud"].sum())
    assert frauds == int((t["scenario"] != "").sum())
    assert abs(frauds - mean_frauds) <= SIGMAS * sd_frauds

    total = expected["regular"][0] + expected["card_testing"][0]
    rate, expected_rate = frauds / t["scenario"].size, mean_frauds / total
    assert abs(rate - expected_rate) <= SIGMAS * (
        sd_frauds / total + expected_rate / math.sqrt(total)
    )

    for name in scenarios:
        mean, sd = expected[name]
        share, expected_share = (t["scenario"] == name).sum() / frauds, mean / mean_frauds
        others = sd_frauds**2 - sd**2
        tolerance = math.sqrt((sd * (1 - expected_share)) ** 2 + expected_share**2 * others)
        assert abs(share - expected_share) <= SIGMAS * tolerance / mean_frauds, name


def test_scenario_rules_hold_transaction_by_transaction(run) -> None:
    sim, t = run
    regular = np.flatnonzero(np.isin(t["scenario"], REGULAR))
    for day in range(DAYS):
        rows = regular[t["day"][regular] == day]
        scenario, terminal, card = t["scenario"][rows], t["terminal"][rows], t["card"][rows]
        on_compromised = np.isin(terminal, sim.schedule.compromised_terminals(day))
        leaked_card = np.isin(card, sim.schedule.leaked_cards(day))
        assert (
            (scenario == "compromised_terminal") == (on_compromised & (scenario != "leaked_card"))
        ).all()
        assert leaked_card[scenario == "leaked_card"].all()
        over = t["amount"][rows] > CONFIG.amount_threshold
        assert over[scenario == "amount_threshold"].all()
        assert not over[scenario == ""].any()
    # Regular transactions only use terminals within the customer's radius.
    for row in regular[:: max(1, regular.size // 2000)]:
        assert t["terminal"][row] in sim.customers.available_terminals(t["card"][row])


def test_leaked_cards_lose_the_configured_share_at_five_times_the_amount(run) -> None:
    sim, t = run
    leaked_tx = np.zeros(t["day"].size, dtype=bool)
    regular = np.isin(t["scenario"], REGULAR)
    for day in range(DAYS):
        today = t["day"] == day
        leaked_tx |= today & regular & np.isin(t["card"], sim.schedule.leaked_cards(day))
    n = int(leaked_tx.sum())
    fraud = t["scenario"][leaked_tx] == "leaked_card"
    share = CONFIG.leaked_card_fraud_share
    assert abs(fraud.sum() - share * n) <= SIGMAS * math.sqrt(n * share * (1 - share))
    # Same cards, same days: the fraudulent amounts are about five times the others.
    amounts = t["amount"][leaked_tx]
    ratio = amounts[fraud].mean() / amounts[~fraud & (t["scenario"][leaked_tx] == "")].mean()
    assert (
        CONFIG.leaked_card_amount_multiplier * 0.8
        < ratio
        < CONFIG.leaked_card_amount_multiplier * 1.25
    )


def test_compromised_terminals_number_about_days_times_the_daily_count(run) -> None:
    sim, t = run
    picks = [sim.schedule.terminals_picked_on(day) for day in range(DAYS)]
    assert all(p.size == CONFIG.compromised_terminals_per_day for p in picks)
    distinct_picked = np.unique(np.concatenate(picks))
    n = DAYS * CONFIG.compromised_terminals_per_day
    # Picks collide only by chance: about n^2 / (2 n_terminals) of them.
    collisions = n * n / (2 * CONFIG.n_terminals)
    assert n - distinct_picked.size <= collisions + SIGMAS * math.sqrt(collisions)
    seen = np.unique(t["terminal"][t["scenario"] == "compromised_terminal"])
    assert set(seen) <= set(distinct_picked)
    # A picked terminal with customers shows frauds; a few see no traffic in their window.
    assert seen.size >= 0.9 * distinct_picked.size
    cards = [sim.schedule.cards_picked_on(day) for day in range(DAYS)]
    assert all(p.size == CONFIG.leaked_cards_per_day for p in cards)
