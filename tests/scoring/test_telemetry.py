"""The Prometheus adapter: every hook lands in the metric and label set it always has
(dashboards and alert rules read these names), children cached or not."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from services.scoring.telemetry import PrometheusScoringTelemetry


@pytest.fixture(scope="module")
def telemetry() -> PrometheusScoringTelemetry:
    # The default registry takes each metric name once per process: one instance.
    return PrometheusScoringTelemetry(None, host="127.0.0.1")


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_repeated_label_sets_accumulate_in_the_same_series(
    telemetry: PrometheusScoringTelemetry,
) -> None:
    rpc = ("riskstream_scoring_rpc_seconds_count", {"method": "Score", "code": "OK"})
    before = {
        "rpc": _value(rpc[0], **rpc[1]),
        "rpc_sum": _value("riskstream_scoring_rpc_seconds_sum", method="Score", code="OK"),
        "err": _value("riskstream_scoring_rpc_errors_total", code="UNAVAILABLE"),
        "ok_err": _value("riskstream_scoring_rpc_errors_total", code="OK"),
        "dec": _value("riskstream_scoring_decisions_total", route="canary", decision="decline"),
        "t": _value(
            "riskstream_scoring_decision_seconds_count", route="canary", model_version="v7"
        ),
        "s": _value("riskstream_scoring_score_sum", route="canary", model_version="v7"),
        "inf": _value("riskstream_scoring_inference_seconds_count", model_version="v7"),
        "rows": _value("riskstream_scoring_batch_rows_sum"),
    }
    for _ in range(3):
        telemetry.on_rpc("Score", "OK", 0.002)
        telemetry.on_scored("canary", "v7", "decline", 0.001, 0.9)
        telemetry.on_batch("v7", 4, 0.0001)
    telemetry.on_rpc("Score", "UNAVAILABLE", 0.001)
    telemetry.on_scored("canary", "v8", "approve", 0.001, 0.1)

    assert _value(rpc[0], **rpc[1]) - before["rpc"] == 3
    assert _value("riskstream_scoring_rpc_seconds_sum", method="Score", code="OK") - before[
        "rpc_sum"
    ] == pytest.approx(0.006)
    assert _value("riskstream_scoring_rpc_errors_total", code="UNAVAILABLE") - before["err"] == 1
    assert _value("riskstream_scoring_rpc_errors_total", code="OK") == before["ok_err"] == 0
    assert (
        _value("riskstream_scoring_decisions_total", route="canary", decision="decline")
        - before["dec"]
        == 3
    )
    assert (
        _value("riskstream_scoring_decision_seconds_count", route="canary", model_version="v7")
        - before["t"]
        == 3
    )
    assert _value("riskstream_scoring_score_sum", route="canary", model_version="v7") - before[
        "s"
    ] == pytest.approx(2.7)
    assert _value("riskstream_scoring_score_count", route="canary", model_version="v8") >= 1
    assert (
        _value("riskstream_scoring_inference_seconds_count", model_version="v7") - before["inf"]
        == 3
    )
    assert _value("riskstream_scoring_batch_rows_sum") - before["rows"] == 12
