"""``riskstream models`` (list, show, prune) and ``riskstream approve``: the registry.

Every command reads ``model-updates`` from its beginning (no consumer group), folds
it into a catalog (:mod:`services.registry.catalog`) and, for ``prune`` and
``approve``, publishes transitions that carry each version's whole record forward.
``approve`` needs an admin token of the scorer (``RISKSTREAM_ADMIN_TOKEN`` or
``--token-file``), checked against the scorer's tokens file, and records its
holder. Heavy imports (Kafka, protobuf) happen inside the commands, so the rest of
the CLI starts fast.

Exit codes: 0 done; 1 the log could not be read or written, or a card is
malformed; 2 refused (unknown version, no or wrong token, a version that cannot be
approved).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.common.errors import RiskstreamError
from services.scoring.auth import ADMIN_TOKEN_ENV

if TYPE_CHECKING:
    from services.registry.catalog import Catalog, ModelEntry, VersionEntry
    from services.registry.config import RegistryConfig
    from services.scoring.auth import Principal

#: Metrics ``riskstream models`` shows in its table.
KEY_METRICS = ("average_precision", "roc_auc", "ece")


def _common(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    # On sub-commands the defaults are suppressed, so `models --json show v1` and
    # `models show v1 --json` both work.
    default: Any = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--model", default=default,
        help="model name (listing and prune: every model; otherwise "
        "RISKSTREAM_REGISTRY_MODEL_NAME, fraud-xgb)",
    )  # fmt: skip
    parser.add_argument("--topic", default=default, help="registry log (default model-updates)")
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS if sub else False,
        help="machine-readable output",
    )  # fmt: skip


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register models (list, show, prune) and approve."""
    models = sub.add_parser("models", help="model versions: status, metrics, cards, retention")
    _common(models, sub=False)
    models.set_defaults(func=cmd_models_list)
    actions = models.add_subparsers(dest="action")
    show = actions.add_parser("show", help="print a version's model card")
    show.add_argument("version")
    _common(show, sub=True)
    show.set_defaults(func=cmd_models_show)
    prune = actions.add_parser("prune", help="archive old versions by the retention setting")
    prune.add_argument(
        "--keep", type=int,
        help="versions kept besides champion, last good, canary and shadows "
        "(default RISKSTREAM_REGISTRY_KEEP_VERSIONS, 5)",
    )  # fmt: skip
    _common(prune, sub=True)
    prune.set_defaults(func=cmd_models_prune)

    approve = sub.add_parser(
        "approve", help="approve a version (high-impact models need it past canary); admin only"
    )
    approve.add_argument("version")
    approve.add_argument(
        "--by",
        help="who approves: checked against the token's holder (per-person admin tokens "
        "name people; a shared one only 'admin')",
    )
    approve.add_argument(
        "--token-file", type=Path, help=f"file holding the admin token (default ${ADMIN_TOKEN_ENV})"
    )
    _common(approve, sub=False)
    approve.set_defaults(func=cmd_approve)


def _config() -> RegistryConfig:
    from services.registry.config import RegistryConfig

    return RegistryConfig.from_env()


def _read(args: argparse.Namespace, config: RegistryConfig) -> Catalog:
    from services.registry.log import read_catalog
    from services.stack.config import local_kafka_settings

    return read_catalog(
        local_kafka_settings("riskstream-registry"),
        topic=args.topic or config.topic,
        timeout_s=config.read_timeout_s,
    )


def _publisher(args: argparse.Namespace, config: RegistryConfig):  # type: ignore[no-untyped-def]
    from services.common.kafka import EventProducer
    from services.registry.publish import KafkaModelVersionPublisher
    from services.stack.config import local_kafka_settings

    producer = EventProducer(local_kafka_settings("riskstream-registry"))
    return KafkaModelVersionPublisher(producer, topic=args.topic or config.topic)


def _fail(command: str, exc: Exception, code: int = 1) -> int:
    print(f"riskstream {command}: {exc}", file=sys.stderr)
    return code


def _version_json(entry: VersionEntry) -> dict[str, Any]:
    return {
        "model_name": entry.model_name,
        "version": entry.version,
        "status": entry.status,
        "recorded_status": entry.recorded_status,
        "role": entry.role,
        "created_at": entry.created_at or None,
        "metrics": dict(entry.record.metrics),
        "reason": entry.reason,
        "approved_by": entry.approved_by or None,
        "high_impact": entry.high_impact,
        "has_card": bool(entry.record.model_card_json),
        "sha256": entry.record.sha256,
        "artifact_uri": entry.record.artifact_uri,
        "rejection_reasons": list(entry.record.rejection_reasons),
        "history": [
            {"status": t.status, "reason": t.reason, "at": t.at or None,
             "approved_by": t.approved_by or None}
            for t in entry.history
        ],
    }  # fmt: skip


def _metric(entry: VersionEntry, name: str) -> str:
    value = entry.record.metrics.get(name)
    return "-" if value is None else f"{value:.4f}"


def _print_model(model: ModelEntry) -> None:
    state = model.rollout
    roles = [f"champion {state.champion or '-'}"]
    if state.canary:
        roles.append(f"canary {state.canary} ({state.canary_weight:.0%})")
    if state.shadows:
        roles.append(f"shadows {', '.join(state.shadows)}")
    if state.last_good:
        roles.append(f"last good {state.last_good}")
    print(f"{model.model_name}: {' · '.join(roles)}")
    header = ("VERSION", "STATUS", "CREATED", "AP", "AUC", "ECE", "APPROVED BY", "REASON")
    rows: list[tuple[str, ...]] = [header]
    for entry in model.versions:
        status = entry.status + (" (last good)" if entry.role == "last_good" else "")
        status += " *" if entry.high_impact else ""
        rows.append(
            (entry.version, status, entry.created_at[:19] or "-",
             *(_metric(entry, m) for m in KEY_METRICS),
             entry.approved_by or "-", entry.reason or "-")
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for row in rows:
        print(
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )
    if any(e.high_impact for e in model.versions):
        print("  * high-impact: needs `riskstream approve VERSION` before going past canary")


def cmd_models_list(args: argparse.Namespace) -> int:
    """List every version of every model (or of ``--model``)."""
    try:
        config = _config()
        catalog = _read(args, config)
    except RiskstreamError as exc:
        return _fail("models", exc)
    names = [args.model] if args.model else list(catalog.model_names)
    models = [m for m in (catalog.model(n) for n in names) if m is not None]
    if args.json:
        print(json.dumps(
            [{"model_name": m.model_name,
              "champion": m.rollout.champion, "canary": m.rollout.canary,
              "canary_weight": m.rollout.canary_weight, "shadows": list(m.rollout.shadows),
              "last_good": m.rollout.last_good,
              "versions": [_version_json(v) for v in m.versions]}
             for m in models],
            indent=2,
        ))  # fmt: skip
        return 0
    if not models:
        topic = args.topic or config.topic
        print(f"no model versions in {topic}" + (f" for {args.model}" if args.model else ""))
        return 0
    for model in models:
        _print_model(model)
    return 0


def _entry(args: argparse.Namespace, config: RegistryConfig, catalog: Catalog) -> VersionEntry:
    from services.registry.errors import TransitionRefused

    name = args.model or config.model_name
    model = catalog.model(name)
    entry = model.version(args.version) if model is not None else None
    if entry is None:
        raise TransitionRefused(
            version=args.version,
            detail=f"no version {args.version!r} of model {name!r} in {args.topic or config.topic}",
        )
    return entry


def cmd_models_show(args: argparse.Namespace) -> int:
    """Print a version's card (Markdown, or JSON with ``--json``)."""
    from services.registry.errors import TransitionRefused

    try:
        config = _config()
        entry = _entry(args, config, _read(args, config))
    except TransitionRefused as exc:
        return _fail("models show", exc, 2)
    except RiskstreamError as exc:
        return _fail("models show", exc)
    try:
        card = entry.card()
    except RiskstreamError as exc:
        return _fail("models show", exc)
    if card is None:
        print(
            f"{entry.model_name}/{entry.version} has no model card "
            f"(its record was published without one); status {entry.status}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(card.to_dict(), indent=2, sort_keys=True))
        return 0
    print(card.to_markdown())
    print("## Registry\n")
    print(f"- Status: {entry.status}" + (" (last good)" if entry.role == "last_good" else ""))
    print(f"- Approved by: {entry.approved_by or 'nobody'}")
    for t in entry.history:
        print(f"- {t.at or 'undated'}: {t.status}, {t.reason or 'no reason given'}")
    return 0


def cmd_models_prune(args: argparse.Namespace) -> int:
    """Archive versions beyond the retention setting; print what was archived."""
    from services.registry.retention import archive_old_versions

    try:
        config = _config()
        keep = config.keep_versions if args.keep is None else args.keep
        if keep < 0:
            return _fail("models prune", ValueError(f"--keep must be >= 0, got {keep}"), 2)
        catalog = _read(args, config)
        archived = archive_old_versions(
            catalog, keep, _publisher(args, config), model_name=args.model
        )
    except RiskstreamError as exc:
        return _fail("models prune", exc)
    if args.json:
        print(
            json.dumps(
                {"keep": keep, "archived": [f"{e.model_name}/{e.version}" for e in archived]}
            )
        )
    elif not archived:
        print(f"nothing to archive (keeping {keep} besides the versions in use)")
    else:
        for event in archived:
            print(f"archived {event.model_name}/{event.version}")
    return 0


def _admin_token(args: argparse.Namespace) -> str:
    from services.common.errors import ConfigError

    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the admin token from {args.token_file}: {exc}") from exc
    else:
        token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            f"approving needs an admin token: set {ADMIN_TOKEN_ENV} or pass --token-file"
        )
    return token


def _check_admin(token: str) -> Principal:
    """Who holds ``token``, refused unless an admin of the scorer (its own loader)."""
    from services.common.errors import ConfigError
    from services.scoring.auth import ADMIN, TokenAuthority
    from services.scoring.config import ScoringConfig

    tokens_file = ScoringConfig.from_env().tokens_file
    if tokens_file is None:
        raise ConfigError("no scorer tokens file is configured to check the admin token against")
    principal = TokenAuthority.from_file(tokens_file).principal_of(f"Bearer {token}")
    if principal.role != ADMIN:
        raise ConfigError(f"the token's role is {principal.role!r}; approving needs {ADMIN!r}")
    return principal


def _approver(principal: Principal, claimed: str | None) -> str:
    """The name an approval is recorded under: the token's holder, never a free claim.

    Why: ``approved_by`` lets a high-impact model past canary, so it must name who
    authenticated. A per-person token names its holder; a role's shared token names
    only "admin". ``--by`` is checked against that name, not believed.
    """
    from services.common.errors import ConfigError

    if claimed is not None and claimed != principal.name:
        held = principal.name if principal.personal else "the shared admin token"
        raise ConfigError(
            f"--by {claimed!r}, but the token is {held}'s: approvals are recorded under "
            "the token's holder (issue per-person admin tokens to name people)"
        )
    return principal.name


def cmd_approve(args: argparse.Namespace) -> int:
    """Check the admin token, then publish the approval; exit 2 when refused."""
    from services.registry.approval import approval
    from services.registry.errors import RegistryUnavailable

    try:
        config = _config()
        by = _approver(_check_admin(_admin_token(args)), args.by)
    except RiskstreamError as exc:
        return _fail("approve", exc, 2)
    try:
        entry = _entry(args, config, _read(args, config))
        event = approval(entry, by)
    except RegistryUnavailable as exc:
        return _fail("approve", exc)
    except RiskstreamError as exc:
        return _fail("approve", exc, 2)
    try:
        _publisher(args, config).publish(event)
    except RiskstreamError as exc:
        return _fail("approve", exc)
    note = "" if entry.high_impact else " (not high-impact: recorded anyway)"
    if args.json:
        print(
            json.dumps(
                {
                    "model_name": event.model_name,
                    "version": event.version,
                    "status": entry.status,
                    "approved_by": event.approved_by,
                    "reason": event.transition_reason,
                    "high_impact": entry.high_impact,
                }
            )
        )
    else:
        print(f"approved {entry.model_name}/{entry.version} ({entry.status}) by {by}{note}")
    return 0
