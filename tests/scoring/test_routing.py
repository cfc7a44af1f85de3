"""Canary routing: the share of cards equals the weight, and a card never flips."""

from __future__ import annotations

import pytest

from services.scoring.routing import CardHasher, takes_canary

KEY = b"routing-test-key-0123456789abcdef"


def _shares(hasher: CardHasher, weight: float, n: int = 100_000) -> tuple[float, list[bool]]:
    routes = [takes_canary(hasher.bucket(f"card-{i:06d}"), weight) for i in range(n)]
    return sum(routes) / n, routes


def test_canary_at_10_percent_takes_10_percent_of_100k_cards_and_is_sticky() -> None:
    hasher = CardHasher(KEY)
    share, first = _shares(hasher, 0.10)
    assert share == pytest.approx(0.10, abs=0.01)
    _, again = _shares(CardHasher(KEY), 0.10)
    assert again == first, "a card changed route between two passes"


def test_raising_the_weight_only_moves_cards_to_the_canary() -> None:
    hasher = CardHasher(KEY)
    _, at_10 = _shares(hasher, 0.10, 20_000)
    share_50, at_50 = _shares(hasher, 0.50, 20_000)
    assert share_50 == pytest.approx(0.5, abs=0.02)
    assert all(b for a, b in zip(at_10, at_50, strict=True) if a)


def test_another_key_gives_other_pseudonyms_so_ids_cannot_be_looked_up() -> None:
    a, b = CardHasher(KEY), CardHasher(b"another-key-0123456789abcdef0000")
    assert a.pseudonym("card-1") != b.pseudonym("card-1")
    assert "card-1" not in a.pseudonym("card-1")
    with pytest.raises(ValueError, match="16 to 64"):
        CardHasher(b"short")
