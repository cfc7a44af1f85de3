"""The transaction simulator: a seeded, endless, event-time-ordered stream.

It follows the Fraud Detection Handbook's generative process (chapter 3, "Transaction
data simulator"), one day at a time, so months of traffic stream in constant memory:

* each customer makes ``Poisson(mean_nb_tx_per_day)`` transactions a day;
* at a time of day drawn from ``Normal(12:00, 20000 s)``, truncated to whole seconds;
  draws outside the day are dropped, as in the handbook (clipping them would pile
  about 1.5 % of all transactions up at exactly midnight);
* for an amount drawn from ``Normal(mean_amount, mean_amount / 2)``, redrawn from
  ``Uniform(0, 2 * mean_amount)`` when negative (the handbook's rule), in cents;
* at a terminal drawn uniformly among the customer's terminals within the radius
  (customers with none make no transactions).

After the drift, regular amounts are multiplied by ``drift_amount_multiplier``, and so
is the threshold of scenario 1: its fraud rate stays the same, but genuine spend now
reaches amounts that used to mean fraud (a fixed threshold would instead turn about
4 % of all transactions into "fraud" at x1.6 and swamp every other scenario). Fraud
scenarios (:mod:`services.producer.scenarios`) then relabel and add transactions, and
every transaction gets a label, genuine or not, that becomes known ``label_delay``
after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np

from riskstream.v1 import events_pb2
from services.common.errors import ConfigError
from services.producer.config import SimulatorConfig
from services.producer.events import LabelledTransaction, SimulatedStream, merge_labels
from services.producer.profiles import CustomerProfiles, TerminalProfiles, build_profiles
from services.producer.scenarios import (
    AMOUNT_THRESHOLD,
    COMPROMISED_TERMINAL,
    GENUINE,
    LEAKED_CARD,
    PURPOSE_PROFILES,
    PURPOSE_TRANSACTIONS,
    SCENARIO_NAMES,
    SECONDS_PER_DAY,
    FraudSchedule,
    InjectedTransactions,
    card_testing,
    day_rng,
    night_ecommerce,
)

TIME_OF_DAY_MEAN_S = SECONDS_PER_DAY / 2
TIME_OF_DAY_STD_S = 20_000.0
_DAY = timedelta(days=1)


class TransactionSimulator:
    """Generates labelled card transactions, one simulated day at a time.

    Profiles are drawn once, on construction (about a second for the default 5,000
    customers and 10,000 terminals); days are then generated on demand, each from
    its own seeded generators, so the same config always gives the same stream and
    a stream can start on any day without generating the days before it.

    Args:
        config: the simulator settings.

    Attributes:
        config: the settings.
        customers: the customer profiles.
        terminals: the terminal profiles (regular terminals only; the drift's new
            merchants follow them, numbered from ``config.n_terminals``).
        schedule: which terminals and cards are compromised on each day.

    Examples:
        >>> from services.producer import SimulatorConfig, TransactionSimulator
        >>> sim = TransactionSimulator(SimulatorConfig(seed=7, n_customers=50, n_terminals=100))
        >>> stream = sim.stream()
        >>> for event in stream.take(3):
        ...     tx = event.transaction
        ...     print(event.kind, event.emit_at.isoformat(), tx.transaction_id, tx.card_id,
        ...           tx.terminal_id, tx.amount, tx.merchant_category)
        transaction 2018-04-01T00:09:33+00:00 tx-7-00000-000000 card-000045 term-00064 65.11 7011
        transaction 2018-04-01T02:20:24+00:00 tx-7-00000-000001 card-000028 term-00093 45.74 5541
        transaction 2018-04-01T03:53:52+00:00 tx-7-00000-000002 card-000028 term-00093 76.58 5541
        >>> label = next(e for e in stream if e.kind == "label").label
        >>> delay_s = label.label_time.seconds - label.event_time.seconds
        >>> label.transaction_id, label.is_fraud, delay_s
        ('tx-7-00000-000000', False, 604800)
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.customers: CustomerProfiles
        self.terminals: TerminalProfiles
        self.customers, self.terminals = build_profiles(
            config, day_rng(config.seed, -1, PURPOSE_PROFILES)
        )
        self.schedule = FraudSchedule(config)
        self._start_s = int(config.start.timestamp())
        self._delay_ns = config.label_delay // timedelta(microseconds=1) * 1000
        drift_start = config.drift_start
        self._drift_s = None if drift_start is None else drift_start.timestamp()

        n_all = config.n_terminals + config.drift_fraud_terminals
        self._card_ids = [f"card-{i:06d}" for i in range(config.n_customers)]
        self._terminal_ids = [f"term-{i:05d}" for i in range(n_all)]
        self._merchant_ids = [f"merch-{i:05d}" for i in range(n_all)]
        extra = config.drift_fraud_terminals
        self._mcc = self.terminals.merchant_category.tolist() + [config.drift_fraud_mcc] * extra
        self._country = self.terminals.country.tolist() + [config.drift_fraud_country] * extra
        self._ecommerce_terminals = np.flatnonzero(
            self.terminals.channel == events_pb2.CHANNEL_ECOMMERCE
        )

    def day(self, day: int) -> list[LabelledTransaction]:
        """All transactions of one day with their labels, in event-time order.

        Args:
            day: day number, 0 for the day that begins at ``config.start``.

        Returns:
            The day's labelled transactions; transaction ids are
            ``tx-<seed>-<day>-<n>`` with ``n`` the rank in the day.
        """
        return list(self._build_day(day, 0, SECONDS_PER_DAY))

    def iter_days(
        self, first_day: int = 0, n_days: int | None = None
    ) -> Iterator[list[LabelledTransaction]]:
        """The days one after the other, endless unless ``n_days`` is given.

        Args:
            first_day: the first day number.
            n_days: how many days, or None for no end.

        Yields:
            Each day's labelled transactions, in event-time order.
        """
        day = first_day
        while n_days is None or day < first_day + n_days:
            yield self.day(day)
            day += 1

    def stream(self, start: datetime | None = None, end: datetime | None = None) -> SimulatedStream:
        """Transactions and their labels merged in one ``emit_at``-ordered stream.

        The stream holds the transactions with event times in ``[start, end)`` and
        the labels of exactly those transactions (the last ones come after ``end``).

        Args:
            start: first event time; defaults to ``config.start``. Starting later
                skips ahead without generating the days before.
            end: end of event time (exclusive), or None for an endless stream.

        Returns:
            A one-pass stream of :class:`~services.producer.events.SimulatedEvent`.

        Raises:
            ConfigError: ``start`` is before ``config.start`` or is not UTC-aware.
        """
        start = self.config.start if start is None else start
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.utcoffset() is None:
                raise ConfigError(f"{name}: must be timezone-aware")
        if start < self.config.start:
            raise ConfigError(f"start: {start} is before the simulation's start")
        from_s = int(np.ceil(start.timestamp())) - self._start_s
        to_s = None if end is None else int(np.ceil(end.timestamp())) - self._start_s
        return SimulatedStream(merge_labels(self._labelled(from_s, to_s)))

    def _labelled(self, from_s: int, to_s: int | None) -> Iterator[LabelledTransaction]:
        day = from_s // SECONDS_PER_DAY
        while to_s is None or day * SECONDS_PER_DAY < to_s:
            lo = max(0, from_s - day * SECONDS_PER_DAY)
            hi = SECONDS_PER_DAY
            if to_s is not None:
                hi = min(hi, to_s - day * SECONDS_PER_DAY)
            yield from self._build_day(day, lo, hi)
            day += 1

    def _build_day(self, day: int, lo: int, hi: int) -> Iterator[LabelledTransaction]:
        """Draws a whole day, then builds the transactions in seconds [lo, hi) one by one."""
        second, customer, terminal, amount, scenario, channel = self._draw_day(day)
        day_s = self._start_s + day * SECONDS_PER_DAY
        config = self.config
        seed, currency, delay_ns = config.seed, config.currency, self._delay_ns
        card_ids, terminal_ids, merchant_ids = (
            self._card_ids,
            self._terminal_ids,
            self._merchant_ids,
        )
        mccs, countries = self._mcc, self._country
        first = int(np.searchsorted(second, lo, side="left"))
        last = int(np.searchsorted(second, hi, side="left"))
        rows = zip(
            range(first, last),
            second[first:last].tolist(),
            customer[first:last].tolist(),
            terminal[first:last].tolist(),
            amount[first:last].tolist(),
            scenario[first:last].tolist(),
            channel[first:last].tolist(),
            strict=True,
        )
        for n, sec, cust, term, amt, code, chan in rows:
            event_s = day_s + sec
            tx = events_pb2.Transaction(
                transaction_id=f"tx-{seed}-{day:05d}-{n:06d}",
                card_id=card_ids[cust],
                terminal_id=terminal_ids[term],
                merchant_id=merchant_ids[term],
                amount=amt,
                currency=currency,
                merchant_category=mccs[term],
                channel=chan,
                country=countries[term],
            )
            tx.event_time.seconds = event_s
            yield LabelledTransaction(
                tx, code != GENUINE, SCENARIO_NAMES[code], event_s * 1_000_000_000 + delay_ns
            )

    def _draw_day(self, day: int) -> tuple[np.ndarray, ...]:
        """One day as parallel arrays sorted by second of day (ties keep draw order)."""
        config, customers = self.config, self.customers
        rng = day_rng(config.seed, day, PURPOSE_TRANSACTIONS)

        # Regular transactions (handbook).
        n_per_customer = rng.poisson(customers.mean_nb_tx_per_day)
        customer = np.repeat(np.arange(config.n_customers), n_per_customer)
        n = customer.size
        second = np.trunc(rng.normal(TIME_OF_DAY_MEAN_S, TIME_OF_DAY_STD_S, n)).astype(np.int64)
        mean = customers.mean_amount[customer]
        amount = rng.normal(mean, customers.std_amount[customer])
        negative = amount < 0
        amount[negative] = rng.uniform(0.0, 2.0 * mean[negative])
        u_terminal, u_leak, u_contactless = rng.random((3, n))
        n_available = customers.n_available[customer]
        keep = (second > 0) & (second < SECONDS_PER_DAY) & (n_available > 0)
        customer, second, amount = customer[keep], second[keep], amount[keep]
        u_terminal, u_leak, u_contactless = u_terminal[keep], u_leak[keep], u_contactless[keep]
        pick = (u_terminal * n_available[keep]).astype(np.int64)
        terminal = customers.terminal_indices[customers.terminal_offsets[customer] + pick]

        # Drift: a shifted spend distribution; the threshold of scenario 1 moves with it.
        day_s = self._start_s + day * SECONDS_PER_DAY
        threshold = np.full(amount.size, config.amount_threshold)
        if self._drift_s is not None:
            drifted = day_s + second >= self._drift_s
            amount[drifted] *= config.drift_amount_multiplier
            threshold[drifted] *= config.drift_amount_multiplier
        amount = np.round(amount, 2)

        # Scenarios 1-3 relabel regular transactions; later ones win.
        scenario = np.where(amount > threshold, AMOUNT_THRESHOLD, GENUINE)
        scenario[np.isin(terminal, self.schedule.compromised_terminals(day))] = COMPROMISED_TERMINAL
        leaked = np.isin(customer, self.schedule.leaked_cards(day)) & (
            u_leak < config.leaked_card_fraud_share
        )
        amount[leaked] = np.round(amount[leaked] * config.leaked_card_amount_multiplier, 2)
        scenario[leaked] = LEAKED_CARD

        channel = self.terminals.channel[terminal].copy()
        contactless = (
            (channel == events_pb2.CHANNEL_CARD_PRESENT)
            & (amount <= config.contactless_limit)
            & (u_contactless < config.contactless_share)
        )
        channel[contactless] = events_pb2.CHANNEL_CONTACTLESS

        # Scenarios 4-5 add transactions.
        batches = [
            InjectedTransactions(second, customer, terminal, amount, scenario, channel),
            card_testing(config, day, self._ecommerce_terminals),
        ]
        if self._drift_s is not None and day_s + SECONDS_PER_DAY > self._drift_s:
            earliest = max(0, int(np.ceil(self._drift_s - day_s)))
            batches.append(night_ecommerce(config, day, earliest))
        columns = [
            np.concatenate([getattr(b, name) for b in batches])
            for name in ("second_of_day", "customer", "terminal", "amount", "scenario", "channel")
        ]
        order = np.argsort(columns[0], kind="stable")
        return tuple(column[order] for column in columns)
