"""The rollout derived from the registry log: promotion, canary, shadows, rollback."""

from __future__ import annotations

from riskstream.v1 import events_pb2
from services.registry.rollout import CANARY, CHAMPION, SHADOW, RegistryView, VersionRecord

ARCHIVED = events_pb2.MODEL_STATUS_ARCHIVED
REJECTED = events_pb2.MODEL_STATUS_REJECTED


def rec(version: str, status: int, weight: float = 0.0, model: str = "m") -> VersionRecord:
    return VersionRecord(model, version, status, canary_weight=weight)


def test_promotion_keeps_the_previous_champion_as_last_good() -> None:
    view = RegistryView("m")
    view.apply([rec("v1", CHAMPION), rec("v2", CANARY, 0.1), rec("v2", CHAMPION)])
    assert (view.state.champion, view.state.canary, view.state.last_good) == ("v2", None, "v1")


def test_archiving_the_champion_hands_the_role_back_to_last_good() -> None:
    view = RegistryView("m")
    view.apply([rec("v1", CHAMPION), rec("v2", CHAMPION), rec("v2", ARCHIVED)])
    assert view.state.champion == "v1"
    assert view.state.last_good is None


def test_rejected_canary_and_shadow_leave_traffic() -> None:
    view = RegistryView("m")
    view.apply([rec("v1", CHAMPION), rec("v2", CANARY, 0.2), rec("v3", SHADOW)])
    assert view.state.versions() == {"v1", "v2", "v3"}
    view.apply([rec("v2", REJECTED), rec("v3", ARCHIVED)])
    assert (view.state.canary, view.state.canary_weight, view.state.shadows) == (None, 0.0, ())


def test_applying_the_same_records_again_changes_nothing_and_other_models_are_ignored() -> None:
    records = [rec("v1", CHAMPION), rec("v2", CANARY, 0.3), rec("x", CHAMPION, model="other")]
    view = RegistryView("m")
    view.apply(records)
    state = view.state
    view.apply(records[1:])
    assert view.state == state
    assert "x" not in view.state.versions()


def test_canary_weight_is_clamped_and_a_champion_cannot_be_its_own_canary() -> None:
    view = RegistryView("m")
    view.apply([rec("v1", CHAMPION), rec("v1", CANARY, 0.5), rec("v2", CANARY, 7.0)])
    assert (view.state.champion, view.state.canary, view.state.canary_weight) == ("v1", "v2", 1.0)
