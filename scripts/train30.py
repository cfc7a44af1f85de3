"""30 days of training through Feast: build_training_set for 2018-07-01 .. 07-31, then
one XGBoost fit (depth 6, learning rate 0.3, 100 trees, ``exact``), timed.

Issue 5's "training time and peak memory for 30 days of data" (docs/BENCHMARKS.md);
run it under ``/usr/bin/time -v`` for the peak RSS of the whole process::

    /usr/bin/time -v .venv/bin/python scripts/train30.py OFFLINE_ROOT handbook|full
"""

from __future__ import annotations

import json
import resource
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path


def main(root: Path, feature_set: str) -> dict[str, object]:
    """Builds the 30 days' rows through Feast and fits once; returns the timings."""
    began = time.monotonic()
    from services.feature_store.feast_store import make_store
    from services.stack import load_stack_config
    from services.trainer import handbook

    imported = time.monotonic() - began
    features = handbook.FEATURE_SETS[feature_set]
    url = f"redis://127.0.0.1:{load_stack_config().redis.port}/0"
    registry = root.parent / f"{root.name}-train30-{uuid.uuid4().hex[:6]}.db"
    store = make_store(url, root, registry, project=f"rs_train30_{uuid.uuid4().hex[:8]}")
    from services.trainer.training_set import build_training_set

    mark = time.monotonic()
    rows = build_training_set(
        store,
        root,
        start=datetime(2018, 7, 1, tzinfo=UTC),
        end=datetime(2018, 7, 31, tzinfo=UTC),
        features=features,
    )
    built = time.monotonic() - mark
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mark = time.monotonic()
    point = {"max_depth": 6, "learning_rate": 0.3, "class_weight": "none"}
    sets = handbook.FoldSets(rows, rows.iloc[:1000])
    handbook.fit_and_score(sets, features, point, nthread=2, seed=0)
    fitted = time.monotonic() - mark
    registry.unlink(missing_ok=True)
    return {
        "features": feature_set,
        "rows": len(rows),
        "frauds": int(rows["is_fraud"].sum()),
        "import_s": round(imported, 1),
        "build_s": round(built, 1),
        "fit_s": round(fitted, 1),
        "peak_rss_after_build_mib": round(rss_built),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2])), flush=True)
