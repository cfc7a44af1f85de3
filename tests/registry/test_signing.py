"""Key files: permissions, no overwrite, load errors, sign/verify."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.common.errors import ConfigError
from services.registry import (
    ensure_key_pair,
    ensure_local_key_pair,
    generate_key_pair,
    key_id,
    load_private_key,
    load_public_key,
    local_key_pair,
    sign_digest,
    verify_digest,
)

DIGEST = "ab" * 32


def test_generated_keys_sign_and_verify(tmp_path: Path) -> None:
    paths = generate_key_pair(tmp_path / "keys")
    assert stat.S_IMODE(paths.private_key.stat().st_mode) == 0o600
    private, public = load_private_key(paths.private_key), load_public_key(paths.public_key)
    signature = sign_digest(private, DIGEST)
    assert len(signature) == 64
    assert verify_digest(public, DIGEST, signature)
    assert verify_digest(public, DIGEST.upper(), signature)
    assert not verify_digest(public, "cd" * 32, signature)
    assert not verify_digest(public, DIGEST, b"\x00" * 64)
    assert key_id(public) == key_id(private.public_key()) and len(key_id(public)) == 16


def test_keys_are_never_overwritten(tmp_path: Path) -> None:
    generate_key_pair(tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        generate_key_pair(tmp_path)


def test_loading_a_non_key_fails_clearly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(ConfigError):
        load_private_key(junk)
    with pytest.raises(ConfigError):
        load_public_key(junk)
    with pytest.raises(ConfigError):
        load_public_key(tmp_path / "absent.pem")
    paths = generate_key_pair(tmp_path / "k")
    with pytest.raises(ConfigError):
        load_public_key(paths.private_key)  # a private key where a public one is expected


def test_the_local_key_pair_is_made_once_and_then_found(tmp_path: Path) -> None:
    first = ensure_local_key_pair(tmp_path)
    assert first == local_key_pair(tmp_path)
    assert first.private_key.parent == tmp_path / "signing"
    before = first.private_key.read_bytes()
    assert ensure_local_key_pair(tmp_path) == first
    assert first.private_key.read_bytes() == before  # found, not regenerated


def test_concurrent_first_users_share_one_pair(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        pairs = list(pool.map(lambda _: ensure_local_key_pair(tmp_path), range(8)))
    assert len(set(pairs)) == 1
    private = load_private_key(pairs[0].private_key)
    public = load_public_key(pairs[0].public_key)
    assert verify_digest(public, DIGEST, sign_digest(private, DIGEST))


def test_half_a_pair_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    pair = ensure_key_pair(tmp_path)
    pair.public_key.unlink()
    with pytest.raises(ConfigError, match=r"half a signing key pair.*only signing_key\.pem"):
        ensure_key_pair(tmp_path, wait_s=0.1)
    assert pair.private_key.exists() and not pair.public_key.exists()
