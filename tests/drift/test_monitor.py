"""The drift monitor's kernel on seeded synthetic streams: a stationary stream raises
nothing over many windows; an injected drift raises one request within a bounded
delay, naming the drifted features; decay, staleness, cool-down and restarts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from services.drift.config import DriftConfig
from services.drift.monitor import DriftMonitor, Labelled, Scored, Tick
from services.drift.testing import SyntheticStream, champion_of, reference_of
from services.drift.two_sample import compare
from services.registry.reference import parse_reference

FEATURES = tuple(f"f{i:02d}" for i in range(20))
ROWS = 2_000
DAY_MS = 86_400_000


def _config(**kw: object) -> DriftConfig:
    base = dict(window_rows=ROWS, min_window_rows=500, window_s=3_600.0, metrics_port=0,
                max_model_age_s=0.0, max_data_age_s=0.0)  # fmt: skip
    return DriftConfig(**(base | kw))  # type: ignore[arg-type]


def _feed(monitor: DriftMonitor, stream: SyntheticStream, rng, windows: int, start: int = 0):
    """``windows`` full windows of rows 1 ms apart; returns (window index, outcome) pairs."""
    outcomes = []
    for w in range(start, start + windows):
        cols, score = stream.draw(rng, ROWS)
        for i in range(ROWS):
            at = 1_000_000 + w * ROWS + i
            out = monitor.update(
                Scored(f"tx{at}", at, at, "v1", "champion", float(score[i]),
                       {name: float(cols[name][i]) for name in FEATURES})
            )  # fmt: skip
            if out.reports or out.request:
                outcomes.append((w, out))
    return outcomes


@pytest.fixture(scope="module")
def reference() -> dict:
    return reference_of(SyntheticStream(FEATURES), rows=20_000, seed=1)


def test_ks_p_values_are_calibrated_against_the_sketch(reference: dict) -> None:
    """Under the null, p < 0.05 in about 5 % of windows: the effective size is right."""
    ref = parse_reference(reference, version="v1")
    rng = np.random.default_rng(7)
    stream = SyntheticStream(FEATURES)
    rejections = []
    for _ in range(150):
        cols, _ = stream.draw(rng, ROWS)
        for name in ("f00", "f01"):  # gamma and normal: KS
            test = compare(name, cols[name], ref.features[name])
            assert test is not None and test.test == "ks"
            rejections.append(test.p_value < 0.05)
    assert 0.01 <= np.mean(rejections) <= 0.08


def test_a_stationary_stream_raises_no_request_over_many_windows(reference: dict) -> None:
    monitor = DriftMonitor(_config().monitor)
    monitor.follow(champion_of(reference))
    outcomes = _feed(monitor, SyntheticStream(FEATURES), np.random.default_rng(11), 40)
    assert monitor.windows_judged == 40
    assert not any(out.request or out.confirmed for _, out in outcomes)
    flagged = sum(r.flagged for _, out in outcomes for r in out.reports)
    assert flagged <= 3  # each window flags with probability <= q (0.022)


def test_an_injected_drift_raises_one_request_naming_the_features(reference: dict) -> None:
    monitor = DriftMonitor(_config().monitor)
    monitor.follow(champion_of(reference))
    rng = np.random.default_rng(12)
    assert not any(o.request for _, o in _feed(monitor, SyntheticStream(FEATURES), rng, 10))
    # gamma x1.3 (PSI ~0.2), binary share 0.1 -> 0.2 (PSI ~0.08): over the 0.05 floor
    drifted = SyntheticStream(FEATURES, shift={"f04": 1.3, "f06": 2.0})
    outcomes = _feed(monitor, drifted, rng, 20, start=10)
    requests = [(w, o.request) for w, o in outcomes if o.request]
    assert len(requests) == 1  # one shift, one request (cool-down)
    window, request = requests[0]
    assert window <= 10 + 1  # k = 2 of m = 3: the second drifted window confirms
    assert request.reason == "feature_drift" and request.champion_version == "v1"
    named = {e.feature: e for e in request.evidence}
    assert {"f04", "f06"} <= set(named)
    assert named["f04"].test == "ks" and named["f06"].test == "chi2"
    assert all(e.p_value < 1e-3 and e.window_rows == ROWS for e in named.values())
    assert request.window_start_ms == 1_000_000 + 10 * ROWS  # where the evidence began


def test_a_restart_inside_the_cool_down_does_not_send_again(reference: dict) -> None:
    drifted = SyntheticStream(FEATURES, shift={"f04": 1.5})
    rng = np.random.default_rng(13)
    first = DriftMonitor(_config().monitor)
    first.follow(champion_of(reference))
    sent = [o.request for _, o in _feed(first, drifted, rng, 3) if o.request]
    assert len(sent) == 1
    restarted = DriftMonitor(_config().monitor, last_request_ms=sent[0].requested_at_ms)
    restarted.follow(champion_of(reference))
    outcomes = _feed(restarted, drifted, rng, 4, start=3)
    assert any(o.confirmed for _, o in outcomes)
    assert not any(o.request for _, o in outcomes)
    assert restarted.policy.suppressed >= 1


def test_no_request_while_a_canary_runs_and_a_new_champion_starts_afresh(reference: dict) -> None:
    monitor = DriftMonitor(_config().monitor)
    monitor.follow(champion_of(reference, canary_running=True))
    rng = np.random.default_rng(14)
    drifted = SyntheticStream(FEATURES, shift={"f00": 2.0})
    outcomes = _feed(monitor, drifted, rng, 3)
    assert any(o.held for _, o in outcomes) and not any(o.request for _, o in outcomes)
    assert monitor.follow(champion_of(reference, version="v2")) is True
    assert monitor.persistence.flagged == 0
    # rows of the old version no longer count
    out = monitor.update(Scored("x", 1, 1, "v1", "champion", 0.1, {}))
    assert not out.reports and monitor.performance.pending == 0


def test_performance_decay_from_labels_raises_a_request(reference: dict) -> None:
    config = _config(min_labels=200, cooldown_s=3_600.0)
    monitor = DriftMonitor(config.monitor)
    monitor.follow(champion_of(reference))
    rng = np.random.default_rng(15)
    requests = []
    for i in range(6_000):
        fraud = rng.random() < 0.05
        decayed = i >= 3_000  # the model stops seeing fraud
        score = (0.02 if decayed else 0.8) if fraud else float(rng.uniform(0.0, 0.1))
        monitor.update(Scored(f"t{i}", i, i, "v1", "champion", score, {}))
        out = monitor.update(Labelled(f"t{i}", bool(fraud)))
        if out.request:
            requests.append((i, out.request))
    assert len(requests) == 1
    at, request = requests[0]
    assert 3_000 < at < 4_500
    assert request.reason == "performance_decay"
    assert {e.feature for e in request.evidence} == {"__error__"}


def test_one_cool_down_across_reasons_on_the_monitors_clock(reference: dict) -> None:
    """A decay request (from a label: no clock of its own) then a confirmed feature
    drift a minute later: the second is held. The decay trigger must use the monitor's
    clock (scored-at times), not event time: the demo's simulated event time ran days
    behind the wall clock, so the drift went out 16 s after the decay request."""
    config = _config(min_labels=200, cooldown_s=3_600.0)
    monitor = DriftMonitor(config.monitor)
    monitor.follow(champion_of(reference))
    rng = np.random.default_rng(16)
    wall, event = 1_800_000_000_000, 1_500_000_000_000  # event time far behind
    sent = []
    for i in range(4_500):
        fraud = rng.random() < 0.05
        score = (0.02 if i >= 3_000 else 0.8) if fraud else float(rng.uniform(0.0, 0.1))
        monitor.update(Scored(f"t{i}", wall + i, event + i, "v1", "champion", score, {}))
        out = monitor.update(Labelled(f"t{i}", bool(fraud)))
        sent += [out.request] if out.request else []
    assert [r.reason for r in sent] == ["performance_decay"]
    assert sent[0].requested_at_ms >= wall
    drifted = SyntheticStream(FEATURES, shift={"f04": 1.5})
    for w in range(3):
        cols, score = drifted.draw(rng, ROWS)
        for i in range(ROWS):
            at = wall + 60_000 + w * ROWS + i
            out = monitor.update(
                Scored(f"d{w}-{i}", at, event + at - wall, "v1", "champion", float(score[i]),
                       {name: float(cols[name][i]) for name in FEATURES})
            )  # fmt: skip
            assert out.request is None
    assert monitor.policy.suppressed >= 1


def test_staleness_limits(reference: dict) -> None:
    config = _config(max_model_age_s=30 * 86_400.0, max_data_age_s=10 * 86_400.0)
    monitor = DriftMonitor(config.monitor)
    monitor.follow(champion_of(reference, created_ms=0, train_end_ms=0))
    assert monitor.update(Tick(29 * DAY_MS)).request is None
    monitor.update(Scored("t", 29 * DAY_MS, 11 * DAY_MS, "v1", "champion", 0.1, {}))
    request = monitor.update(Tick(31 * DAY_MS)).request
    assert request is not None and request.reason == "staleness"
    assert {e.test for e in request.evidence} == {"model_age", "data_age"}
    assert monitor.update(Tick(31 * DAY_MS + 60_000)).request is None  # cool-down


def test_small_windows_are_reported_but_not_judged(reference: dict) -> None:
    config = dataclasses.replace(_config(), window_s=1.0)
    monitor = DriftMonitor(config.monitor)
    monitor.follow(champion_of(reference))
    monitor.update(Scored("a", 0, 0, "v1", "champion", 0.1, {"f00": 1.0}))
    out = monitor.update(Tick(5_000))
    assert len(out.reports) == 1 and not out.reports[0].evaluated
    assert monitor.windows_judged == 0


def test_binary_columns_are_tested_on_zeros_and_ones() -> None:
    """A 0/1 column whose decile edges are just [0] still shows a change of its share."""
    doc = reference_of(SyntheticStream(("a", "b", "c")), rows=20_000)
    doc["features"]["c"]["bin_edges"], doc["features"]["c"]["bin_shares"] = [0.0], [0.0, 1.0]
    ref = parse_reference(doc, version="v1").features["c"]
    rng = np.random.default_rng(5)
    same = compare("c", (rng.random(2_000) < 0.1).astype(float), ref)
    moved = compare("c", (rng.random(2_000) < 0.2).astype(float), ref)
    assert same is not None and moved is not None
    assert same.p_value > 1e-3 and moved.p_value < 1e-10 and moved.psi > 0.05


def test_requests_of_long_version_names_pass_the_topics_validation() -> None:
    """Ids are digests: a registry version of 30+ characters still fits the 64-character id."""
    from services.common.events import decode_retrain_request, encode
    from services.drift.kafka_io import retrain_request
    from services.drift.policy import FEATURE_DRIFT, RetrainPolicy, Trigger

    policy = RetrainPolicy("fraud-xgb", cooldown_ms=1, last_sent_ms=None)
    start = 1_795_000_000_000
    decision = policy.update(
        Trigger(FEATURE_DRIFT, (), start, start + 60_000), now_ms=start + 61_000,
        champion="baseline-20261127015934-365b164e", canary_running=False,
    )  # fmt: skip
    assert decision is not None
    request = decode_retrain_request(encode(retrain_request(decision)))
    assert request.request_id == decision.request_id and len(request.request_id) <= 64


def test_a_significant_but_small_shift_is_reported_and_not_flagged() -> None:
    """20,000 rows make a 3 % scale change significant; its PSI is under the floor."""
    from services.drift.window_report import judge_window
    from services.drift.windows import ClosedWindow

    ref = parse_reference(
        reference_of(SyntheticStream(FEATURES), rows=20_000, seed=1), version="v1"
    )
    rng = np.random.default_rng(5)
    n = 20_000
    cols, score = SyntheticStream(FEATURES, shift={"f00": 1.03}).draw(rng, n)
    values = np.column_stack([cols[name] for name in FEATURES])
    window = ClosedWindow(FEATURES, values, score, 0, n, 0, n)

    def judge(**kw):
        return judge_window(window, ref, model_name="m", champion_version="v1", level=0.02,
                            min_rows=1000, **kw)  # fmt: skip

    by_p = {r.column: r for r in judge().results}
    assert by_p["f00"].drifted and by_p["f00"].psi < 0.05  # p-values alone: drift
    floored = judge(min_psi=0.05)
    assert not floored.flagged
    assert floored.results[0].adjusted_p_value <= 0.02  # still reported as significant
    # A report-only column that drifts is reported but flags nothing.
    moved = SyntheticStream(FEATURES, shift={"f00": 2.0}).draw(rng, n)
    values = np.column_stack([moved[0][name] for name in FEATURES])
    window = ClosedWindow(FEATURES, values, moved[1], 0, n, 0, n)
    only = judge(min_psi=0.05, report_only=("f00", "__score__"))
    assert [r.column for r in only.drifted] and not only.flagged
