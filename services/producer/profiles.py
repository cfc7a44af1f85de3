"""Customer and terminal profiles of the simulator (Fraud Detection Handbook, ch. 3).

Customers and terminals sit at uniform random points of a 100 x 100 map. A customer
spends ``Normal(mean_amount, mean_amount / 2)`` per transaction, with ``mean_amount``
uniform on [5, 100], makes ``Poisson(mean_nb_tx_per_day)`` transactions a day, with
``mean_nb_tx_per_day`` uniform on [0, 4], and pays only at the terminals closer than
the configured radius. On top of the handbook, each terminal is one merchant with a
merchant category (ISO 18245 MCC), a kind (card-present, e-commerce or mail/telephone
order) and a country.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskstream.v1 import events_pb2
from services.producer.config import SimulatorConfig

MAP_SIZE = 100.0
MEAN_AMOUNT_RANGE = (5.0, 100.0)
MEAN_TX_PER_DAY_RANGE = (0.0, 4.0)

# Merchant categories of card-present terminals, with their share of those terminals.
CARD_PRESENT_MCCS: tuple[tuple[str, float], ...] = (
    ("5411", 0.24),  # grocery stores, supermarkets
    ("5812", 0.14),  # eating places, restaurants
    ("5814", 0.08),  # fast-food restaurants
    ("5541", 0.08),  # service stations
    ("5912", 0.06),  # drug stores, pharmacies
    ("5311", 0.05),  # department stores
    ("5651", 0.07),  # family clothing stores
    ("5732", 0.03),  # electronics stores
    ("5942", 0.03),  # book stores
    ("5999", 0.09),  # miscellaneous and specialty retail
    ("4111", 0.06),  # local commuter transport
    ("4121", 0.04),  # taxicabs
    ("7011", 0.03),  # hotels
)
# Merchant categories of remote terminals, with their channel and share.
REMOTE_MCCS: tuple[tuple[str, int, float], ...] = (
    ("5964", events_pb2.CHANNEL_ECOMMERCE, 0.20),  # catalogue merchants
    ("5969", events_pb2.CHANNEL_ECOMMERCE, 0.15),  # other direct marketing
    ("5815", events_pb2.CHANNEL_ECOMMERCE, 0.20),  # digital goods: media
    ("5818", events_pb2.CHANNEL_ECOMMERCE, 0.15),  # digital goods: large merchants
    ("4722", events_pb2.CHANNEL_ECOMMERCE, 0.15),  # travel agencies
    ("4899", events_pb2.CHANNEL_ECOMMERCE, 0.05),  # pay TV, streaming subscriptions
    ("5962", events_pb2.CHANNEL_MOTO, 0.10),  # telephone sales of travel services
)
FOREIGN_COUNTRIES: tuple[str, ...] = ("FR", "NL", "DE", "LU", "GB", "ES", "IT", "US")

_CUSTOMER_CHUNK = 256


@dataclass(frozen=True, slots=True)
class CustomerProfiles:
    """Per-customer parameters, as read-only arrays indexed by customer number.

    Attributes:
        x: horizontal position on the map.
        y: vertical position on the map.
        mean_amount: mean amount of a transaction, in the config's currency.
        std_amount: standard deviation of the amount (half the mean).
        mean_nb_tx_per_day: Poisson mean of the number of transactions a day.
        terminal_offsets: customer ``c`` may use ``terminal_indices[offsets[c]:
            offsets[c + 1]]``; length ``n_customers + 1``.
        terminal_indices: the available terminals of all customers, concatenated.
    """

    x: np.ndarray
    y: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_nb_tx_per_day: np.ndarray
    terminal_offsets: np.ndarray
    terminal_indices: np.ndarray

    @property
    def n_available(self) -> np.ndarray:
        """Number of terminals each customer may use."""
        return np.diff(self.terminal_offsets)

    def available_terminals(self, customer: int) -> np.ndarray:
        """The terminals a customer may use.

        Args:
            customer: customer number, 0-based.

        Returns:
            Terminal numbers in increasing order.
        """
        offsets = self.terminal_offsets
        return self.terminal_indices[offsets[customer] : offsets[customer + 1]]


@dataclass(frozen=True, slots=True)
class TerminalProfiles:
    """Per-terminal parameters, as read-only arrays indexed by terminal number.

    Attributes:
        x: horizontal position on the map.
        y: vertical position on the map.
        channel: the terminal's kind as a ``Channel`` value: ``CHANNEL_CARD_PRESENT``
            (card-present transactions may also be contactless),
            ``CHANNEL_ECOMMERCE`` or ``CHANNEL_MOTO``.
        merchant_category: ISO 18245 MCC of the terminal's merchant.
        country: ISO 3166-1 alpha-2 code of the terminal's country.
    """

    x: np.ndarray
    y: np.ndarray
    channel: np.ndarray
    merchant_category: np.ndarray
    country: np.ndarray


def build_profiles(
    config: SimulatorConfig, rng: np.random.Generator
) -> tuple[CustomerProfiles, TerminalProfiles]:
    """Draws the customers and terminals.

    Args:
        config: the simulator settings.
        rng: the generator reserved for profiles.

    Returns:
        The customer and terminal profiles.
    """
    n_c, n_t = config.n_customers, config.n_terminals
    cx = rng.uniform(0.0, MAP_SIZE, n_c)
    cy = rng.uniform(0.0, MAP_SIZE, n_c)
    mean_amount = rng.uniform(*MEAN_AMOUNT_RANGE, n_c)
    mean_nb_tx = rng.uniform(*MEAN_TX_PER_DAY_RANGE, n_c)
    tx = rng.uniform(0.0, MAP_SIZE, n_t)
    ty = rng.uniform(0.0, MAP_SIZE, n_t)

    channel = np.full(n_t, events_pb2.CHANNEL_CARD_PRESENT, dtype=np.int64)
    mcc = np.empty(n_t, dtype="<U4")
    remote = np.zeros(n_t, dtype=bool)
    remote[rng.choice(n_t, round(config.ecommerce_terminal_share * n_t), replace=False)] = True
    present_weights = np.array([w for _, w in CARD_PRESENT_MCCS])
    pick = rng.choice(len(CARD_PRESENT_MCCS), n_t, p=present_weights / present_weights.sum())
    mcc[:] = np.array([code for code, _ in CARD_PRESENT_MCCS])[pick]
    remote_weights = np.array([w for _, _, w in REMOTE_MCCS])
    pick = rng.choice(len(REMOTE_MCCS), int(remote.sum()), p=remote_weights / remote_weights.sum())
    mcc[remote] = np.array([code for code, _, _ in REMOTE_MCCS])[pick]
    channel[remote] = np.array([ch for _, ch, _ in REMOTE_MCCS])[pick]

    country = np.full(n_t, config.home_country, dtype="<U2")
    foreign = rng.choice(n_t, round(config.foreign_terminal_share * n_t), replace=False)
    country[foreign] = np.array(FOREIGN_COUNTRIES)[
        rng.integers(0, len(FOREIGN_COUNTRIES), foreign.size)
    ]

    offsets, indices = _terminals_within(cx, cy, tx, ty, config.radius)
    customers = CustomerProfiles(
        x=cx,
        y=cy,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2.0,
        mean_nb_tx_per_day=mean_nb_tx,
        terminal_offsets=offsets,
        terminal_indices=indices,
    )
    terminals = TerminalProfiles(
        x=tx, y=ty, channel=channel, merchant_category=mcc, country=country
    )
    for profiles in (customers, terminals):
        for name in profiles.__dataclass_fields__:
            getattr(profiles, name).flags.writeable = False
    return customers, terminals


def _terminals_within(
    cx: np.ndarray, cy: np.ndarray, tx: np.ndarray, ty: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's terminals closer than ``radius``, as offsets into one flat array.

    Customers go in chunks so the distance matrix never exceeds a few megabytes.
    """
    counts: list[np.ndarray] = []
    indices: list[np.ndarray] = []
    r2 = radius * radius
    for lo in range(0, cx.size, _CUSTOMER_CHUNK):
        hi = lo + _CUSTOMER_CHUNK
        d2 = (cx[lo:hi, None] - tx[None, :]) ** 2 + (cy[lo:hi, None] - ty[None, :]) ** 2
        within = d2 < r2
        counts.append(within.sum(axis=1))
        indices.append(np.nonzero(within)[1])
    offsets = np.zeros(cx.size + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts), out=offsets[1:])
    return offsets, np.concatenate(indices).astype(np.int64)
