"""Catalog fold, approval and retention kernels on hand-built model-updates records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from riskstream.v1 import events_pb2
from services.common.errors import ConfigError
from services.registry.approval import approval
from services.registry.catalog import Catalog
from services.registry.config import RegistryConfig
from services.registry.errors import InvalidModelCard, TransitionRefused
from services.registry.retention import (
    archive_old_versions,
    archive_transitions,
    versions_to_archive,
)
from services.registry.transitions import transition

CANDIDATE = events_pb2.MODEL_STATUS_CANDIDATE
CANARY = events_pb2.MODEL_STATUS_CANARY
CHAMPION = events_pb2.MODEL_STATUS_CHAMPION
SHADOW = events_pb2.MODEL_STATUS_SHADOW
REJECTED = events_pb2.MODEL_STATUS_REJECTED
ARCHIVED = events_pb2.MODEL_STATUS_ARCHIVED
AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def published(version: str, status: int, day: int, model: str = "m") -> events_pb2.ModelVersion:
    """A version's first record, with card, metrics and plan like the trainer's."""
    event = events_pb2.ModelVersion(
        model_name=model,
        version=version,
        status=status,
        sha256="ab" * 32,
        artifact_uri=f"file:///models/{version}",
        metrics={"average_precision": 0.5 + day / 100, "roc_auc": 0.9},
        model_card_json='{"owner":"risk-ml"}',
        transition_reason="published",
    )
    event.rollout.high_impact = True
    event.created_at.FromDatetime(datetime(2026, 1, day, tzinfo=UTC))
    event.transition_time.FromDatetime(datetime(2026, 1, day, 1, tzinfo=UTC))
    return event


def moved(base: events_pb2.ModelVersion, status: int, reason: str, day: int, **kw: object):
    return transition(base, status, reason, at=datetime(2026, 2, day, tzinfo=UTC), **kw)  # type: ignore[arg-type]


def test_statuses_roles_and_history_follow_the_log() -> None:
    v1, v2, v3, v4 = (published(f"v{i}", CANDIDATE, i) for i in range(1, 5))
    log = [
        v1, moved(v1, CHAMPION, "first", 1),
        v2, moved(v2, CANARY, "canary 10%", 2, canary_weight=0.1),
        moved(v2, CHAMPION, "canary beat champion", 3),
        v3, moved(v3, REJECTED, "gate: ece 0.2 > 0.05", 4, rejection_reasons=["ece"]),
        v4, moved(v4, CANARY, "canary 20%", 5, canary_weight=0.2),
    ]  # fmt: skip
    catalog = Catalog()
    catalog.apply(log)
    model = catalog.model("m")
    assert model is not None and catalog.model("other") is None
    got = {v.version: (v.status, v.recorded_status, v.role) for v in model.versions}
    assert got == {
        "v1": ("retired", "champion", "last_good"),
        "v2": ("champion", "champion", "champion"),
        "v3": ("rejected", "rejected", None),
        "v4": ("canary", "canary", "canary"),
    }
    assert [v.version for v in model.versions] == ["v1", "v2", "v3", "v4"]
    v2_entry = model.version("v2")
    assert v2_entry is not None
    assert [(t.status, t.reason) for t in v2_entry.history] == [
        ("candidate", "published"),
        ("canary", "canary 10%"),
        ("champion", "canary beat champion"),
    ]
    assert v2_entry.history[-1].at == "2026-02-03T00:00:00Z"
    assert v2_entry.created_at == "2026-01-02T00:00:00Z"
    assert v2_entry.reason == "canary beat champion"
    # The latest record is the full one: card and metrics survived the transitions.
    assert v2_entry.record.model_card_json == '{"owner":"risk-ml"}'
    with pytest.raises(InvalidModelCard, match="missing keys"):
        v2_entry.card()  # a stub card: refused, not shown as empty
    assert (model.rollout.champion, model.rollout.canary, model.rollout.last_good) == (
        "v2",
        "v4",
        "v1",
    )


def test_a_compacted_log_gives_the_same_roles_and_records() -> None:
    v1, v2 = published("v1", CHAMPION, 1), published("v2", CANDIDATE, 2)
    full = [v1, v2, moved(v2, CANARY, "canary", 2, canary_weight=0.1)]
    compacted = [v1, full[-1]]  # only the latest record of each key survives
    a, b = Catalog(), Catalog()
    a.apply(full)
    b.apply(compacted)
    ma, mb = a.model("m"), b.model("m")
    assert ma is not None and mb is not None
    assert ma.rollout == mb.rollout
    assert [v.record for v in ma.versions] == [v.record for v in mb.versions]
    assert len(mb.versions[1].history) == 1  # the history is what the log still holds


def test_models_are_kept_apart_and_the_catalog_keeps_private_copies() -> None:
    a, b = published("v1", CHAMPION, 1, "a"), published("v1", CANDIDATE, 1, "b")
    catalog = Catalog()
    catalog.apply([a, b, events_pb2.ModelVersion(model_name="a")])  # no version: ignored
    a.metrics["average_precision"] = 0.0
    assert catalog.model_names == ("a", "b")
    model = catalog.model("a")
    assert model is not None and model.versions[0].record.metrics["average_precision"] == 0.51
    b_model = catalog.model("b")
    assert b_model is not None and b_model.versions[0].status == "candidate"


def _catalog(*records: events_pb2.ModelVersion) -> Catalog:
    catalog = Catalog()
    catalog.apply(records)
    return catalog


def test_approval_keeps_the_status_and_the_whole_record() -> None:
    v2 = published("v2", CANARY, 2)
    catalog = _catalog(published("v1", CHAMPION, 1), v2)
    model = catalog.model("m")
    assert model is not None
    entry = model.version("v2")
    assert entry is not None
    event = approval(entry, "alice", at=AT)
    assert event.status == CANARY and event.approved_by == "alice"
    assert event.transition_reason == "approved by alice"
    assert event.model_card_json == v2.model_card_json and event.metrics == v2.metrics
    assert event.rollout.high_impact
    catalog.apply([event])  # an approval changes no role
    after = catalog.model("m")
    assert after is not None and after.rollout == model.rollout
    approved = after.version("v2")
    assert approved is not None and approved.approved_by == "alice"


@pytest.mark.parametrize(
    ("status", "message"),
    [(REJECTED, "is rejected"), (ARCHIVED, "is archived")],
)
def test_rejected_and_archived_versions_cannot_be_approved(status: int, message: str) -> None:
    model = _catalog(published("v1", status, 1)).model("m")
    assert model is not None and model.versions
    with pytest.raises(TransitionRefused, match=message):
        approval(model.versions[0], "alice")


def test_a_retired_champion_cannot_be_approved_back_into_traffic() -> None:
    model = _catalog(published("v1", CHAMPION, 1), published("v2", CHAMPION, 2)).model("m")
    assert model is not None
    retired = model.version("v1")
    assert retired is not None and retired.status == "retired"
    with pytest.raises(TransitionRefused, match="retired"):
        approval(retired, "alice")
    current = model.version("v2")
    assert current is not None
    with pytest.raises(TransitionRefused, match="needs a name"):
        approval(current, "  ")


def test_retention_never_archives_versions_in_use_and_keeps_the_newest_others() -> None:
    records = [
        published("v1", CHAMPION, 1),
        published("v2", CHAMPION, 2),  # champion; v1 becomes last good
        published("v3", REJECTED, 3),
        published("v4", ARCHIVED, 4),
        published("v5", CANDIDATE, 5),
        published("v6", SHADOW, 6),
        published("v7", CANDIDATE, 7),
        published("v8", CANDIDATE, 8),
        published("v9", CANARY, 9),
        published("v0", CANDIDATE, 10),  # newest by creation time, first by name
    ]
    model = _catalog(*records).model("m")
    assert model is not None
    assert versions_to_archive(model, keep=2) == ("v5", "v7")
    assert versions_to_archive(model, keep=0) == ("v5", "v7", "v8", "v0")
    assert versions_to_archive(model, keep=10) == ()
    with pytest.raises(ValueError, match="keep"):
        versions_to_archive(model, keep=-1)


def test_versions_without_creation_time_are_oldest_and_keep_log_order() -> None:
    undated = [events_pb2.ModelVersion(model_name="m", version=f"u{i}") for i in range(3)]
    model = _catalog(published("v1", CHAMPION, 1), *undated).model("m")
    assert model is not None
    assert versions_to_archive(model, keep=1) == ("u0", "u1")


class _Recorder:
    def __init__(self) -> None:
        self.events: list[events_pb2.ModelVersion] = []

    def publish(self, event: events_pb2.ModelVersion) -> None:
        self.events.append(event)


def test_archive_old_versions_publishes_full_archived_records() -> None:
    catalog = _catalog(
        published("v1", CHAMPION, 1),
        published("v2", CANDIDATE, 2),
        published("v3", CANDIDATE, 3),
        published("x1", CANDIDATE, 1, model="other"),
    )
    sink = _Recorder()
    events = archive_old_versions(catalog, 1, sink, at=AT)
    assert sink.events == events
    assert [(e.model_name, e.version) for e in events] == [("m", "v2")]
    [event] = events
    assert event.status == ARCHIVED and event.model_card_json == '{"owner":"risk-ml"}'
    assert event.transition_time.ToDatetime(UTC) == AT
    assert "retention" in event.transition_reason
    assert archive_transitions(catalog, 0, model_name="other", at=AT)[0].version == "x1"
    assert archive_transitions(catalog, 0, model_name="missing") == []
    catalog.apply(events)  # archived versions are not archived again
    assert archive_transitions(catalog, 1) == []


def test_registry_config_reads_its_prefix_only() -> None:
    assert RegistryConfig.from_env({}).keep_versions == 5
    config = RegistryConfig.from_env(
        {"RISKSTREAM_REGISTRY_KEEP_VERSIONS": "2", "RISKSTREAM_REGISTRY_TOPIC": "t"}
    )
    assert (config.keep_versions, config.topic) == (2, "t")
    with pytest.raises(ConfigError, match="KEEP_VERSIONS"):
        RegistryConfig.from_env({"RISKSTREAM_REGISTRY_KEEP_VERSIONS": "-1"})
    with pytest.raises(ConfigError, match="unknown"):
        RegistryConfig.from_env({"RISKSTREAM_REGISTRY_KEEP": "3"})
