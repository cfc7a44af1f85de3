"""``riskstream train-baseline`` and ``riskstream train``: train, gate, store, publish.

``train-baseline`` trains on simulated data (a stack with no model gets its first
champion); ``train`` trains from the offline store through Feast and compares the
candidate with the current champion. Both run the same pipeline
(:mod:`services.trainer.pipeline`) and, with ``--publish``, put the outcome on
``model-updates``: CANARY (or CHAMPION for a first model) when the gate passes,
REJECTED with the reasons when it does not.

Heavy imports (XGBoost, scikit-learn, ONNX, Feast) happen inside the commands, so
the rest of the CLI starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from services.common.errors import RiskstreamError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trees", type=int, help="boosting rounds (default 200)")
    parser.add_argument("--nthread", type=int, help="XGBoost threads (default 2)")
    parser.add_argument("--model-name", help="registry model name (default fraud-xgb)")
    parser.add_argument("--validation-days", type=int, help="validation days (default 7)")
    parser.add_argument("--holdout-days", type=int, help="holdout days (default 7)")
    parser.add_argument(
        "--store", type=Path, help="artifact store root (default $RISKSTREAM_HOME/models)"
    )
    parser.add_argument(
        "--signing-key",
        type=Path,
        help="ed25519 private key (PEM) to sign with (default: the local stack's, "
        "$RISKSTREAM_HOME/signing/signing_key.pem, when it exists)",
    )
    parser.add_argument(
        "--unsigned",
        action="store_true",
        help="do not sign (a stack's scorers refuse unsigned artifacts)",
    )
    parser.add_argument(
        "--high-impact",
        action="store_true",
        default=None,
        help="the version needs `riskstream approve` before it goes past canary",
    )
    parser.add_argument("--publish", action="store_true", help="publish to model-updates")
    parser.add_argument("--topic", default="model-updates", help="the registry's topic")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register train-baseline and train."""
    baseline = sub.add_parser(
        "train-baseline",
        help="train an XGBoost model on simulated data (a stack's first champion)",
    )
    baseline.add_argument("--days", type=int, help="simulated days (default 45)")
    baseline.add_argument("--seed", type=int, help="simulator seed (default 0)")
    baseline.add_argument("--burn-in-days", type=int, help="first days left out (default 7)")
    baseline.add_argument("--customers", type=int, dest="n_customers", help="simulated cards")
    baseline.add_argument("--terminals", type=int, dest="n_terminals", help="simulated terminals")
    _common(baseline)
    baseline.set_defaults(func=cmd_train_baseline)

    train = sub.add_parser(
        "train",
        help="train from the offline store (Feast, point in time), gate against the champion",
    )
    train.add_argument("--days", type=int, help="days of labelled rows before --end (default 45)")
    train.add_argument(
        "--end",
        type=datetime.fromisoformat,
        help="end of the holdout, ISO-8601 UTC (default: the newest labelled transaction)",
    )
    train.add_argument(
        "--features",
        choices=("baseline", "handbook", "full"),
        default="baseline",
        help="the model's feature set (default baseline)",
    )
    train.add_argument("--offline-root", type=Path, help="offline store root")
    train.add_argument(
        "--public-key",
        type=Path,
        help="ed25519 public key (PEM) verifying the champion (default: the local "
        "stack's, when it exists)",
    )
    _common(train)
    train.set_defaults(func=cmd_train)


def _config(args: argparse.Namespace, **extra: Any) -> Any:
    from services.trainer.config import TrainerConfig

    return TrainerConfig.from_env(
        os.environ,
        days=args.days,
        trees=args.trees,
        validation_days=args.validation_days,
        holdout_days=args.holdout_days,
        nthread=args.nthread,
        model_name=args.model_name,
        high_impact=args.high_impact,
        **extra,
    )


def _signing_key(args: argparse.Namespace) -> Any:
    """The private key to sign with: ``--signing-key``, else the local stack's, else None.

    Why default to the stack's key: ``riskstream up`` makes its scorers verify
    signatures, so an artifact trained here for that stack must be signed with it.
    """
    from services.registry.signing import load_private_key, local_key_pair
    from services.stack.config import load_stack_config

    if args.unsigned:
        if args.signing_key:
            raise RiskstreamError("--unsigned and --signing-key exclude each other")
        return None
    if args.signing_key:
        return load_private_key(args.signing_key)
    local = local_key_pair(load_stack_config().state_dir).private_key
    return load_private_key(local) if local.exists() else None


def _public_key(args: argparse.Namespace, state_dir: Path) -> Any:
    """The key verifying the champion: ``--public-key`` (must load), else the local
    stack's when it exists, else None (sha256 only)."""
    from services.registry.signing import load_public_key, local_key_pair

    if args.public_key:
        return load_public_key(args.public_key)
    local = local_key_pair(state_dir).public_key
    return load_public_key(local) if local.exists() else None


def _publisher(args: argparse.Namespace) -> Any:
    from services.common.kafka import EventProducer
    from services.registry.publish import KafkaModelVersionPublisher
    from services.stack.config import local_kafka_settings

    producer = EventProducer(local_kafka_settings("riskstream-trainer"))
    return KafkaModelVersionPublisher(producer, topic=args.topic)


def _report(args: argparse.Namespace, run: Any, event: Any, published: bool) -> None:
    from riskstream.v1 import events_pb2
    from services.trainer.pipeline import summary

    status = events_pb2.ModelStatus.Name(event.status).removeprefix("MODEL_STATUS_").lower()
    if args.json:
        print(json.dumps({**summary(run), "status": status, "published": published}, indent=2))
        return
    meta, metrics = run.metadata, run.metadata.metrics
    print(
        f"{meta.model_name}/{meta.version} {status}{' (published)' if published else ''}: "
        f"AUC {metrics['roc_auc']:.4f} AP {metrics['average_precision']:.4f} "
        f"CP@100 {metrics.get('card_precision_at_100', float('nan')):.3f} "
        f"ECE {metrics['ece']:.4f} ({meta.calibration.method}) "
        f"parity {run.parity_max_diff:.2g} in {run.seconds:.1f} s\n"
        f"  digest {run.digest} uri {run.uri}{' signed' if run.signature else ''}"
    )
    for reason in run.gate.reasons:
        print(f"  gate: {reason}")


def cmd_train_baseline(args: argparse.Namespace) -> int:
    """Train on simulated data; print a summary (or JSON); publish with ``--publish``."""
    from services.registry.store import LocalArtifactStore
    from services.trainer.baseline import train_baseline
    from services.trainer.pipeline import publication

    try:
        config = _config(
            args,
            seed=args.seed,
            burn_in_days=args.burn_in_days,
            n_customers=args.n_customers,
            n_terminals=args.n_terminals,
        )
        run = train_baseline(
            config, store=LocalArtifactStore(args.store), signing_key=_signing_key(args)
        )
        # The baseline starts a registry: it becomes champion if it passes the gate.
        event = publication(run, config, has_champion=False, reason="train-baseline")
        if args.publish:
            _publisher(args).publish(event)
    except RiskstreamError as exc:
        print(f"riskstream train-baseline failed: {exc}", file=sys.stderr)
        return 1
    _report(args, run, event, bool(args.publish))
    return 0 if run.gate.passed else 3


def cmd_train(args: argparse.Namespace) -> int:
    """Train from the offline store against the champion; publish with ``--publish``.

    Exit status: 0 passed the gate, 3 rejected by it, 1 could not train.
    """
    from services.feature_store.config import FeatureStoreConfig
    from services.registry.store import LocalArtifactStore
    from services.stack.config import load_stack_config, local_kafka_settings
    from services.trainer.dataset import FEATURE_SETS
    from services.trainer.runner import train_from_offline_store

    try:
        config = _config(args, burn_in_days=0)
        stack = load_stack_config()
        offline_root = args.offline_root or FeatureStoreConfig.from_env().offline_root
        end = args.end
        if end is not None and end.tzinfo is None:
            raise RiskstreamError(f"--end {args.end} needs a time zone (end it with Z or +00:00)")
        outcome = train_from_offline_store(
            config,
            features=FEATURE_SETS[args.features],
            offline_root=offline_root,
            registry_path=stack.state_dir / "feast" / "registry.db",
            redis_url=config.redis_url or stack.redis.url,
            store=LocalArtifactStore(args.store),
            kafka=local_kafka_settings("riskstream-trainer"),
            publisher=_publisher(args) if args.publish else None,
            topic=args.topic,
            end=end,
            signing_key=_signing_key(args),
            public_key=_public_key(args, stack.state_dir),
        )
    except RiskstreamError as exc:
        print(f"riskstream train failed: {exc}", file=sys.stderr)
        return 1
    _report(args, outcome.run, outcome.event, outcome.published)
    return 0 if outcome.run.gate.passed else 3
