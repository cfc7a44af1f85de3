"""``riskstream train-baseline``: train, export and store a first model (optionally publish).

Heavy imports (XGBoost, scikit-learn, ONNX) happen inside the command, so the rest of
the CLI starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from services.common.errors import RiskstreamError


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register train-baseline."""
    train = sub.add_parser(
        "train-baseline",
        help="train an XGBoost baseline on simulated data and store it as an artifact",
    )
    train.add_argument("--days", type=int, help="simulated days (default 40)")
    train.add_argument("--seed", type=int, help="simulator seed (default 0)")
    train.add_argument("--burn-in-days", type=int, help="first days left out (default 7)")
    train.add_argument("--validation-days", type=int, help="last days validated on (default 8)")
    train.add_argument("--trees", type=int, help="boosting rounds (default 200)")
    train.add_argument("--customers", type=int, dest="n_customers", help="simulated cards")
    train.add_argument("--terminals", type=int, dest="n_terminals", help="simulated terminals")
    train.add_argument("--nthread", type=int, help="XGBoost threads (default 2)")
    train.add_argument("--model-name", help="registry model name (default fraud-xgb)")
    train.add_argument(
        "--store", type=Path, help="artifact store root (default $RISKSTREAM_HOME/models)"
    )
    train.add_argument("--signing-key", type=Path, help="ed25519 private key (PEM) to sign with")
    train.add_argument(
        "--publish", action="store_true", help="publish to model-updates as champion"
    )
    train.add_argument("--json", action="store_true", help="machine-readable output")
    train.set_defaults(func=cmd_train_baseline)


def cmd_train_baseline(args: argparse.Namespace) -> int:
    """Train, export, verify and store; print one summary line (or JSON)."""
    from riskstream.v1 import events_pb2
    from services.common.kafka import EventProducer
    from services.registry.publish import KafkaModelVersionPublisher, model_version_event
    from services.registry.signing import load_private_key
    from services.registry.store import LocalArtifactStore
    from services.stack.config import local_kafka_settings
    from services.trainer.baseline import train_baseline
    from services.trainer.config import TrainerConfig

    try:
        config = TrainerConfig.from_env(
            os.environ,
            days=args.days,
            seed=args.seed,
            trees=args.trees,
            burn_in_days=args.burn_in_days,
            validation_days=args.validation_days,
            n_customers=args.n_customers,
            n_terminals=args.n_terminals,
            nthread=args.nthread,
            model_name=args.model_name,
        )
        key = load_private_key(args.signing_key) if args.signing_key else None
        result = train_baseline(config, store=LocalArtifactStore(args.store), signing_key=key)
        if args.publish:
            event = model_version_event(
                result.metadata,
                artifact_uri=result.uri,
                digest=result.digest,
                status=events_pb2.MODEL_STATUS_CHAMPION,
                transition_reason="train-baseline",
                signature=result.signature,
                signing_key_id=result.signing_key_id,
            )
            producer = EventProducer(local_kafka_settings("riskstream-trainer"))
            KafkaModelVersionPublisher(producer).publish(event)
    except RiskstreamError as exc:
        print(f"riskstream train-baseline failed: {exc}", file=sys.stderr)
        return 1
    meta, metrics = result.metadata, result.metadata.metrics
    if args.json:
        print(
            json.dumps(
                {
                    "model_name": meta.model_name,
                    "version": meta.version,
                    "digest": result.digest,
                    "uri": result.uri,
                    "signature": result.signature.hex() if result.signature else None,
                    "signing_key_id": result.signing_key_id or None,
                    "published": bool(args.publish),
                    "feature_names": list(meta.feature_names),
                    "feature_set_version": meta.feature_set_version,
                    "thresholds": {
                        "review": meta.thresholds.review,
                        "decline": meta.thresholds.decline,
                    },
                    "calibration": meta.calibration.method,
                    "metrics": dict(metrics),
                    "parity_max_diff": result.parity_max_diff,
                    "timings_s": dict(result.timings_s),
                    "seconds": result.seconds,
                },
                indent=2,
            )
        )
    else:
        print(
            f"{meta.model_name}/{meta.version} digest {result.digest} uri {result.uri} "
            f"AUC {metrics['roc_auc']:.4f} AP {metrics['average_precision']:.4f} "
            f"ECE {metrics['ece']:.4f} ({meta.calibration.method}) "
            f"parity {result.parity_max_diff:.2g} "
            f"{'signed ' if result.signature else ''}"
            f"{'published ' if args.publish else ''}in {result.seconds:.1f} s"
        )
    return 0
