"""The canary's own holdout behaviour, read from its verified artifact.

Adapter. The score sketch comes through the registry's
:class:`services.registry.reference_loader.ArtifactReferenceLoader` — the same
verified read (sha256, signature when a key is configured, ``reference.json`` pinned
by the metadata) the drift monitor uses for its champion; the holdout decline rate
and row count come from the record's ``metrics``. An artifact that has no usable
reference gives a baseline without scores, its reason kept for the decision.
"""

from __future__ import annotations

import logging

from riskstream.v1 import events_pb2
from services.controller.baseline import Baseline
from services.registry.errors import ReferenceUnavailable
from services.registry.reference_loader import ArtifactReferenceLoader

log = logging.getLogger(__name__)


class ArtifactBaselineLoader:
    """A version's :class:`Baseline` from its record and its artifact's reference.

    Args:
        references: the verified reader of artifacts' ``reference.json``.
    """

    def __init__(self, references: ArtifactReferenceLoader) -> None:
        self._references = references

    def load(self, record: events_pb2.ModelVersion) -> Baseline:
        """The holdout behaviour of the version ``record`` announces (never raises)."""
        metrics = dict(record.metrics)
        try:
            loaded = self._references.load(record)
        except ReferenceUnavailable as exc:
            log.warning("canary %s: no usable reference (%s)", record.version, exc.detail)
            return Baseline.of(record.version, metrics, missing=f"no reference: {exc.detail}")
        score = loaded.reference.score
        return Baseline.of(
            record.version,
            metrics,
            score_sketch=(float(v) for v in score.sample),
            score_rows=score.count,
        )
