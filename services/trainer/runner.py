"""Training runs wired to the stack: offline store in, ``model-updates`` out.

Adapters around :mod:`services.trainer.pipeline`: find the champion in the
registry's log and verify its artifact, read labelled rows through Feast's offline
store (:func:`services.trainer.training_set.build_training_set`), run the pipeline,
publish the outcome (CANARY / CHAMPION / REJECTED) and apply retention. Used by
``riskstream train`` and by the ``retrain-requests`` consumer
(:mod:`services.trainer.__main__`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from riskstream.v1 import events_pb2
from services.common.kafka import KafkaClientSettings
from services.feature_store.definitions import FEATURE_SET_VERSION, REQUEST_FEATURES
from services.registry.artifact import LoadedArtifact, load_artifact
from services.registry.catalog import Catalog
from services.registry.config import RegistryConfig
from services.registry.log import read_model_updates
from services.registry.publish import ModelVersionPublisher
from services.registry.retention import archive_old_versions
from services.registry.rollout import RegistryView, VersionRecord
from services.registry.store import LocalArtifactStore
from services.trainer.config import TrainerConfig
from services.trainer.errors import TrainingFailed
from services.trainer.pipeline import TrainingRun, publication, train_candidate

log = logging.getLogger(__name__)


def current_champion(
    events: Sequence[events_pb2.ModelVersion], model_name: str
) -> events_pb2.ModelVersion | None:
    """The champion's full record after folding the log (None: no champion)."""
    view = RegistryView(model_name)
    view.apply(VersionRecord.from_event(e) for e in events)
    champion = view.state.champion
    if champion is None:
        return None
    return view.records[champion].event


def load_champion(
    record: events_pb2.ModelVersion,
    store: LocalArtifactStore,
    public_key: Ed25519PublicKey | None,
) -> LoadedArtifact:
    """The champion's artifact, verified exactly as a scorer verifies it.

    Raises:
        ArtifactRejected: it does not verify (the gate cannot compare against it).
    """
    return load_artifact(
        store.resolve(record.artifact_uri),
        expected_sha256=record.sha256,
        public_key=public_key,
        signature=record.signature or None,
    )


def latest_labelled_time(offline_root: Path) -> datetime | None:
    """The newest event time among labelled transactions in the offline store."""
    partitions = sorted((Path(offline_root) / "bronze" / "labels").glob("date=*"))
    for partition in reversed(partitions):
        files = sorted(partition.glob("*.parquet"))
        if not files:
            continue
        times = pd.concat([pq.read_table(f, columns=["event_time"]).to_pandas() for f in files])[
            "event_time"
        ]
        if len(times):
            return pd.Timestamp(times.max()).tz_convert(UTC).to_pydatetime()
    return None


def offline_frame(
    offline_root: Path,
    registry_path: Path,
    redis_url: str,
    *,
    features: Sequence[str],
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    """Labelled rows in ``[start, end)`` with point-in-time-correct ``features``.

    The request-time flags the segment audit needs are always included.
    """
    from services.feature_store.feast_store import make_store  # Feast: 13-23 s cold
    from services.trainer.training_set import build_training_set

    wanted = list(dict.fromkeys([*features, *REQUEST_FEATURES]))
    store = make_store(redis_url, offline_root, registry_path)
    return build_training_set(store, offline_root, start=start, end=end, features=wanted)


@dataclass(frozen=True)
class Outcome:
    """A run and what was published for it (None when not published)."""

    run: TrainingRun
    event: events_pb2.ModelVersion
    published: bool


def train_from_offline_store(
    config: TrainerConfig,
    *,
    features: Sequence[str],
    offline_root: Path,
    registry_path: Path,
    redis_url: str,
    store: LocalArtifactStore,
    kafka: KafkaClientSettings | None,
    publisher: ModelVersionPublisher | None,
    topic: str,
    end: datetime | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    public_key: Ed25519PublicKey | None = None,
    reason: str = "riskstream train",
    keep_versions: int | None = None,
    events: Sequence[events_pb2.ModelVersion] | None = None,
) -> Outcome:
    """Champion from the log → rows from the offline store → pipeline → publish.

    Args:
        config: run settings; the rows span ``config.days - config.burn_in_days``
            days before ``end``.
        features: the model's inputs, in order.
        offline_root: the offline store.
        registry_path: Feast's registry file.
        redis_url: Feast's online store (not read; Feast's config needs one).
        store: the artifact store.
        kafka: where ``model-updates`` is read (None: no champion, e.g. offline use).
        publisher: sends the record (None: nothing published).
        topic: the ``model-updates`` topic.
        end: end of the holdout; the newest labelled transaction by default.
        signing_key: signs the artifact.
        public_key: verifies the champion's artifact.
        reason: the published transition's reason.
        keep_versions: retention after publishing (``RISKSTREAM_REGISTRY_KEEP_VERSIONS``
            when None, the setting ``riskstream models prune`` uses).
        events: the ``model-updates`` log already read by the caller (read from
            ``kafka`` when None).

    Raises:
        TrainingFailed: no labelled rows, a one-class side, a missing feature.
    """
    if events is None:
        events = read_model_updates(kafka, topic=topic) if kafka is not None else []
    champion_record = current_champion(events, config.model_name)
    champion = (
        load_champion(champion_record, store, public_key) if champion_record is not None else None
    )
    if champion is not None and champion.metadata.feature_set_version != FEATURE_SET_VERSION:
        log.warning(
            "champion %s uses feature set %s, this trainer %s: compared on shared features",
            champion.metadata.version,
            champion.metadata.feature_set_version,
            FEATURE_SET_VERSION,
        )
    if end is None:
        newest = latest_labelled_time(offline_root)
        if newest is None:
            raise TrainingFailed(f"no labelled transactions under {offline_root}", stage="data")
        end = newest + timedelta(microseconds=1)
    start = end - timedelta(days=config.days - config.burn_in_days)
    names = list(dict.fromkeys([*features, *(champion.metadata.feature_names if champion else ())]))
    frame = offline_frame(
        offline_root, registry_path, redis_url, features=names, start=start, end=end
    )
    run = train_candidate(
        frame,
        config,
        features=features,
        end=end,
        store=store,
        champion=champion,
        signing_key=signing_key,
        data_sources=(
            f"offline store {offline_root}: bronze labels and transactions, "
            "silver feature log through Feast get_historical_features (point in time)",
            f"{len(frame)} labelled transactions from {start:%Y-%m-%d %H:%M} "
            f"to {end:%Y-%m-%d %H:%M} UTC",
        ),
    )
    event = publication(run, config, has_champion=champion is not None, reason=reason)
    if publisher is not None:
        publisher.publish(event)
        # Retention: the catalog as the log now stands (this version included).
        catalog = Catalog()
        catalog.apply([*events, event])
        keep = RegistryConfig.from_env().keep_versions if keep_versions is None else keep_versions
        archived = archive_old_versions(catalog, keep, publisher, model_name=config.model_name)
        if archived:
            log.info("retention archived %s", ", ".join(e.version for e in archived))
    return Outcome(run=run, event=event, published=publisher is not None)
