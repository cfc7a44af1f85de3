"""Key files: permissions, no overwrite, load errors, sign/verify."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from services.common.errors import ConfigError
from services.registry import (
    generate_key_pair,
    key_id,
    load_private_key,
    load_public_key,
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
