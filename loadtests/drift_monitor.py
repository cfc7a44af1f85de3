"""Drift monitor: false-alarm rate, detection delay and cost per window.

Kernel-level and bounded (about two minutes on two cores): windows are drawn
straight from known distributions (:class:`services.drift.testing.SyntheticStream`,
a mix of continuous, binary and count columns) and judged against a reference built
by the trainer's own ``reference_document`` from 20,000 other rows of the same
distributions, exactly as the monitor judges a closed window; the persistence rule
and the level are the monitor's (``RISKSTREAM_DRIFT_*`` defaults unless flags say
otherwise)::

    .venv/bin/python -m loadtests.drift_monitor [--quick]

1. **Stationary:** ``--stationary-windows`` windows of ``--rows`` rows and
   ``--features`` columns: share of windows flagged (BH level q) and of windows
   where the k-of-m rule confirmed a drift (the false-alarm rate it is set to bound).
2. **Drifted:** for each shift, ``--seeds`` streams that drift from their first
   window: windows until the rule confirms (the delay; the fastest possible is k),
   and the share confirmed within 10 windows.
3. **Cost:** judging one window of 100 features x 10,000 rows (KS/chi-square/PSI
   for every column, BH), and feeding those rows one by one through the monitor.

Prints Markdown tables; quote medians (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from services.drift.config import DriftConfig
from services.drift.correction import Persistence
from services.drift.monitor import DriftMonitor, Scored
from services.drift.testing import SyntheticStream, champion_of, reference_of
from services.drift.window_report import judge_window
from services.drift.windows import ClosedWindow
from services.registry.reference import parse_reference

SHIFTS = {
    "gamma scale x1.05 (1 feature)": {"f04": 1.05},
    "gamma scale x1.10 (1 feature)": {"f04": 1.10},
    "gamma scale x1.30 (1 feature)": {"f04": 1.30},
    "binary rate 0.10 -> 0.13 (1 feature)": {"f02": 1.3},
    "count rate x1.05 (1 feature)": {"f03": 1.05},
    "simulator-like: amount x1.2 and night share x1.5": {"f00": 1.2, "f02": 1.5},
}


def _window(stream: SyntheticStream, rng: np.random.Generator, rows: int) -> ClosedWindow:
    cols, score = stream.draw(rng, rows)
    values = np.column_stack([cols[name] for name in stream.features])
    return ClosedWindow(tuple(stream.features), values, score, 0, 1, 0, 1)


def stationary(config: DriftConfig, features: tuple[str, ...], rows: int, windows: int) -> dict:
    reference = parse_reference(reference_of(SyntheticStream(features)), version="v1")
    rng = np.random.default_rng(100)
    stream = SyntheticStream(features)
    rule = Persistence(config.persistence_k, config.persistence_m)
    flagged = confirmed = 0
    for _ in range(windows):
        report = judge_window(
            _window(stream, rng, rows), reference, model_name="m", champion_version="v1",
            level=config.window_level, min_rows=1,
        )  # fmt: skip
        flagged += report.flagged
        confirmed += rule.update(report.flagged)
    return {"windows": windows, "flagged": flagged, "confirmed": confirmed}


def delays(config: DriftConfig, features: tuple[str, ...], rows: int, seeds: int) -> dict:
    reference = parse_reference(reference_of(SyntheticStream(features)), version="v1")
    out = {}
    for label, shift in SHIFTS.items():
        stream = SyntheticStream(features, shift=shift)
        found: list[int] = []
        for seed in range(seeds):
            rng = np.random.default_rng(1_000 + seed)
            rule = Persistence(config.persistence_k, config.persistence_m)
            for w in range(1, 11):
                report = judge_window(
                    _window(stream, rng, rows), reference, model_name="m",
                    champion_version="v1", level=config.window_level, min_rows=1,
                )  # fmt: skip
                if rule.update(report.flagged):
                    found.append(w)
                    break
        out[label] = found
    return out


def cost(config: DriftConfig, repeats: int) -> dict:
    features = tuple(f"f{i:03d}" for i in range(100))
    doc = reference_of(SyntheticStream(features), rows=50_000)
    reference = parse_reference(doc, version="v1")
    rng = np.random.default_rng(7)
    judge = []
    for _ in range(repeats):
        window = _window(SyntheticStream(features), rng, 10_000)
        started = time.perf_counter()
        judge_window(window, reference, model_name="m", champion_version="v1",
                     level=config.window_level, min_rows=1)  # fmt: skip
        judge.append(time.perf_counter() - started)
    monitor = DriftMonitor(
        DriftConfig(window_rows=10_000, min_window_rows=1, metrics_port=0).monitor
    )
    monitor.follow(champion_of(doc))
    cols, score = SyntheticStream(features).draw(rng, 10_000)
    rows = [{n: float(cols[n][i]) for n in features} for i in range(10_000)]
    started = time.perf_counter()
    for i, row in enumerate(rows):
        monitor.update(Scored(f"t{i}", i, i, "v1", "champion", float(score[i]), row))
    feed = time.perf_counter() - started
    return {"judge_s": judge, "feed_s": feed}


def main() -> None:
    """Run the three measurements and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--stationary-windows", type=int, default=3_000)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a tenth of the windows")
    args = parser.parse_args()
    config = DriftConfig(metrics_port=0)
    features = tuple(f"f{i:02d}" for i in range(args.features))
    windows = args.stationary_windows // (10 if args.quick else 1)
    seeds = max(5, args.seeds // (3 if args.quick else 1))
    print(f"level q = {config.window_level:.4f} (false_alarm_rate {config.false_alarm_rate}, "
          f"k={config.persistence_k} of m={config.persistence_m})")  # fmt: skip

    started = time.perf_counter()
    s = stationary(config, features, args.rows, windows)
    print(f"\n### Stationary ({args.features} features x {args.rows} rows per window)\n")
    print("| windows | flagged (share; bound q) | confirmed (share; bound) | seconds |")
    print("|---|---|---|---|")
    print(f"| {s['windows']} | {s['flagged']} ({s['flagged'] / s['windows']:.4f}; "
          f"{config.window_level:.4f}) | {s['confirmed']} ({s['confirmed'] / s['windows']:.5f}; "
          f"{config.false_alarm_rate}) | {time.perf_counter() - started:.0f} |")  # fmt: skip

    d = delays(config, features, args.rows, seeds)
    print(f"\n### Drifted from the first window ({seeds} seeds each; fastest possible = "
          f"{config.persistence_k} windows)\n")  # fmt: skip
    print("| shift | detected within 10 windows | median delay (windows) | worst |")
    print("|---|---|---|---|")
    for label, found in d.items():
        median = statistics.median(found) if found else float("nan")
        worst = max(found) if found else "-"
        print(f"| {label} | {len(found)}/{seeds} | {median:g} | {worst} |")

    c = cost(config, args.repeats)
    print("\n### Cost (100 features x 10,000 rows)\n")
    print("| step | median | min | max |")
    print("|---|---|---|---|")
    j = c["judge_s"]
    print(f"| judge one window (tests + BH) | {statistics.median(j) * 1000:.0f} ms | "
          f"{min(j) * 1000:.0f} ms | {max(j) * 1000:.0f} ms |")  # fmt: skip
    print(f"| feed 10,000 rows through DriftMonitor.update (incl. one judge) | "
          f"{c['feed_s']:.2f} s ({c['feed_s'] / 10_000 * 1e6:.0f} us/row) | | |")  # fmt: skip


if __name__ == "__main__":
    main()
