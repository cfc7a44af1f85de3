"""Features of a transaction itself: its amount and its time flags (UTC).

Standard library only, like :mod:`services.feature_store.definitions`, so that the
Flink job's environment imports it too. Times are integer milliseconds since the Unix
epoch; the flags are computed with integer arithmetic (no ``datetime``, no time zone
database), so they cannot depend on the machine's local time zone.
"""

from __future__ import annotations

from services.feature_store.definitions import NIGHT_LAST_HOUR, REQUEST_FEATURES

_MS_PER_HOUR = 3_600_000
_MS_PER_DAY = 24 * _MS_PER_HOUR
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0, as datetime.weekday())
_SATURDAY = 5

if REQUEST_FEATURES != ("tx_amount", "tx_is_weekend", "tx_is_night"):  # pragma: no cover
    raise ImportError("time_flags: REQUEST_FEATURES changed, update request_features()")


def weekday(event_time_ms: int) -> int:
    """Day of the week in UTC, Monday = 0 ... Sunday = 6 (as ``datetime.weekday()``).

    Args:
        event_time_ms: milliseconds since the Unix epoch (UTC).

    Returns:
        The weekday number.
    """
    return (event_time_ms // _MS_PER_DAY + _EPOCH_WEEKDAY) % 7


def is_weekend(event_time_ms: int) -> bool:
    """Whether the time falls on a Saturday or a Sunday (UTC)."""
    return weekday(event_time_ms) >= _SATURDAY


def is_night(event_time_ms: int) -> bool:
    """Whether the hour of day (UTC) is at most ``NIGHT_LAST_HOUR`` (00:00 to 06:59:59)."""
    return (event_time_ms // _MS_PER_HOUR) % 24 <= NIGHT_LAST_HOUR


def request_features(amount: float, event_time_ms: int) -> dict[str, float]:
    """The request features of one transaction, in ``REQUEST_FEATURES`` order.

    Args:
        amount: the transaction amount.
        event_time_ms: its event time, milliseconds since the Unix epoch (UTC).

    Returns:
        ``tx_amount``, ``tx_is_weekend`` and ``tx_is_night``; the flags are 0.0 or 1.0.

    Examples:
        >>> # Sunday 2018-04-01 06:59:59 UTC, then Monday 07:00:00
        >>> request_features(12.5, 1522565999000)
        {'tx_amount': 12.5, 'tx_is_weekend': 1.0, 'tx_is_night': 1.0}
        >>> request_features(12.5, 1522652400000)
        {'tx_amount': 12.5, 'tx_is_weekend': 0.0, 'tx_is_night': 0.0}
    """
    return {
        "tx_amount": float(amount),
        "tx_is_weekend": 1.0 if is_weekend(event_time_ms) else 0.0,
        "tx_is_night": 1.0 if is_night(event_time_ms) else 0.0,
    }
