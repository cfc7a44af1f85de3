"""Ed25519 signatures over artifact digests.

The signed message is the artifact digest as 64 lowercase ASCII hex characters, so
a signature can be checked from the ``model-updates`` record alone, before any file
is read. Keys are PEM files: PKCS#8 private key (mode 0600), SubjectPublicKeyInfo
public key.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.common.errors import ConfigError

PRIVATE_KEY_FILE = "signing_key.pem"
PUBLIC_KEY_FILE = "signing_key.pub.pem"
#: The local stack's key pair lives in ``<state>/signing`` (``riskstream up`` makes it).
LOCAL_SIGNING_DIR = "signing"


@dataclass(frozen=True)
class KeyPairPaths:
    """Where :func:`generate_key_pair` wrote the keys."""

    private_key: Path
    public_key: Path


def _message(digest: str) -> bytes:
    return digest.lower().encode("ascii")


def generate_key_pair(directory: Path) -> KeyPairPaths:
    """Create a new ed25519 key pair as PEM files in ``directory``.

    Raises:
        ConfigError: a key file already exists there (keys are never overwritten).
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = KeyPairPaths(directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE)
    for path in (paths.private_key, paths.public_key):
        if path.exists():
            raise ConfigError(f"{path} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created 0600 from the start: the private key is never world-readable, even briefly.
    fd = os.open(paths.private_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem)
    paths.public_key.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return paths


def local_key_pair(state_dir: Path) -> KeyPairPaths:
    """Where the local stack's key pair is (or will be): ``<state_dir>/signing``."""
    directory = state_dir / LOCAL_SIGNING_DIR
    return KeyPairPaths(directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE)


def ensure_local_key_pair(state_dir: Path) -> KeyPairPaths:
    """The local stack's key pair (:func:`local_key_pair`), generated on first use."""
    return ensure_key_pair(state_dir / LOCAL_SIGNING_DIR)


def ensure_key_pair(directory: Path, *, wait_s: float = 5.0) -> KeyPairPaths:
    """The key pair in ``directory``, generated on first use.

    Why: signing is on by default in the local stack, so whichever process needs the
    pair first (``riskstream up``, the demo's first training) creates it, and the
    others find it. Safe against a concurrent creator: the private key is created
    with ``O_EXCL``, and a loser waits up to ``wait_s`` for the winner's public key.

    Raises:
        ConfigError: only one of the two files exists (a half pair is never
            completed or replaced: a new private key would orphan every signature).
    """
    paths = KeyPairPaths(directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE)
    if not paths.private_key.exists() and not paths.public_key.exists():
        try:
            return generate_key_pair(directory)
        except (ConfigError, FileExistsError):
            pass  # another process is creating it right now
    deadline = time.monotonic() + wait_s
    while paths.private_key.exists() and not paths.public_key.exists():
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if paths.private_key.exists() != paths.public_key.exists():
        present = paths.private_key if paths.private_key.exists() else paths.public_key
        raise ConfigError(
            f"half a signing key pair in {directory}: only {present.name} is there; "
            "restore the other file or remove both to start a new pair"
        )
    return paths


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an unencrypted PKCS#8 PEM ed25519 private key.

    Raises:
        ConfigError: unreadable, malformed, or not an ed25519 key.
    """
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load private key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read a PEM ed25519 public key.

    Raises:
        ConfigError: unreadable, malformed, or not an ed25519 key.
    """
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load public key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an ed25519 public key")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short stable id of a public key (first 16 hex of the sha256 of its raw bytes)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_digest(private_key: Ed25519PrivateKey, digest: str) -> bytes:
    """The 64-byte ed25519 signature of ``digest`` (hex, case-insensitive)."""
    return private_key.sign(_message(digest))


def verify_digest(public_key: Ed25519PublicKey, digest: str, signature: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s signature of ``digest``."""
    try:
        public_key.verify(signature, _message(digest))
    except InvalidSignature:
        return False
    return True
