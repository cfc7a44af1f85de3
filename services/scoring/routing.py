"""Sticky canary routing by a keyed hash of the card id.

A card's bucket in [0, 10,000) comes from a keyed BLAKE2b of its id, so the same
card always takes the same route for a given canary weight, the share of cards on
the canary equals the weight, and raising the weight only moves cards from the
champion to the canary (never back). The same keyed hash is the card id that score
events carry: the raw id never leaves the scorer.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


class CardHasher:
    """Keyed hash of card ids: a stable pseudonym and a routing bucket.

    Args:
        key: secret key (up to 64 bytes); without it the pseudonyms could be
            reversed by hashing candidate card ids.

    Examples:
        >>> h = CardHasher(b"k" * 32)
        >>> h.pseudonym("card-1") == h.pseudonym("card-1") != h.pseudonym("card-2")
        True
        >>> 0 <= h.bucket("card-1") < BUCKETS
        True
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not 16 <= len(key) <= 64:
            raise ValueError("card hash key: need 16 to 64 bytes")
        self._key = key

    def digest(self, card_id: str) -> bytes:
        """16-byte keyed BLAKE2b of the card id."""
        return hashlib.blake2b(card_id.encode(), key=self._key, digest_size=16).digest()

    def pseudonym(self, card_id: str) -> str:
        """Hex of :meth:`digest`: what score events and logs carry instead of the id."""
        return self.digest(card_id).hex()

    def bucket(self, card_id: str) -> int:
        """The card's routing bucket in ``[0, BUCKETS)``."""
        return bucket_of(self.digest(card_id))


def bucket_of(digest: bytes) -> int:
    """Routing bucket of a card digest (first 8 bytes, big-endian, mod BUCKETS)."""
    return int.from_bytes(digest[:8], "big") % BUCKETS


def takes_canary(bucket: int, weight: float) -> bool:
    """Whether a card in ``bucket`` goes to a canary holding ``weight`` of the cards.

    Examples:
        >>> takes_canary(0, 0.1), takes_canary(999, 0.1), takes_canary(1000, 0.1)
        (True, True, False)
        >>> takes_canary(0, 0.0)
        False
    """
    return bucket < round(weight * BUCKETS)
