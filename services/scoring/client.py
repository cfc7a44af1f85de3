"""A small client of the scorer for the CLI, demos and tools (not the hot path)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from riskstream.v1 import events_pb2, scoring_pb2, scoring_pb2_grpc
from services.common.errors import ConfigError
from services.scoring.auth import ADMIN_TOKEN_ENV


def read_token(tokens_file: Path, role: str) -> str:
    """The token of ``role`` from a tokens file (``{"score": …, "admin": …}``).

    Raises:
        ConfigError: the file or the role is missing.
    """
    try:
        tokens = json.loads(tokens_file.read_text())
        token = tokens[role]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"no {role!r} token in {tokens_file} ({exc}); is the scorer up (`riskstream up`)?"
        ) from exc
    if not isinstance(token, str):
        raise ConfigError(
            f"the {role!r} role has per-person tokens in {tokens_file}: present your own "
            f"({ADMIN_TOKEN_ENV})"
        )
    return token


#: gRPC call metadata: ``(("authorization", "Bearer …"),)``.
Metadata = tuple[tuple[str, str], ...]


def bearer_metadata(token: str) -> Metadata:
    """The call metadata that presents ``token`` to the scorer's auth interceptor.

    Examples:
        >>> bearer_metadata("t" * 16)
        (('authorization', 'Bearer tttttttttttttttt'),)
    """
    return (("authorization", f"Bearer {token}"),)


def open_aio_channels(
    target: str,
    count: int,
    *,
    tls_ca: bytes | None = None,
    server_name: str | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> list[grpc.aio.Channel]:
    """``count`` asyncio channels to ``target``, each its own TCP connection.

    gRPC shares one connection between channels with the same target and options
    (the global subchannel pool); load generators want N connections, so each
    channel gets a local pool, and a multi-worker scorer (SO_REUSEPORT) sees them
    spread over its workers.

    Args:
        target: ``host:port``.
        count: channels (connections) to open.
        tls_ca: CA certificate (PEM) to verify a TLS server; None: plaintext.
        server_name: the name to check the server's certificate against, when it is
            not the target's host (a test certificate issued for ``localhost``).
        options: further channel arguments.
    """
    opts: list[tuple[str, Any]] = [("grpc.use_local_subchannel_pool", 1), *options]
    if tls_ca is None:
        return [grpc.aio.insecure_channel(target, opts) for _ in range(count)]
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    credentials = grpc.ssl_channel_credentials(root_certificates=tls_ca)
    return [grpc.aio.secure_channel(target, credentials, opts) for _ in range(count)]


class ScoringClient:
    """FraudScoring and ModelAdmin stubs on one channel, with the bearer token attached.

    Args:
        target: ``host:port``.
        token: bearer token (role ``score`` or ``admin``).
        tls_ca: CA certificate (PEM) to verify a TLS server; None: plaintext.
    """

    def __init__(self, target: str, token: str, *, tls_ca: Path | None = None) -> None:
        if tls_ca is not None:
            credentials = grpc.ssl_channel_credentials(tls_ca.read_bytes())
            self._channel = grpc.secure_channel(target, credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._metadata = bearer_metadata(token)
        self.scoring = scoring_pb2_grpc.FraudScoringStub(self._channel)
        self.admin = scoring_pb2_grpc.ModelAdminStub(self._channel)

    def score(
        self, transaction: events_pb2.Transaction, *, explain: bool = False, timeout_s: float = 5.0
    ) -> scoring_pb2.ScoreResponse:
        """Score one transaction."""
        request = scoring_pb2.ScoreRequest(
            transaction=transaction, explain=explain, request_id=uuid.uuid4().hex
        )
        response: scoring_pb2.ScoreResponse = self.scoring.Score(
            request, metadata=self._metadata, timeout=timeout_s
        )
        return response

    def list_models(self) -> scoring_pb2.ListModelsResponse:
        """Every loaded version (admin token)."""
        response: scoring_pb2.ListModelsResponse = self.admin.ListModels(
            scoring_pb2.ListModelsRequest(), metadata=self._metadata, timeout=10
        )
        return response

    def set_canary_weight(
        self, version: str, weight: float, reason: str = ""
    ) -> scoring_pb2.RolloutResponse:
        """Route ``weight`` of cards to ``version`` (admin token)."""
        request = scoring_pb2.SetCanaryWeightRequest(version=version, weight=weight, reason=reason)
        response: scoring_pb2.RolloutResponse = self.admin.SetCanaryWeight(
            request, metadata=self._metadata, timeout=30
        )
        return response

    def promote(self, version: str, reason: str = "") -> scoring_pb2.RolloutResponse:
        """Make ``version`` the champion (admin token)."""
        response: scoring_pb2.RolloutResponse = self.admin.Promote(
            scoring_pb2.PromoteRequest(version=version, reason=reason),
            metadata=self._metadata,
            timeout=30,
        )
        return response

    def rollback(self, reason: str = "") -> scoring_pb2.RolloutResponse:
        """Back to the last-good champion (admin token)."""
        response: scoring_pb2.RolloutResponse = self.admin.Rollback(
            scoring_pb2.RollbackRequest(reason=reason), metadata=self._metadata, timeout=30
        )
        return response

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
