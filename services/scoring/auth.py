"""Bearer tokens with two roles, and which role each method needs.

``score`` may call FraudScoring and the inference RPCs that read or run models;
``admin`` may call everything, including ModelAdmin. Health, reflection and the
Open Inference Protocol's liveness/readiness answer without a token, so probes,
grpcurl and load balancers work. Any other method needs ``admin`` (deny by default).
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import ConfigError
from services.scoring.errors import PermissionDenied, Unauthenticated

SCORE = "score"
ADMIN = "admin"
ROLES = (SCORE, ADMIN)
#: Where the CLI finds a person's own admin token (per-person tokens are not read
#: from the shared tokens file).
ADMIN_TOKEN_ENV = "RISKSTREAM_ADMIN_TOKEN"

_PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_PUBLIC_METHODS = frozenset(
    {
        "/inference.GRPCInferenceService/ServerLive",
        "/inference.GRPCInferenceService/ServerReady",
        "/inference.GRPCInferenceService/ModelReady",
    }
)
_SCORE_PREFIXES = ("/riskstream.v1.FraudScoring/",)
_SCORE_METHODS = frozenset(
    {
        "/inference.GRPCInferenceService/ServerMetadata",
        "/inference.GRPCInferenceService/ModelMetadata",
        "/inference.GRPCInferenceService/ModelConfig",
        "/inference.GRPCInferenceService/ModelInfer",
        "/inference.GRPCInferenceService/ModelStreamInfer",
        "/inference.GRPCInferenceService/ModelStatistics",
    }
)


def required_role(method: str) -> str | None:
    """The role a method needs; None for public methods.

    Examples:
        >>> required_role("/riskstream.v1.FraudScoring/Score")
        'score'
        >>> required_role("/riskstream.v1.ModelAdmin/Promote")
        'admin'
        >>> required_role("/grpc.health.v1.Health/Check") is None
        True
    """
    if method in _PUBLIC_METHODS or method.startswith(_PUBLIC_PREFIXES):
        return None
    if method in _SCORE_METHODS or method.startswith(_SCORE_PREFIXES):
        return SCORE
    return ADMIN


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presented a token: its role, and the person it was issued to.

    Attributes:
        role: ``score`` or ``admin``.
        name: the person's name for a per-person token; the role's name for a
            role's shared token (then nobody in particular is known).
    """

    role: str
    name: str

    @property
    def personal(self) -> bool:
        """Whether the token names one person (not a role's shared token)."""
        return self.name != self.role


#: A tokens file's value for one role: its shared token, or person -> token.
RoleTokens = str | Mapping[str, str]


class TokenAuthority:
    """Knows the tokens and decides whether a call may proceed.

    Why per-person tokens: an approval (``riskstream approve``) or a rollout should
    name who made it, and a shared admin token only says "an admin". A role's value
    in the tokens file is either its shared token or ``{person: token}``.

    Args:
        tokens: role → token, or role → {person → token}.

    Raises:
        ConfigError: an unknown role, a token shorter than 16 characters, a person
            named like a role, or one token issued twice.

    Examples:
        >>> auth = TokenAuthority({"score": "s" * 32, "admin": {"alice": "a" * 32}})
        >>> auth.check("/riskstream.v1.FraudScoring/Score", "Bearer " + "a" * 32)
        'admin'
        >>> auth.principal_of("Bearer " + "a" * 32)
        Principal(role='admin', name='alice')
        >>> auth.principal_of("Bearer " + "s" * 32).personal
        False
    """

    def __init__(self, tokens: Mapping[str, RoleTokens]) -> None:
        unknown = set(tokens) - set(ROLES)
        if unknown or not tokens:
            raise ConfigError(f"tokens: roles must be among {ROLES}, got {sorted(tokens)}")
        self._tokens: list[tuple[Principal, bytes]] = []
        for role, value in tokens.items():
            issued = {role: value} if isinstance(value, str) else dict(value)
            if not issued:
                raise ConfigError(f"tokens: the {role} role has no token")
            for name, token in issued.items():
                if not isinstance(token, str) or not name:
                    raise ConfigError(f"tokens: {role}: expected person -> token strings")
                if name != role and name in ROLES:
                    raise ConfigError(f"tokens: a person may not be named like a role ({name!r})")
                if len(token) < 16:
                    raise ConfigError(f"tokens: the {role} token of {name} is shorter than 16")
                self._tokens.append((Principal(role, name), token.encode()))
        if len({token for _, token in self._tokens}) != len(self._tokens):
            raise ConfigError("tokens: one token is issued twice (it would name no one)")

    @classmethod
    def from_file(cls, path: Path) -> TokenAuthority:
        """Read ``{"score": TOKEN, "admin": TOKEN | {"alice": TOKEN, ...}}``.

        Raises:
            ConfigError: missing or malformed file.
        """
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read tokens from {path}: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str | dict) for v in data.values()):
            raise ConfigError(
                f"{path}: expected a JSON object of role -> token (or role -> person -> token)"
            )
        return cls(data)

    def principal_of(self, authorization: str | None) -> Principal:
        """Who presented an ``authorization`` header value.

        Raises:
            Unauthenticated: no header, not a bearer token, or an unknown token.
        """
        if not authorization:
            raise Unauthenticated("missing bearer token (metadata 'authorization: Bearer …')")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("authorization must be 'Bearer <token>'")
        presented = token.strip().encode()
        found = None
        for principal, known in self._tokens:  # every comparison made: constant time
            if hmac.compare_digest(presented, known):
                found = principal
        if found is None:
            raise Unauthenticated("unknown token")
        return found

    def role_of(self, authorization: str | None) -> str:
        """The role of an ``authorization`` header value (see :meth:`principal_of`)."""
        return self.principal_of(authorization).role

    def check(self, method: str, authorization: str | None) -> str | None:
        """The caller's role, if it may call ``method`` (None for public methods).

        Raises:
            Unauthenticated: see :meth:`role_of`.
            PermissionDenied: the role may not call the method.
        """
        needed = required_role(method)
        if needed is None:
            return None
        role = self.role_of(authorization)
        if needed == ADMIN and role != ADMIN:
            raise PermissionDenied(role=role, method=method)
        return role


def write_local_tokens(path: Path) -> dict[str, str]:
    """Create a tokens file with fresh random tokens (mode 0600) unless one exists."""
    if path.exists():
        return dict(json.loads(path.read_text()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens = {role: secrets.token_urlsafe(32) for role in ROLES}
    path.touch(mode=0o600)
    path.write_text(json.dumps(tokens, indent=2) + "\n")
    return tokens


def write_local_key(path: Path, size: int = 32) -> bytes:
    """Create a random secret key file (mode 0600) unless one exists; return the key."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(size)
    path.touch(mode=0o600)
    path.write_bytes(key)
    return key
