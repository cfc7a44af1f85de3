"""A/B: the full streaming feature set with and without the card amount ratios
(``definitions.CARD_RATIO_FEATURES``), through the handbook's chapter-5 protocol on
reference-implementation rows (no Feast), as ``scripts/handbook_on_reference.py``.

The ratios compare the amount with the card's level before the last week, over
(t - 30 d, t - 7 d], which the handbook's compromised-card scenario (amounts x5 for
14 days) does not pull up, and with its 1- and 7-day means. Usage::

    .venv/bin/python scripts/ratio_features_ab.py [GRID [OUT.json [THREADS [SETS]]]]

GRID is a name in ``handbook.GRIDS`` (default ``handbook``); SETS is ``both`` (default)
or ``ratios`` (only the full set, when the run without the ratios under the same grid
is already on record).
"""

from __future__ import annotations

import json
import sys
import time

from handbook_on_reference import labelled_reference_rows  # this folder, run as a script

from services.feature_store.definitions import CARD_RATIO_FEATURES
from services.trainer import handbook


def main(grid: str, out: str | None, nthread: int, sets: str = "both") -> None:
    began = time.time()
    rows = labelled_reference_rows()
    full = list(handbook.FEATURE_SETS["full"])
    without = [f for f in full if f not in CARD_RATIO_FEATURES]
    runs = [("full without ratios", without)] if sets == "both" else []
    runs.append(("full", full))
    results = {}
    for name, features in runs:
        summary = handbook.evaluate(rows, features, nthread=nthread, grid=grid).summary()
        results[name] = {m: summary[m] for m in handbook.METRICS}
        line = ", ".join(
            f"{m} {summary[m]['mean']:.4f} ± {summary[m]['std']:.4f}" for m in handbook.METRICS
        )
        print(f"{name} ({len(features)}): {line} ({time.time() - began:.0f} s)", flush=True)
    if out:
        with open(out, "w") as handle:
            json.dump({"grid": grid, "results": results}, handle, indent=1)


if __name__ == "__main__":
    argv = sys.argv[1:]
    main(
        argv[0] if argv else "handbook",
        argv[1] if len(argv) > 1 else None,
        int(argv[2]) if len(argv) > 2 else 2,
        argv[3] if len(argv) > 3 else "both",
    )
