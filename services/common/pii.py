"""Raw card numbers (PANs): recognise them, and keep them out of what we store.

Our topics carry card tokens only. A PAN that reaches us anyway (a producer's bug)
is rejected by validation, and the dead-letter copy of that record has the number
masked, so no topic, log or file of ours ever holds one.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[ -]")
# 13-19 digits, optionally grouped by single spaces or hyphens, not inside a longer number.
_CANDIDATE = re.compile(rb"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


def passes_luhn(digits: str) -> bool:
    """The Luhn checksum every card number satisfies.

    Examples:
        >>> passes_luhn("4111111111111111"), passes_luhn("4111111111111112")
        (True, False)
    """
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def looks_like_pan(value: str) -> bool:
    """13-19 digits (spaces or hyphens allowed between them) passing Luhn."""
    digits = _SEPARATORS.sub("", value)
    return 13 <= len(digits) <= 19 and digits.isascii() and digits.isdigit() and passes_luhn(digits)


def redact_pans(data: bytes) -> tuple[bytes, int]:
    """Mask every PAN-like digit run in ``data``, keeping the first 6 and last 4 digits.

    Returns:
        The masked bytes and how many numbers were masked.

    Examples:
        >>> redact_pans(b'{"card_id":"4111 1111 1111 1111","amount":12}')
        (b'{"card_id":"411111******1111","amount":12}', 1)
    """
    count = 0

    def mask(match: re.Match[bytes]) -> bytes:
        nonlocal count
        digits = _SEPARATORS.sub("", match.group().decode())
        if not passes_luhn(digits):
            return match.group()
        count += 1
        return (digits[:6] + "*" * (len(digits) - 10) + digits[-4:]).encode()

    return _CANDIDATE.sub(mask, data), count
