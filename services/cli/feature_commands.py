"""``riskstream features CARD_ID``: a card's (and a terminal's) current online features."""

from __future__ import annotations

import argparse
import json
import sys
import time

from services.common.errors import RiskstreamError
from services.feature_store.redis_layout import FeatureVector
from services.stack import load_stack_config


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register features."""
    features = sub.add_parser("features", help="a card's current features and their age")
    features.add_argument("card_id")
    features.add_argument("--terminal", default="", help="also show this terminal's features")
    features.add_argument("--json", action="store_true", help="machine-readable output")
    features.set_defaults(func=cmd_features)


def _age_s(vector: FeatureVector, now_ms: int) -> float | None:
    return None if vector.event_time_ms is None else (now_ms - vector.event_time_ms) / 1000


def cmd_features(args: argparse.Namespace) -> int:
    """Read the online store the way the scorer does (one round trip); exit 1 if absent."""
    from services.feature_store.online import RedisFeatureReaderSync

    port = load_stack_config().redis.port
    reader = RedisFeatureReaderSync.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=2)
    try:
        found = reader.read(args.card_id, args.terminal or "-")
    except RiskstreamError as exc:
        print(f"riskstream features failed: {exc}", file=sys.stderr)
        return 1
    finally:
        reader.close()
    now_ms = int(time.time() * 1000)
    entities = [("card", args.card_id, found.card)]
    if args.terminal:
        entities.append(("terminal", args.terminal, found.terminal))
    if args.json:
        print(json.dumps({
            kind: {"id": entity_id, "found": v.found, "event_time_ms": v.event_time_ms,
                   "age_s": _age_s(v, now_ms), "values": dict(v.values)}
            for kind, entity_id, v in entities
        }, indent=2))  # fmt: skip
    else:
        for kind, entity_id, vector in entities:
            if not vector.found:
                print(f"{kind} {entity_id}: no features in the online store")
                continue
            print(f"{kind} {entity_id}: features as of event time {vector.event_time_ms} ms "
                  f"(age {_age_s(vector, now_ms):,.1f} s)")  # fmt: skip
            for name, value in vector.values.items():
                print(f"  {name:<34} {value:,.4f}")
    return 0 if found.card.found else 1
