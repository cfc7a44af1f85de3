"""``riskstream serve``, ``riskstream score`` and ``riskstream rollout``.

``serve`` runs the scorer in the foreground (``riskstream up`` runs the same process
in the background). ``score`` sends one transaction, from flags or JSON (the
``transactions`` topic's JSON mapping), and prints the response as JSON. ``rollout``
lists the loaded versions and changes the canary weight, promotes or rolls back
(admin token).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

import grpc
from google.protobuf import json_format

from riskstream.v1 import events_pb2, scoring_pb2
from services.common.errors import InvalidEvent, RiskstreamError
from services.common.events import decode_transaction


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register serve, score and rollout."""
    serve = sub.add_parser("serve", help="run the gRPC scorer in the foreground")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="gRPC port (default 50051)")
    serve.add_argument("--device", choices=["cpu", "cuda", "auto"], help="inference device")
    serve.add_argument("--max-batch-size", type=int, help="rows per inference call")
    serve.add_argument("--max-wait-us", type=int, help="how long a batch waits for company")
    serve.add_argument("--workers", type=int, help="scorer processes sharing the port (default 1)")
    serve.set_defaults(func=cmd_serve)

    score = sub.add_parser("score", help="score one transaction and print the response")
    score.add_argument("--json", help="the transaction as JSON (topic mapping); '-' = stdin")
    score.add_argument("--card", help="card id (token, never a PAN)")
    score.add_argument("--terminal", help="terminal id")
    score.add_argument("--amount", type=float, help="amount in major units")
    score.add_argument("--currency", default="EUR", help="ISO 4217 code (default EUR)")
    score.add_argument("--transaction-id", help="default: a new uuid")
    score.add_argument("--explain", action="store_true", help="ask for reason codes")
    _connection_args(score)
    score.set_defaults(func=cmd_score)

    rollout = sub.add_parser("rollout", help="model rollout: list, canary, promote, rollback")
    actions = rollout.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="loaded versions and their roles")
    canary = actions.add_parser("canary", help="set a version's canary weight (0 stops it)")
    canary.add_argument("version")
    canary.add_argument("weight", type=float, help="share of cards, 0..1")
    promote = actions.add_parser("promote", help="make a version the champion")
    promote.add_argument("version")
    actions.add_parser("rollback", help="back to the last-good champion, stop the canary")
    rollout.add_argument("--reason", default="", help="recorded with the transition")
    _connection_args(rollout)
    rollout.set_defaults(func=cmd_rollout)


def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="host:port (default 127.0.0.1:$RISKSTREAM_SCORING_PORT)")
    parser.add_argument("--tokens-file", type=Path, help="default <state>/scoring/tokens.json")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate of a TLS scorer")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the scorer until SIGINT / SIGTERM (``python -m services.scoring``'s entry).

    The flags become ``RISKSTREAM_SCORING_*`` settings, so this runs exactly what the
    stack runs: with ``--workers`` > 1 the extra worker processes and their shared
    metrics endpoint included.
    """
    from services.scoring.__main__ import main

    flags = {
        "HOST": args.host,
        "PORT": args.port,
        "DEVICE": args.device,
        "MAX_BATCH_SIZE": args.max_batch_size,
        "MAX_WAIT_US": args.max_wait_us,
        "WORKERS": args.workers,
    }
    for name, value in flags.items():
        if value is not None:
            os.environ[f"RISKSTREAM_SCORING_{name}"] = str(value)
    main()
    return 0


def _client(args: argparse.Namespace, role: str):  # type: ignore[no-untyped-def]
    from services.scoring.auth import ADMIN_TOKEN_ENV
    from services.scoring.client import ScoringClient, read_token
    from services.scoring.config import ScoringConfig

    config = ScoringConfig.from_env()
    tokens = args.tokens_file or config.tokens_file or config.state_dir / "scoring" / "tokens.json"
    target = args.target or f"127.0.0.1:{config.port}"
    own = os.environ.get(ADMIN_TOKEN_ENV, "").strip() if role == "admin" else ""
    return ScoringClient(target, own or read_token(tokens, role), tls_ca=args.tls_ca)


def _transaction(args: argparse.Namespace) -> events_pb2.Transaction:
    if args.json:
        text = sys.stdin.read() if args.json == "-" else args.json
        return decode_transaction(text.encode())
    missing = [f"--{n}" for n in ("card", "terminal", "amount") if getattr(args, n) is None]
    if missing:
        raise InvalidEvent(field=missing[0].lstrip("-"), reason="required (or pass --json)")
    tx = events_pb2.Transaction(
        transaction_id=args.transaction_id or uuid.uuid4().hex,
        card_id=args.card,
        terminal_id=args.terminal,
        amount=args.amount,
        currency=args.currency,
    )
    tx.event_time.GetCurrentTime()
    return tx


def _print(message: object) -> None:
    print(
        json_format.MessageToJson(
            message,  # type: ignore[arg-type]
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
    )


def cmd_score(args: argparse.Namespace) -> int:
    """Score one transaction; exit 1 on a gRPC error (printed)."""
    try:
        tx = _transaction(args)
        client = _client(args, "score")
    except RiskstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        _print(client.score(tx, explain=args.explain))
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    finally:
        client.close()
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    """List or change the rollout; exit 1 on a refused change (printed)."""
    try:
        client = _client(args, "admin")
    except RiskstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        response: scoring_pb2.ListModelsResponse | scoring_pb2.RolloutResponse
        if args.action == "list":
            response = client.list_models()
        elif args.action == "canary":
            response = client.set_canary_weight(args.version, args.weight, args.reason)
        elif args.action == "promote":
            response = client.promote(args.version, args.reason)
        else:
            response = client.rollback(args.reason)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    finally:
        client.close()
    for model in response.models:
        role = events_pb2.ModelStatus.Name(model.status).removeprefix("MODEL_STATUS_").lower()
        print(f"{model.version:<40} {role:<10} {model.traffic_share:>6.1%}  {model.sha256[:12]}")
    message = getattr(response, "message", "")
    if message:
        print(message)
    return 0
