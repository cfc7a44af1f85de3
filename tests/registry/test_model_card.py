"""Model card: canonical JSON, round trip, a named field for every bad value, Markdown."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from services.registry.errors import InvalidModelCard
from services.registry.metadata import TimeWindow
from services.registry.model_card import ModelCard


@pytest.fixture
def card() -> ModelCard:
    return ModelCard(
        model_name="fraud-xgb",
        version="v7",
        owner="risk-ml@bank.example",
        intended_use="Rank card transactions for fraud review; not for credit decisions.",
        created_at="2026-02-04T12:00:00Z",
        train_window=TimeWindow("2026-01-01T00:00:00Z", "2026-01-20T00:00:00Z"),
        validation_window=TimeWindow("2026-01-27T00:00:00Z", "2026-02-03T00:00:00Z"),
        data_sources=("offline-store:transactions", "labels"),
        feature_set_version="fs-0123456789ab",
        feature_names=("tx_amount", "card_tx_count_1h", "terminal_risk_7d"),
        metrics={"average_precision": 0.71, "roc_auc": 0.93, "ece": 0.004},
        segment_metrics={
            "amount_band=high": {"average_precision": 0.64, "roc_auc": 0.9},
            "night=1": {"average_precision": 0.7},
        },
        calibration={"method": "isotonic", "ece": 0.004, "ece_raw": 0.03},
        gate={"passed": False, "reasons": ["ap_drop 0.05 > 0.02"], "champion_version": "v6",
              "ap_drop": 0.05},
        limitations=("Trained on simulated data",),
        failure_modes=("New terminals have no history", "Amount bands | shift"),
        high_impact=True,
    )  # fmt: skip


def _doc(card: ModelCard) -> dict[str, Any]:
    return json.loads(card.to_json())


def _invalid(doc: dict[str, Any]) -> InvalidModelCard:
    with pytest.raises(InvalidModelCard) as caught:
        ModelCard.from_json(json.dumps(doc))
    return caught.value


def test_round_trip_and_canonical_bytes(card: ModelCard) -> None:
    data = card.to_json()
    assert ModelCard.from_json(data) == card
    assert ModelCard.from_json(data.decode()).to_json() == data
    shuffled = json.dumps(dict(reversed(list(_doc(card).items()))), indent=2)
    assert ModelCard.from_json(shuffled).to_json() == data
    assert b"\n" not in data and b'", "' not in data
    assert list(_doc(card)) == sorted(_doc(card))


def test_mappings_are_read_only_copies(card: ModelCard) -> None:
    metrics = {"roc_auc": 0.9}
    copy = dataclasses.replace(card, metrics=metrics)
    metrics["roc_auc"] = 0.1
    assert copy.metrics["roc_auc"] == 0.9
    with pytest.raises(TypeError):
        copy.metrics["roc_auc"] = 0.5  # type: ignore[index]
    with pytest.raises(TypeError):
        card.segment_metrics["night=1"]["x"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("owner",), "", "owner"),
        (("created_at",), "2026-02-04T12:00:00+01:00", "created_at"),
        (("created_at",), "yesterday", "created_at"),
        (("train_window", "start"), "2026-03-01T00:00:00Z", "train_window"),
        (("feature_names",), ["a", "a"], "feature_names"),
        (("data_sources",), "labels", "data_sources"),
        (("metrics", "roc_auc"), "high", "metrics.roc_auc"),
        (("metrics", "roc_auc"), True, "metrics.roc_auc"),
        (("segment_metrics", "night=1", "average_precision"), None,
         "segment_metrics.night=1.average_precision"),
        (("calibration", "method"), 3, "calibration.method"),
        (("calibration", "ece"), [0.1], "calibration.ece"),
        (("gate", "passed"), "yes", "gate.passed"),
        (("gate", "reasons"), "too slow", "gate.reasons"),
        (("gate", "champion_version"), 6, "gate.champion_version"),
        (("gate", "ap_drop"), "big", "gate.ap_drop"),
        (("high_impact",), "true", "high_impact"),
        (("schema_version",), 2, "schema_version"),
    ],
)  # fmt: skip
def test_each_bad_value_names_its_field(
    card: ModelCard, path: tuple[str, ...], value: object, field: str
) -> None:
    doc = _doc(card)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert _invalid(doc).field == field


def test_missing_unknown_and_non_json_documents(card: ModelCard) -> None:
    doc = _doc(card)
    del doc["owner"]
    assert "missing keys ['owner']" in str(_invalid(doc))
    doc = _doc(card) | {"colour": "blue"}
    assert "unknown keys ['colour']" in str(_invalid(doc))
    with pytest.raises(InvalidModelCard, match="not valid JSON"):
        ModelCard.from_json(b"{")
    with pytest.raises(InvalidModelCard, match="NaN"):
        ModelCard.from_json(card.to_json().replace(b"0.93", b"NaN"))
    gate = _doc(card)
    del gate["gate"]["reasons"]
    assert _invalid(gate).field == "gate"


def test_markdown_has_every_section_and_a_segment_table(card: ModelCard) -> None:
    text = card.to_markdown()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "# Model card: fraud-xgb v7",
        "## Owner",
        "## Intended use",
        "## Data",
        "## Features",
        "## Metrics",
        "## Metrics by segment",
        "## Calibration",
        "## Validation gate",
        "## Limitations",
        "## Failure modes",
    ]
    assert "| segment | average_precision | roc_auc |" in text
    assert "| amount_band=high | 0.6400 | 0.9000 |" in text
    assert "| night=1 | 0.7000 |  |" in text
    assert "**Failed**, against champion `v6`." in text
    assert "- Reason: ap_drop 0.05 > 0.02" in text
    assert "- ap_drop: 0.0500" in text
    assert "High-impact model" in text
    assert "1. `tx_amount`" in text
    assert "2026-01-01T00:00:00Z to 2026-01-20T00:00:00Z" in text
    assert "- Amount bands | shift" in text  # bullets need no escaping


def test_markdown_of_a_first_version_without_segments_or_limits(card: ModelCard) -> None:
    plain = dataclasses.replace(
        card,
        segment_metrics={},
        gate={"passed": True, "reasons": [], "champion_version": None},
        limitations=(),
        failure_modes=(),
        high_impact=False,
    )
    text = plain.to_markdown()
    assert "No segment metrics recorded." in text
    assert "**Passed**, against no champion (first version)." in text
    assert text.count("None recorded.") == 2
    assert "High-impact" not in text
