"""Fill the online store with realistic feature vectors for the load generator's ids.

The Score load test reads a card's and a terminal's vectors on every request; without
vectors in Redis it would measure empty reads. This simulates ``--days`` of traffic
for the same card and terminal ids as ``loadtests/score_load.py`` (``card-000000`` …,
``term-00000`` …), computes every feature with the reference implementation, and
writes each entity's latest vector in Feast's layout, its event time moved to
``--age-s`` before now.

    .venv/bin/python -m loadtests.seed_online_features --cards 5000 --terminals 10000
"""

from __future__ import annotations

import argparse
import time

import redis

from services.feature_store.definitions import CARD, CARD_FEATURES, TERMINAL, TERMINAL_FEATURES
from services.feature_store.redis_layout import PROJECT, RedisFeatureWriter
from services.stack import load_stack_config
from services.trainer.config import TrainerConfig
from services.trainer.dataset import simulate_features


def main() -> None:
    """Simulate, compute and write; prints what it wrote."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=10, help="simulated days (>= 2)")
    parser.add_argument("--age-s", type=float, default=30.0, help="age of the written vectors")
    parser.add_argument("--redis-url", help="default: the local stack's Redis")
    parser.add_argument("--project", default=PROJECT, help="Feast project (key suffix)")
    args = parser.parse_args()

    started = time.monotonic()
    config = TrainerConfig(
        days=args.days,
        n_customers=args.cards,
        n_terminals=args.terminals,
        burn_in_days=0,
        validation_days=1,
        gap_days=0,
    )
    features, _ = simulate_features(config)
    latest_ms = int(features["event_time"].max().value // 10**6)
    shift = int((time.time() - args.age_s) * 1000) - latest_ms
    url = args.redis_url or f"redis://127.0.0.1:{load_stack_config().redis.port}/0"
    client = redis.Redis.from_url(url)
    writer = RedisFeatureWriter(client, project=args.project, key_ttl_s=None, skip_older=False)
    written = 0
    for entity, key, names in (
        (CARD, "card_id", CARD_FEATURES),
        (TERMINAL, "terminal_id", TERMINAL_FEATURES),
    ):
        last = features.groupby(key, sort=False).tail(1)
        times = last["event_time"].astype("int64") // 10**6 + shift
        for entity_id, when, values in zip(
            last[key], times, last.loc[:, list(names)].to_dict("records"), strict=True
        ):
            writer.write(entity, entity_id, values, int(when))
            written += 1
    writer.flush()
    client.close()
    print(f"wrote {written:,} vectors to {url} in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
