"""Reference backfill: every feature of every transaction, vectorised with pandas/numpy.

An implementation of :mod:`services.feature_store.definitions` independent of the
streaming kernel (:mod:`services.feature_store.aggregation`): it sorts whole columns
and finds each window's bounds by binary search, where the kernel updates one entity's
state per event. Tests prove the two give the same values; backfills from raw events
use this one (the 1.75M transactions of the handbook's dataset take well under a
minute).

Method. Rows are sorted stably by (entity, event time, input order), so the input
order breaks ties at equal times, as arrival order does in the stream. A window
(t - W, t] of the row at sorted position i is the positions [lo, i] of its entity
with lo the first whose time is > t - W (``searchsorted`` on a key that puts each
entity's times in its own range). Sums come from prefix sums in fixed point: each
amount is split into a multiple of 2**-k (summed exactly in int64) and a remainder
below 2**-(k+1) (summed in float64), so a window sum is within about one rounding of
the exact sum, whatever the window's position in the column. Maxima come from a
sparse table (range-maximum queries), distinct terminals from each row's previous
row of the same card and terminal. The delayed terminal window is
(t - D - N, t - D] and counts a transaction as fraud when ``labels`` says so: every
label of a transaction in that window is taken as known, which is what the stream
sees when labels arrive at event time + D (at the latest).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from services.feature_store.definitions import (
    CARD_AMOUNT_WINDOWS,
    CARD_FEATURES,
    CARD_RATIO_FEATURES,
    CARD_TERMINAL_WINDOWS,
    DAY,
    LABEL_DELAY_S,
    NIGHT_LAST_HOUR,
    NO_OLDER_MEAN,
    NO_PREVIOUS,
    REQUEST_FEATURES,
    TERMINAL_FEATURES,
    TERMINAL_WINDOWS,
    amount_ratios,
)

__all__ = ["FEATURE_COLUMNS", "load_fdh", "reference_features"]

_MS = 1000
_KEY_LIMIT = 2**62  # entity * span + time must stay in int64; beyond, search per entity
_KEY_COLUMNS = ("transaction_id", "card_id", "terminal_id", "event_time")
_FDH_COLUMNS = [
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_FRAUD",
]
#: The feature columns of :func:`reference_features`, in order.
FEATURE_COLUMNS: tuple[str, ...] = (*REQUEST_FEATURES, *CARD_FEATURES, *TERMINAL_FEATURES)


def reference_features(
    transactions: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    label_delay_s: int = LABEL_DELAY_S,
) -> pd.DataFrame:
    """Computes every feature of every transaction, as the stream would.

    Args:
        transactions: one row per transaction, in arrival order, with columns
            ``transaction_id``, ``card_id``, ``terminal_id``, ``amount`` and
            ``event_time``: datetime64 (tz-aware, or naive taken as UTC; truncated to
            whole milliseconds, as the stream sees it) or integers in milliseconds
            since the Unix epoch (UTC).
        labels: ``transaction_id`` and ``is_fraud``; the last row of a transaction
            wins. None: no frauds known (every risk is 0).
        label_delay_s: the label delay D of the delayed terminal windows, seconds (> 0).

    Returns:
        One row per transaction, in input order (a fresh RangeIndex): columns
        ``transaction_id``, ``card_id``, ``terminal_id``, ``event_time``
        (datetime64[ns, UTC]), then ``REQUEST_FEATURES``, ``CARD_FEATURES`` and
        ``TERMINAL_FEATURES`` as float64.

    Raises:
        ValueError: ``label_delay_s`` is not positive.
        TypeError: ``event_time`` is neither datetime64 nor integer.

    Examples:
        >>> tx = pd.DataFrame({
        ...     "transaction_id": ["a", "b", "c"], "card_id": ["c1", "c1", "c1"],
        ...     "terminal_id": ["t1", "t2", "t1"], "amount": [10.0, 30.0, 20.0],
        ...     "event_time": [0, 600_000, 86_400_000]})
        >>> out = reference_features(tx, label_delay_s=86_400)
        >>> out["card_tx_count_1h"].tolist(), out["card_tx_count_10m"].tolist()
        ([1.0, 2.0, 1.0], [1.0, 1.0, 1.0])
        >>> out["terminal_delayed_tx_count_1d"].tolist()
        [0.0, 0.0, 1.0]
    """
    if label_delay_s <= 0:
        raise ValueError("label_delay_s: must be > 0")
    tx = transactions.reset_index(drop=True)
    t = _event_time_ms(tx["event_time"])
    amount = tx["amount"].to_numpy(dtype=np.float64)
    fraud = _fraud_flags(tx["transaction_id"], labels)

    columns: dict[str, np.ndarray] = {}
    when = pd.to_datetime(t, unit="ms", utc=True)
    columns["tx_amount"] = amount
    columns["tx_is_weekend"] = (when.dayofweek >= 5).astype(np.float64)
    columns["tx_is_night"] = (when.hour <= NIGHT_LAST_HOUR).astype(np.float64)
    columns |= _card_features(pd.factorize(tx["card_id"])[0], tx["terminal_id"], t, amount)
    columns |= _terminal_features(pd.factorize(tx["terminal_id"])[0], t, fraud, label_delay_s)

    out = pd.DataFrame(
        {
            "transaction_id": tx["transaction_id"],
            "card_id": tx["card_id"],
            "terminal_id": tx["terminal_id"],
            "event_time": when,
        }
    )
    features = pd.DataFrame({name: columns[name] for name in FEATURE_COLUMNS}, index=out.index)
    return pd.concat([out, features], axis=1)


class _Sorted:
    """Rows sorted by (entity, time, input order), with per-entity window bounds."""

    def __init__(self, codes: np.ndarray, t: np.ndarray, reach_ms: int) -> None:
        n = len(t)
        self.order = np.lexsort((np.arange(n), t, codes))
        self.codes = codes[self.order]
        self.t = t[self.order]
        self.position = np.arange(n)
        t0 = int(self.t.min()) if n else 0
        span = (int(self.t.max()) - t0 if n else 0) + reach_ms + 1
        n_groups = int(self.codes.max()) + 1 if n else 0
        self._key: np.ndarray | None = None
        if n_groups * span < _KEY_LIMIT:
            self._key = self.codes.astype(np.int64) * span + (self.t - t0)
        self.starts = np.flatnonzero(np.r_[n > 0, self.codes[1:] != self.codes[:-1]])

    def first_after(self, offset_ms: int) -> np.ndarray:
        """For each row, the first position of its entity with time > its time - offset."""
        if self._key is not None:
            return np.searchsorted(self._key, self._key - offset_ms, side="right")
        bounds = np.empty(len(self.t), dtype=np.int64)
        for start, end in zip(self.starts, np.r_[self.starts[1:], len(self.t)], strict=True):
            times = self.t[start:end]
            bounds[start:end] = start + np.searchsorted(times, times - offset_ms, side="right")
        return bounds

    def unsort(self, values: np.ndarray) -> np.ndarray:
        """Values per sorted position, back in input order."""
        out = np.empty_like(values)
        out[self.order] = values
        return out


def _card_features(
    codes: np.ndarray, terminal_ids: pd.Series, t: np.ndarray, amount: np.ndarray
) -> dict[str, np.ndarray]:
    rows = _Sorted(codes, t, max(w.seconds for w in CARD_AMOUNT_WINDOWS) * _MS)
    a = amount[rows.order]
    hi = rows.position + 1
    sums = _WindowSums(a)
    maxima = _RangeMax(a)
    out: dict[str, np.ndarray] = {}
    for w in CARD_AMOUNT_WINDOWS:
        lo = rows.first_after(w.seconds * _MS)
        count = (hi - lo).astype(np.float64)
        total = sums(lo, hi)
        out[f"card_tx_count_{w.name}"] = count
        out[f"card_amount_sum_{w.name}"] = total
        out[f"card_amount_mean_{w.name}"] = total / count
        out[f"card_amount_max_{w.name}"] = maxima(lo, hi)
    first = np.zeros(len(a), dtype=bool)
    first[rows.starts] = True
    gap = np.empty(len(a))
    gap[1:] = (rows.t[1:] - rows.t[:-1]) / _MS
    out["card_seconds_since_prev"] = np.where(first, NO_PREVIOUS, gap)
    terminal_codes = pd.factorize(terminal_ids)[0][rows.order]
    previous = _previous_same(rows.codes, terminal_codes)
    for w in CARD_TERMINAL_WINDOWS:
        lo = rows.first_after(w.seconds * _MS)
        out[f"card_distinct_terminals_{w.name}"] = _distinct(previous, lo, hi)
    mean = out["card_amount_mean_30d"]
    safe = np.where(mean == 0, 1.0, mean)
    out["card_amount_to_mean_30d"] = np.where(mean == 0, 1.0, a / safe)
    # (t - 30 d, t - 7 d]: from the first row after t - 30 d to the first after t - 7 d.
    older_lo, older_hi = rows.first_after(30 * DAY * _MS), rows.first_after(7 * DAY * _MS)
    older = (older_hi - older_lo).astype(np.float64)
    older_sum = sums(older_lo, older_hi)
    older_mean = np.where(older > 0, older_sum / np.where(older > 0, older, 1.0), NO_OLDER_MEAN)
    ratios = np.vectorize(amount_ratios, otypes=[np.float64] * len(CARD_RATIO_FEATURES))(
        a, older_mean, out["card_amount_max_7d"], out["card_amount_mean_1d"],
        out["card_amount_mean_7d"],
    )  # fmt: skip
    for name, values in zip(CARD_RATIO_FEATURES, ratios, strict=True):
        out[name] = values
    return {name: rows.unsort(values) for name, values in out.items()}


def _terminal_features(
    codes: np.ndarray, t: np.ndarray, fraud: np.ndarray, label_delay_s: int
) -> dict[str, np.ndarray]:
    delay_ms = label_delay_s * _MS
    longest = max(w.seconds for w in TERMINAL_WINDOWS) * _MS
    rows = _Sorted(codes, t, delay_ms + longest)
    hi = rows.position + 1
    cum_fraud = np.r_[0, np.cumsum(fraud[rows.order], dtype=np.int64)]
    delayed_hi = rows.first_after(delay_ms)  # (t - D - N, t - D]: D > 0, so before this row
    out: dict[str, np.ndarray] = {}
    for w in TERMINAL_WINDOWS:
        lo = rows.first_after(w.seconds * _MS)
        out[f"terminal_tx_count_{w.name}"] = (hi - lo).astype(np.float64)
        delayed_lo = rows.first_after(delay_ms + w.seconds * _MS)
        count = delayed_hi - delayed_lo
        frauds = cum_fraud[delayed_hi] - cum_fraud[delayed_lo]
        out[f"terminal_delayed_tx_count_{w.name}"] = count.astype(np.float64)
        out[f"terminal_risk_{w.name}"] = np.divide(
            frauds, count, out=np.zeros(len(t)), where=count > 0
        )
    return {name: rows.unsort(values) for name, values in out.items()}


class _WindowSums:
    """Sums of values[lo:hi] from exact fixed-point prefix sums plus a small remainder."""

    def __init__(self, values: np.ndarray) -> None:
        total = float(np.abs(values).sum()) if len(values) else 0.0
        self.scale_bits = int(min(20, 61 - max(0, int(np.ceil(np.log2(total + 1.0))))))
        scaled = np.round(np.ldexp(values, self.scale_bits))
        remainder = values - np.ldexp(scaled, -self.scale_bits)
        self.whole = np.r_[0, np.cumsum(scaled.astype(np.int64))]
        self.rest = np.r_[0.0, np.cumsum(remainder)]

    def __call__(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        whole = (self.whole[hi] - self.whole[lo]).astype(np.float64)
        return np.ldexp(whole, -self.scale_bits) + (self.rest[hi] - self.rest[lo])


class _RangeMax:
    """Maximum of values[lo:hi] (hi > lo) by a sparse table of power-of-two blocks."""

    def __init__(self, values: np.ndarray) -> None:
        self.levels = [values]

    def __call__(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        length = hi - lo
        level = np.frexp(length.astype(np.float64))[1] - 1  # floor(log2(length))
        while len(self.levels) <= int(level.max(initial=0)):
            step = 1 << (len(self.levels) - 1)
            below = self.levels[-1]
            self.levels.append(np.maximum(below[:-step], below[step:]))
        out = np.empty(len(lo))
        for k in np.unique(level):
            rows = np.flatnonzero(level == k)
            block = self.levels[k]
            out[rows] = np.maximum(block[lo[rows]], block[hi[rows] - (1 << int(k))])
        return out


def _previous_same(cards: np.ndarray, terminals: np.ndarray) -> np.ndarray:
    """For each sorted position, the previous position of the same card and terminal."""
    n = len(cards)
    order = np.lexsort((np.arange(n), terminals, cards))
    same = (cards[order][1:] == cards[order][:-1]) & (terminals[order][1:] == terminals[order][:-1])
    previous = np.full(n, -1, dtype=np.int64)
    previous[order[1:][same]] = order[:-1][same]
    return previous


def _distinct(previous: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Distinct terminals in [lo, hi): positions whose previous same terminal is < lo."""
    out = np.zeros(len(lo))
    rows = np.arange(len(lo))
    back = 0
    while len(rows):
        j = hi[rows] - 1 - back
        out[rows] += previous[j] < lo[rows]
        back += 1
        rows = rows[hi[rows] - lo[rows] > back]
    return out


def _event_time_ms(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.to_numpy(dtype=np.int64)
    if not pd.api.types.is_datetime64_any_dtype(column.dtype):
        raise TypeError(f"event_time: expected datetime64 or integer ms, got {column.dtype}")
    when = pd.DatetimeIndex(column)
    if when.tz is not None:
        when = when.tz_convert("UTC").tz_localize(None)
    return when.as_unit("ns").asi8 // 1_000_000


def _fraud_flags(transaction_ids: pd.Series, labels: pd.DataFrame | None) -> np.ndarray:
    if labels is None or labels.empty:
        return np.zeros(len(transaction_ids), dtype=np.int64)
    last = labels.drop_duplicates("transaction_id", keep="last")
    frauds = last.loc[last["is_fraud"].astype(bool), "transaction_id"]
    return transaction_ids.isin(frauds).to_numpy(dtype=np.int64)


def load_fdh(
    path: str | Path,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    *,
    sorted_input: bool = False,
    chunk_rows: int = 200_000,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Loads the Fraud Detection Handbook's CSV as the replayer sends it.

    Ids as :func:`services.producer.replay.read_fdh_csv` makes them:
    ``"fdh-<TRANSACTION_ID>"``, ``"card-<CUSTOMER_ID>"``, ``"term-<TERMINAL_ID>"``;
    ``TX_DATETIME`` naive is taken as UTC; amounts parsed exactly as Python's
    ``float()`` does. The file is assumed well-formed (the replayer is the place that
    rejects bad rows).

    Args:
        path: the CSV file, gzip-compressed or plain.
        start: keep ``event_time >= start`` (timezone-aware; None: from the first).
        end: keep ``event_time < end`` (timezone-aware; None: to the last).
        sorted_input: the file is in time order, so reading stops at the first chunk
            that starts at or after ``end``.
        chunk_rows: rows parsed at a time.

    Returns:
        ``(transactions, labels)``: transactions with ``transaction_id``, ``card_id``,
        ``terminal_id``, ``amount``, ``event_time`` (datetime64[ns, UTC]) in file
        order; labels with ``transaction_id`` and ``is_fraud`` (bool), one per
        transaction.

    Raises:
        ValueError: ``start`` or ``end`` is naive.
    """
    lower, upper = _aware("start", start), _aware("end", end)
    parts: list[pd.DataFrame] = []
    reader = pd.read_csv(
        path,
        usecols=_FDH_COLUMNS,
        dtype={"TX_DATETIME": str, "TX_AMOUNT": np.float64},
        float_precision="round_trip",
        chunksize=chunk_rows,
    )
    with reader:
        for chunk in reader:
            when = pd.to_datetime(chunk["TX_DATETIME"], utc=True, format="ISO8601")
            keep = np.ones(len(chunk), dtype=bool)
            if lower is not None:
                keep &= (when >= lower).to_numpy()
            if upper is not None:
                keep &= (when < upper).to_numpy()
            part = chunk.loc[keep]
            parts.append(part.assign(TX_DATETIME=when[keep]))
            if sorted_input and upper is not None and len(when) and when.iloc[-1] >= upper:
                break
    raw = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_FDH_COLUMNS)
    ids = "fdh-" + raw["TRANSACTION_ID"].astype(np.int64).astype(str)
    transactions = pd.DataFrame(
        {
            "transaction_id": ids,
            "card_id": "card-" + raw["CUSTOMER_ID"].astype(np.int64).astype(str),
            "terminal_id": "term-" + raw["TERMINAL_ID"].astype(np.int64).astype(str),
            "amount": raw["TX_AMOUNT"].astype(np.float64),
            "event_time": pd.to_datetime(raw["TX_DATETIME"], utc=True).astype(
                "datetime64[ns, UTC]"
            ),
        }
    )
    labels = pd.DataFrame({"transaction_id": ids, "is_fraud": raw["TX_FRAUD"].astype(bool)})
    return transactions, labels


def _aware(name: str, value: datetime | str | None) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{name}: must be timezone-aware")
    return stamp.tz_convert("UTC")
