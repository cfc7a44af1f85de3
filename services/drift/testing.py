"""Fakes and synthetic data for the drift monitor's tests and load test.

:class:`SyntheticStream` draws rows from known distributions of mixed kinds
(continuous, binary, discrete counts) and can shift chosen features;
:func:`reference_of` builds a ``reference.json`` from it with the trainer's own
:func:`services.trainer.distributions.reference_document`, so a stream drawn
after it is stationary by construction. :func:`store_reference_artifact` puts a
real, verifiable artifact carrying that reference into a store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riskstream.v1 import events_pb2
from services.drift.monitor import Champion
from services.drift.policy import RetrainDecision
from services.drift.window_report import WindowReport
from services.registry.reference import Floats, parse_reference
from services.trainer.distributions import reference_document

KINDS = ("gamma", "normal", "binary", "count")


@dataclass
class SyntheticStream:
    """Rows of ``features`` drawn from fixed distributions, the i-th of kind ``KINDS[i % 4]``.

    Attributes:
        features: the column names.
        shift: feature → factor applied after the draw (scale of continuous columns,
            rate of binary and count columns); empty for a stationary stream.
    """

    features: Sequence[str]
    shift: Mapping[str, float] = field(default_factory=dict)

    def draw(self, rng: np.random.Generator, n: int) -> tuple[dict[str, Floats], Floats]:
        """``n`` rows: columns by name, and a score that depends on the first columns."""
        cols: dict[str, Floats] = {}
        for i, name in enumerate(self.features):
            factor = self.shift.get(name, 1.0)
            kind = KINDS[i % 4]
            if kind == "gamma":
                cols[name] = rng.gamma(2.0, 30.0 * factor, n)
            elif kind == "normal":
                cols[name] = rng.normal(0.0, 1.0 * factor, n)
            elif kind == "binary":
                cols[name] = (rng.random(n) < min(1.0, 0.1 * factor)).astype(np.float64)
            else:
                cols[name] = rng.poisson(3.0 * factor, n).astype(np.float64)
        first = cols[self.features[0]]
        score = 1.0 / (1.0 + np.exp(-(first / 60.0 - 3.0 + rng.normal(0, 0.5, n))))
        return cols, score


def reference_of(stream: SyntheticStream, *, rows: int = 20_000, seed: int = 0) -> dict[str, Any]:
    """The ``reference.json`` document of ``rows`` rows of ``stream``."""
    cols, score = stream.draw(np.random.default_rng(seed), rows)
    return reference_document(
        cols, score, feature_names=list(stream.features),
        window={"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    )  # fmt: skip


def champion_of(doc: Mapping[str, Any], version: str = "v1", **kw: Any) -> Champion:
    """A monitored champion straight from a reference document."""
    return Champion(version=version, reference=parse_reference(doc, version=version), **kw)


def store_reference_artifact(store: Any, doc: Mapping[str, Any], *, version: str = "v1") -> Any:
    """A real artifact with ``doc`` as its ``reference.json``; returns its ``ModelVersion``
    record (CHAMPION). Trains the scorer's small test model (a second)."""
    from services.registry.artifact import ONNX_FILE, REFERENCE_FILE, XGB_FILE
    from services.scoring.testing import build_test_artifact

    base = build_test_artifact(store, version=version)
    uri, digest = store.add(
        onnx_bytes=(base.directory / ONNX_FILE).read_bytes(),
        xgb_json_bytes=(base.directory / XGB_FILE).read_bytes(),
        metadata=base.metadata,
        extra_files={REFERENCE_FILE: json.dumps(doc, sort_keys=True).encode()},
    )
    record = events_pb2.ModelVersion(
        model_name=base.metadata.model_name, version=version,
        status=events_pb2.MODEL_STATUS_CHAMPION, artifact_uri=uri, sha256=digest,
    )  # fmt: skip
    return record


class ListRetrainPublisher:
    """Keeps the requests the loop sends."""

    def __init__(self) -> None:
        self.published: list[RetrainDecision] = []

    def publish(self, decision: RetrainDecision) -> None:
        """Keep ``decision``."""
        self.published.append(decision)


class ListReportSink:
    """Keeps the window reports."""

    def __init__(self) -> None:
        self.reports: list[WindowReport] = []

    def write(self, report: WindowReport) -> Path:
        """Keep ``report``."""
        self.reports.append(report)
        return Path(f"report-{len(self.reports)}.json")


class StaticReferenceLoader:
    """Serves references by version from memory."""

    def __init__(self, docs: Mapping[str, Mapping[str, Any]]) -> None:
        self.docs = dict(docs)

    def load(self, record: events_pb2.ModelVersion, *, canary_running: bool) -> Champion:
        """The champion of ``record`` from its document."""
        return champion_of(self.docs[record.version], record.version, canary_running=canary_running)
