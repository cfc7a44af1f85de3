"""The control loop with in-memory adapters: what it publishes, and when it does not."""

from __future__ import annotations

import random

from google.protobuf.timestamp_pb2 import Timestamp

from riskstream.v1 import events_pb2
from services.controller.baseline import Baseline, sketch_counts
from services.controller.comparison import Scored
from services.controller.config import ControllerConfig
from services.controller.loop import Controller
from services.controller.policy import Verdict
from services.controller.telemetry import NullControllerTelemetry
from services.controller.testing import (
    ListDecisionStream,
    ListPublisher,
    ListRegistryLog,
    StaticBaselines,
)

NOW_S = 1_800_000_000.0
CONFIG = ControllerConfig(
    window_s=600, evaluate_interval_s=1.0, min_canary_requests=300, metrics_port=0
)


def version(name: str, status: int, *, at_s: float, weight: float = 0.0,
            high_impact: bool = False) -> events_pb2.ModelVersion:  # fmt: skip
    record = events_pb2.ModelVersion(
        model_name="fraud-xgb", version=name, status=status,  # type: ignore[arg-type]
        transition_time=Timestamp(seconds=int(at_s)), model_card_json='{"owner": "risk-ml"}',
    )  # fmt: skip
    record.rollout.canary_weight = weight
    record.rollout.high_impact = high_impact
    return record


def decisions(
    n: int, *, canary_score: float | None = None, canary_mu: float = -5.0, seed: int = 0
) -> list[Scored]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        bucket = rng.randrange(10_000)
        on_canary = bucket < 2_500
        score = min(1.0, rng.lognormvariate(canary_mu if on_canary else -5.0, 1.2))
        if on_canary and canary_score is not None:
            score = canary_score
        out.append(
            Scored(f"t{i}", bucket, int((NOW_S - 200 + i * 0.05) * 1000),
                   "canary" if on_canary else "champion", "v2" if on_canary else "v1", score,
                   "decline" if score > 0.9 else "approve", rng.uniform(1.0, 3.0))
        )  # fmt: skip
    return out


def _run(
    stream: ListDecisionStream,
    *,
    high_impact: bool = False,
    baselines: StaticBaselines | None = None,
) -> tuple[Controller, ListPublisher]:
    registry = ListRegistryLog(
        [
            version("v1", events_pb2.MODEL_STATUS_CHAMPION, at_s=NOW_S - 3600),
            version("v2", events_pb2.MODEL_STATUS_CANARY, at_s=NOW_S - 300, weight=0.25,
                    high_impact=high_impact),
        ]
    )  # fmt: skip
    clock = iter(NOW_S + i for i in range(1_000))
    publisher = ListPublisher()
    controller = Controller(
        CONFIG, registry=registry, stream=stream, publisher=publisher,
        baselines=baselines or StaticBaselines(), telemetry=NullControllerTelemetry(),
        clock=lambda: next(clock),
    )  # fmt: skip
    for _ in range(10):
        controller.step()
    return controller, publisher


def test_a_good_canary_is_promoted_once_carrying_its_record() -> None:
    stream = ListDecisionStream(decisions(3_000))
    controller, publisher = _run(stream)
    [promoted] = publisher.published
    assert (promoted.version, promoted.status) == ("v2", events_pb2.MODEL_STATUS_CHAMPION)
    assert promoted.transition_reason.startswith("promote: passed (")
    assert promoted.model_card_json == '{"owner": "risk-ml"}'  # the whole record carried
    assert controller.roles.state.champion == "v2" and controller.comparison is None
    # Read from the canary's start, not from the beginning of the topic.
    assert stream.started_at == [int((NOW_S - 300) * 1000)]


def test_a_constant_canary_is_rejected_and_the_champion_stays() -> None:
    controller, publisher = _run(ListDecisionStream(decisions(3_000, canary_score=0.01)))
    [rejected] = publisher.published
    assert (rejected.version, rejected.status) == ("v2", events_pb2.MODEL_STATUS_REJECTED)
    assert "score distribution diverges" in rejected.transition_reason
    assert any("PSI" in r for r in rejected.rejection_reasons)
    assert controller.roles.state.champion == "v1" and controller.roles.state.canary is None


def test_a_high_impact_canary_without_approval_is_never_promoted() -> None:
    controller, publisher = _run(ListDecisionStream(decisions(3_000)), high_impact=True)
    assert publisher.published == []
    assert controller.roles.state.canary == "v2"
    decision = next(d for d in iter(controller.step, object()) if d is not None)
    assert decision.verdict is Verdict.WAIT and decision.awaiting_approval
    assert decision.reason.startswith("awaiting approval: high-impact version passed")


def test_a_canary_is_judged_against_its_own_holdout_loaded_once() -> None:
    # After a drift: the canary scores ten times higher than the stale champion, as
    # it did on its own holdout.
    rng = random.Random(7)
    sketch = sorted(min(1.0, rng.lognormvariate(-2.7, 1.2)) for _ in range(1_000))
    holdout = Baseline("v2", sketch_counts(sketch, 4_000), decline_rate=0.02, decline_rows=4_000)
    baselines = StaticBaselines({"v2": holdout})
    stream = ListDecisionStream(decisions(3_000, canary_mu=-2.7))
    _, publisher = _run(stream, baselines=baselines)
    [promoted] = publisher.published
    assert promoted.status == events_pb2.MODEL_STATUS_CHAMPION, promoted.transition_reason
    assert "vs its holdout (champion " in promoted.transition_reason
    assert baselines.loaded == ["v2"]
    # The same stream without the holdout: the stale champion's comparison rolls it back.
    _, published = _run(ListDecisionStream(decisions(3_000, canary_mu=-2.7)))
    [rejected] = published.published
    assert rejected.status == events_pb2.MODEL_STATUS_REJECTED
    assert "fallback to the champion: no reference (test)" in rejected.transition_reason
