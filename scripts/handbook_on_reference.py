"""The handbook's chapter-5 protocol on reference-implementation rows, without Feast.

The labelled rows of every fold computed by ``reference_features`` (which equals the
stream's feature log up to the known rows, docs/BENCHMARKS.md "Reference backfill
against the replay"), then :func:`services.trainer.handbook.evaluate`: the same folds,
grid and selection as ``riskstream evaluate``, in minutes instead of the replay's or
the backfill's retrieval time. For checking the protocol itself::

    .venv/bin/python scripts/handbook_on_reference.py handbook|full [OUT.json [THREADS [GRID]]]

GRID is a name in ``handbook.GRIDS``: ``handbook`` (default) or ``wide``.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import pandas as pd

from services.feature_store.reference import load_fdh, reference_features
from services.producer.config import handbook_dataset_path
from services.trainer import handbook


def labelled_reference_rows() -> pd.DataFrame:
    """Every labelled row of the protocol's folds, from the reference implementation."""
    start, end = handbook.replay_window()
    transactions, labels = load_fdh(handbook_dataset_path(), start, end, sorted_input=True)
    rows = reference_features(transactions, labels)
    known = labels.drop_duplicates("transaction_id", keep="last")[["transaction_id", "is_fraud"]]
    rows = rows.merge(known, on="transaction_id", how="left")
    rows["is_fraud"] = rows["is_fraud"].fillna(0).astype(int)
    first, last = handbook.rows_window()
    rows = rows.loc[(rows["event_time"] >= first) & (rows["event_time"] < last)]
    return rows.reset_index(drop=True)


def main(features: str, out: str | None, nthread: int = 2, grid: str = "handbook") -> None:
    began = time.time()
    rows = labelled_reference_rows()
    print(f"{len(rows):,} labelled rows in {time.time() - began:.0f} s", flush=True)
    result = handbook.evaluate(
        rows,
        handbook.FEATURE_SETS[features],
        nthread=nthread,
        progress=lambda line: print(line, flush=True),
        grid=grid,
    )
    summary = result.summary()
    summary["grid"] = grid
    summary["wall_s"] = time.time() - began
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if out:
        with open(out, "w") as handle:
            json.dump(summary, handle, indent=1)
    for metric in handbook.METRICS:
        s = summary[metric]
        print(f"{metric}: {s['mean']:.4f} ± {s['std']:.4f} folds {s['folds']} chosen {s['chosen']}")


if __name__ == "__main__":
    argv = sys.argv[1:]
    main(
        argv[0] if argv else "handbook",
        argv[1] if len(argv) > 1 else None,
        int(argv[2]) if len(argv) > 2 else 2,
        argv[3] if len(argv) > 3 else "handbook",
    )
