"""metadata.json: canonical bytes, round trip, and a named field for every bad value."""

from __future__ import annotations

import dataclasses
import json

import pytest

from services.registry import ArtifactRejected, ModelMetadata, Thresholds


def _doc(metadata: ModelMetadata) -> dict:
    return json.loads(metadata.to_json())


def _rejected(doc: dict) -> ArtifactRejected:
    with pytest.raises(ArtifactRejected) as caught:
        ModelMetadata.from_json(json.dumps(doc).encode())
    assert caught.value.reason == "bad_metadata"
    return caught.value


def test_round_trip_and_canonical_bytes(metadata: ModelMetadata) -> None:
    data = metadata.to_json()
    assert ModelMetadata.from_json(data) == metadata
    assert ModelMetadata.from_json(data).to_json() == data
    # Same content, keys in another order and with whitespace: same canonical bytes.
    shuffled = json.dumps(dict(reversed(list(_doc(metadata).items()))), indent=2)
    assert ModelMetadata.from_json(shuffled.encode()).to_json() == data
    assert b" " not in data and b"\n" not in data


def test_the_bytes_change_with_thresholds_and_feature_order(metadata: ModelMetadata) -> None:
    reordered = dataclasses.replace(metadata, feature_names=metadata.feature_names[::-1])
    stricter = dataclasses.replace(metadata, thresholds=Thresholds(review=0.2, decline=0.8))
    assert len({metadata.to_json(), reordered.to_json(), stricter.to_json()}) == 3


def test_mappings_are_read_only_copies(metadata: ModelMetadata) -> None:
    metrics = {"roc_auc": 0.9}
    meta = dataclasses.replace(metadata, metrics=metrics)
    metrics["roc_auc"] = 0.1
    assert meta.metrics["roc_auc"] == 0.9
    with pytest.raises(TypeError):
        meta.metrics["roc_auc"] = 0.5  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("model_name",), "", "model_name"),
        (("version",), 7, "version"),
        (("feature_names",), [], "feature_names"),
        (("feature_names",), ["a", "a"], "feature_names"),
        (("feature_names",), ["a", 3], "feature_names[1]"),
        (("feature_names",), "tx_amount", "feature_names"),
        (("thresholds", "review"), 0.95, "thresholds"),
        (("thresholds", "decline"), 1.5, "thresholds.decline"),
        (("thresholds", "review"), True, "thresholds.review"),
        (("calibration", "method"), "beta", "calibration"),
        (("output_index",), -1, "output_index"),
        (("output_index",), 1.0, "output_index"),
        (("train_window", "start"), "2026-01-01T00:00:00", "train_window"),
        (("train_window", "start"), "2026-03-01T00:00:00Z", "train_window"),
        (("created_at",), "yesterday", "created_at"),
        (("created_at",), "2026-02-04T12:00:00+01:00", "created_at"),
        (("metrics", "roc_auc"), "high", "metrics.roc_auc"),
        (("framework", "onnx_opset"), 1.5, "framework.onnx_opset"),
        (("files", "../model.onnx"), "0" * 64, "files"),
        (("files", "model.onnx"), "ABC", "files.model.onnx"),
        (("schema_version",), 2, "schema_version"),
    ],
)
def test_every_bad_field_is_named(
    metadata: ModelMetadata, path: tuple[str, ...], value: object, field: str
) -> None:
    doc = _doc(metadata)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert _rejected(doc).detail.startswith(f"{field}:")


@pytest.mark.parametrize("key", ["thresholds", "calibration", "input_name", "files"])
def test_missing_keys_are_rejected(metadata: ModelMetadata, key: str) -> None:
    doc = _doc(metadata)
    del doc[key]
    assert key in _rejected(doc).detail


def test_unknown_keys_are_rejected(metadata: ModelMetadata) -> None:
    doc = _doc(metadata) | {"owner": "me"}
    assert "owner" in _rejected(doc).detail


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b'{"metrics": NaN}', b"\xff"])
def test_non_documents_are_rejected(data: bytes) -> None:
    with pytest.raises(ArtifactRejected) as caught:
        ModelMetadata.from_json(data)
    assert caught.value.reason == "bad_metadata"


def test_non_finite_metrics_are_rejected_on_construction(metadata: ModelMetadata) -> None:
    with pytest.raises(ArtifactRejected, match=r"metrics\.ece"):
        dataclasses.replace(metadata, metrics={"ece": float("nan")})
