"""``riskstream evaluate``: fill an offline store from a benchmark dataset (a replay
through the pipeline, or the reference backfill) and score a model family with a
published protocol.

Heavy imports (Feast, XGBoost) happen inside the command, so the CLI starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from services.common.errors import RiskstreamError

if TYPE_CHECKING:
    import pandas as pd

    from services.stack.config import StackConfig


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register evaluate."""
    evaluate = sub.add_parser(
        "evaluate",
        help="fill an offline store from a dataset (replay through Kafka → Flink, or the "
        "reference backfill) and evaluate XGBoost with a published protocol",
    )
    evaluate.add_argument("--dataset", type=Path, required=True, help="handbook-format CSV")
    evaluate.add_argument("--protocol", choices=["handbook"], default="handbook")
    evaluate.add_argument(
        "--features", choices=["handbook", "full"], default="handbook",
        help="the handbook's 15 features, or every streaming feature (default handbook)",
    )  # fmt: skip
    evaluate.add_argument(
        "--offline-root", type=Path,
        help="offline store to replay into / read (default: a fresh one under "
        "$RISKSTREAM_HOME/evaluate)",
    )  # fmt: skip
    evaluate.add_argument(
        "--source", choices=["replay", "reference"], default="replay",
        help="how to fill the offline store: replay through Kafka → Flink → offline "
        "writer (default), or compute the features with the reference implementation "
        "and write them with the offline writer (no Kafka or Flink; minutes, not an hour)",
    )  # fmt: skip
    evaluate.add_argument(
        "--skip-replay", action="store_true",
        help="use --offline-root as already filled (no Kafka or Flink needed)",
    )  # fmt: skip
    evaluate.add_argument(
        "--grid", choices=["handbook", "wide"], default="handbook",  # handbook.GRIDS
        help="hyper-parameter grid chosen from on validation: the handbook's (default) or "
        "'wide' (depth 2-4, learning rate 0.05/0.1, up to 400 trees)",
    )  # fmt: skip
    evaluate.add_argument("--nthread", type=int, default=2, help="XGBoost threads (default 2)")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Replay (unless skipped), build the rows through Feast, run the protocol, print."""
    from services.stack import load_stack_config
    from services.trainer import handbook

    def say(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)

    stack = load_stack_config()
    root = args.offline_root or stack.state_dir / "evaluate" / f"offline-{uuid.uuid4().hex[:8]}"
    if args.skip_replay and not (args.offline_root and args.offline_root.is_dir()):
        print(
            "riskstream evaluate: --skip-replay needs an existing --offline-root", file=sys.stderr
        )
        return 2
    features = handbook.FEATURE_SETS[args.features]
    result: dict[str, object] = {"protocol": args.protocol, "features": args.features}
    try:
        if not args.skip_replay:
            result[args.source] = _fill(args.dataset, root, args.source, stack, say)
        rows = _labelled_rows(root, stack, features, say)
        result["training_set"] = rows.attrs["report_summary"]
        evaluation = handbook.evaluate(
            rows, features, nthread=args.nthread, progress=say, grid=args.grid
        )
    except RiskstreamError as exc:
        print(f"riskstream evaluate failed: {exc}", file=sys.stderr)
        return 1
    result |= {"offline_root": str(root), "n_features": len(features), **evaluation.summary()}
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for metric in handbook.METRICS:
            summary = result[metric]
            assert isinstance(summary, dict)
            print(f"{metric:24s} {summary['mean']:.3f} ± {summary['std']:.3f}  "
                  f"(folds {', '.join(f'{v:.3f}' for v in summary['folds'])})")  # fmt: skip
    return 0


def _fill(
    dataset: Path, root: Path, source: str, stack: StackConfig, say: Callable[[str], None]
) -> dict[str, object]:
    """Fills ``root`` with the handbook's replay window; returns the report as JSON."""
    from services.trainer import handbook

    start, end = handbook.replay_window()
    say(f"filling {root} with {start:%Y-%m-%d}..{end:%Y-%m-%d} of {dataset} ({source})")
    if source == "reference":
        from services.trainer.fdh_backfill import backfill_offline_store

        backfill = backfill_offline_store(dataset, root, start=start, end=end, progress=say)
        return {**vars(backfill), "seconds": dict(backfill.seconds)}
    from services.trainer.fdh_replay import replay_into_offline_store

    with tempfile.TemporaryDirectory(prefix="riskstream-evaluate-") as work:
        replay = replay_into_offline_store(
            dataset, root, start=start, end=end, stack=stack, work_dir=Path(work), progress=say
        )
    return {**vars(replay), "seconds": dict(replay.seconds)}


def _labelled_rows(
    root: Path, stack: StackConfig, features: tuple[str, ...], say: Callable[[str], None]
) -> pd.DataFrame:
    """Every fold's rows through Feast, in one build (see docs/BENCHMARKS.md)."""
    from services.feature_store.feast_store import make_store
    from services.trainer import handbook
    from services.trainer.training_set import build_training_set

    started = time.monotonic()
    redis_url = f"redis://127.0.0.1:{stack.redis.port}/0"
    project = f"riskstream_eval_{uuid.uuid4().hex[:8]}"  # apply writes no keys; reads none
    store = make_store(redis_url, root, root.parent / f"{root.name}-registry.db", project=project)
    start, end = handbook.rows_window()
    rows = build_training_set(store, root, start=start, end=end, features=features)
    report = rows.attrs["report"]
    rows.attrs["report_summary"] = {
        "rows": report.rows,
        "frauds": int(rows["is_fraud"].sum()),
        "labels_without_transaction": report.labels_without_transaction,
        "uncovered": dict(report.uncovered),
        "restored": dict(report.restored),
        "seconds": {k: round(v, 1) for k, v in report.seconds.items()},
        "total_seconds": round(time.monotonic() - started, 1),
    }
    say(f"training set: {report.rows:,} rows in {time.monotonic() - started:.0f} s")
    return rows
