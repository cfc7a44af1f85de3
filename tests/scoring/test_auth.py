"""Tokens: per-person and shared tokens, who presented one, and what each role may call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.errors import ConfigError
from services.scoring.auth import Principal, TokenAuthority
from services.scoring.client import read_token
from services.scoring.errors import PermissionDenied, Unauthenticated

ALICE, BOB, SHARED_SCORE = "a" * 32, "b" * 32, "s" * 32
ADMIN_RPC = "/riskstream.v1.ModelAdmin/Promote"


def test_a_per_person_token_names_its_holder_and_a_shared_one_only_its_role() -> None:
    auth = TokenAuthority({"score": SHARED_SCORE, "admin": {"alice": ALICE, "bob": BOB}})
    assert auth.principal_of(f"Bearer {ALICE}") == Principal("admin", "alice")
    assert auth.principal_of(f"bearer {BOB} ") == Principal("admin", "bob")
    shared = auth.principal_of(f"Bearer {SHARED_SCORE}")
    assert shared == Principal("score", "score") and not shared.personal
    assert auth.check(ADMIN_RPC, f"Bearer {BOB}") == "admin"
    with pytest.raises(PermissionDenied):
        auth.check(ADMIN_RPC, f"Bearer {SHARED_SCORE}")
    with pytest.raises(Unauthenticated, match="unknown token"):
        auth.principal_of("Bearer " + "x" * 32)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ({"admin": {"alice": ALICE, "bob": ALICE}}, "issued twice"),
        ({"score": ALICE, "admin": {"alice": ALICE}}, "issued twice"),
        ({"admin": {"score": ALICE}}, "named like a role"),
        ({"admin": {"alice": "short"}}, "admin token of alice is shorter"),
        ({"admin": {}}, "no token"),
        ({"root": ALICE}, "roles must be among"),
    ],
)
def test_ambiguous_or_weak_token_files_are_refused(tokens: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TokenAuthority(tokens)


def test_the_file_form_and_the_clients_reader(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"score": SHARED_SCORE, "admin": {"alice": ALICE}}))
    auth = TokenAuthority.from_file(path)
    assert auth.principal_of(f"Bearer {ALICE}").name == "alice"
    assert read_token(path, "score") == SHARED_SCORE
    # A person's token is theirs: the shared file cannot hand one out.
    with pytest.raises(ConfigError, match=r"per-person tokens.*RISKSTREAM_ADMIN_TOKEN"):
        read_token(path, "admin")
    path.write_text(json.dumps({"admin": ["not", "a", "token"]}))
    with pytest.raises(ConfigError, match="role -> person -> token"):
        TokenAuthority.from_file(path)
