"""Turns a ``model-updates`` record into a verified, warmed-up :class:`ServedModel`.

Nothing half-loaded is ever served: a model is verified (sha256 of every file,
signature when a public key is configured, feature-set version, feature order),
loaded into ONNX Runtime, checked against XGBoost's own probabilities on a few
rows and run once at every batch size it will see, before the pool may route to it.

On a GPU host (``device`` auto or cuda, the CUDA provider and a GPU present) the
model is also compiled to its tensor form (:mod:`services.scoring.tensor_form`),
checked against the CPU form, and large batches run on it; a model that does not
compile or does not match stays on the CPU, with the reason logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.feature_store.definitions import FEATURE_SET_VERSION
from services.registry.artifact import LoadedArtifact, load_artifact
from services.registry.errors import ArtifactRejected, RejectReason
from services.registry.metadata import ModelMetadata
from services.registry.rollout import VersionRecord
from services.registry.store import LocalArtifactStore
from services.scoring.batching import MicroBatcher, Rows, Scores
from services.scoring.errors import TensorFormUnavailable
from services.scoring.onnx_model import (
    OnnxModel,
    SessionSettings,
    XgbExplainer,
    cuda_available,
)
from services.scoring.tensor_form import (
    CpuGpuModel,
    Predictor,
    compile_tensor_form,
    measure_crossover,
    parity_gap,
)
from services.scoring.vectorize import VectorLayout

log = logging.getLogger(__name__)

#: Largest |p_onnx - p_xgboost| accepted at load time (the export's parity bound).
PARITY_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version, ready for traffic.

    Attributes:
        metadata: the artifact's metadata (name, version, features, thresholds).
        digest: the artifact's sha256 (its identity).
        layout: builds the input row in the model's feature order.
        onnx: the ONNX Runtime session(s): the CPU form, or CPU and GPU forms.
        explainer: per-feature contributions for reason codes.
        batcher: groups concurrent rows into one inference call.
        loaded_at: when it became ready.
    """

    metadata: ModelMetadata
    digest: str
    layout: VectorLayout
    onnx: Predictor
    explainer: XgbExplainer
    batcher: MicroBatcher
    loaded_at: datetime

    @property
    def version(self) -> str:
        """The model version."""
        return self.metadata.version

    def predict(self, rows: Rows) -> Scores:
        """Calibrated scores of a batch (bypasses the batcher: OIP ModelInfer, tests)."""
        return self.metadata.calibration.apply(self.onnx.predict(rows))


@dataclass(frozen=True)
class LoaderSettings:
    """How models are loaded and batched."""

    session: SessionSettings = field(default_factory=SessionSettings)
    max_batch_size: int = 64
    max_wait_us: int = 0
    public_key: Ed25519PublicKey | None = None


class ModelLoader:
    """Loads artifacts from the local store (``file://`` URIs).

    Args:
        store: where artifact URIs resolve.
        settings: sessions, batching and the signature key.
        on_batch: metrics hook (version, rows, seconds) for every inference call.
        gpu_form: builds the GPU session of an artifact (tests pass their own).
        gpu_present: whether a GPU form should be tried at all.
    """

    def __init__(
        self,
        store: LocalArtifactStore,
        settings: LoaderSettings,
        on_batch: Callable[[str, int, float], None] | None = None,
        *,
        gpu_form: Callable[[LoadedArtifact, SessionSettings], Predictor] | None = None,
        gpu_present: Callable[[], bool] = cuda_available,
    ) -> None:
        self._store = store
        self._settings = settings
        self._on_batch = on_batch
        self._gpu_form = gpu_form or _compiled_gpu_session
        self._gpu_present = gpu_present

    def load(self, record: VersionRecord) -> ServedModel:
        """Verify, load and warm up the artifact a record names.

        Raises:
            ArtifactRejected: the artifact failed a check; nothing was loaded.
        """
        artifact = load_artifact(
            self._store.resolve(record.artifact_uri),
            expected_sha256=record.sha256,
            public_key=self._settings.public_key,
            signature=record.signature or None,
            expected_feature_set_version=FEATURE_SET_VERSION,
        )
        meta = artifact.metadata
        if meta.version != record.version or meta.model_name != record.model_name:
            raise ArtifactRejected(
                reason=RejectReason.BAD_METADATA,
                detail=f"artifact is {meta.model_name}:{meta.version}, "
                f"record names {record.model_name}:{record.version}",
            )
        return self._build(artifact)

    def _build(self, artifact: LoadedArtifact) -> ServedModel:
        meta = artifact.metadata
        try:
            layout = VectorLayout(meta.feature_names)
        except ValueError as exc:
            raise ArtifactRejected(reason=RejectReason.BAD_METADATA, detail=str(exc)) from exc
        session = self._settings.session
        cpu = OnnxModel(
            artifact.onnx_bytes,
            input_name=meta.input_name,
            output_name=meta.output_name,
            output_index=meta.output_index,
            width=len(meta.feature_names),
            settings=SessionSettings(session.intra_op_threads, "cpu"),
        )
        explainer = XgbExplainer(artifact.xgb_json_bytes, meta.feature_names)
        _check_parity(cpu, explainer, len(meta.feature_names))
        onnx: Predictor = cpu
        gpu = self._try_gpu_form(artifact, cpu)
        min_gpu_rows = session.gpu_min_batch
        if gpu is not None and min_gpu_rows is None:
            min_gpu_rows = measure_crossover(cpu, gpu)
            if min_gpu_rows is None:
                log.warning(
                    "model %s:%s stays on the CPU: its GPU form was slower up to 1,024 rows",
                    meta.model_name,
                    meta.version,
                )
                gpu = None
        if gpu is not None and min_gpu_rows is not None:
            onnx = CpuGpuModel(cpu, gpu, min_gpu_rows=min_gpu_rows)
        device = "cpu" if gpu is None else f"cpu below {min_gpu_rows} rows, else cuda"
        calibration = meta.calibration

        def run(rows: Rows) -> Scores:
            return calibration.apply(onnx.predict(rows))

        hook = self._on_batch
        batcher = MicroBatcher(
            run,
            max_batch_size=self._settings.max_batch_size,
            max_wait_us=self._settings.max_wait_us,
            on_batch=None if hook is None else lambda n, s: hook(meta.version, n, s),
        )
        sizes = {1, self._settings.max_batch_size}
        if gpu is not None and min_gpu_rows is not None:
            sizes.add(min_gpu_rows)
        for size in sorted(sizes):  # warm-up, both forms when there are two
            run(np.zeros((size, len(meta.feature_names)), dtype=np.float32))
        log.info(
            "model %s:%s loaded (%s, digest %s, providers %s)",
            meta.model_name,
            meta.version,
            device,
            artifact.digest[:12],
            ",".join(onnx.providers),
        )
        return ServedModel(
            meta, artifact.digest, layout, onnx, explainer, batcher, datetime.now(UTC)
        )

    def _try_gpu_form(self, artifact: LoadedArtifact, cpu: OnnxModel) -> Predictor | None:
        """The model's GPU session, or None (CPU asked for, no GPU, or no valid form)."""
        session = self._settings.session
        if session.device == "cpu" or not self._gpu_present():
            return None
        meta = artifact.metadata
        try:
            gpu = self._gpu_form(artifact, session)
            rows = _parity_rows(len(meta.feature_names), 256)
            gap = parity_gap(cpu.predict(rows), gpu.predict(rows))
            if not gap <= PARITY_TOLERANCE:
                raise TensorFormUnavailable(
                    f"GPU form disagrees with the CPU form by {gap:.2e} (> {PARITY_TOLERANCE})"
                )
        except TensorFormUnavailable as exc:
            log.warning(
                "model %s:%s stays on the CPU: %s", meta.model_name, meta.version, exc.detail
            )
            return None
        except ArtifactRejected as exc:
            log.warning(
                "model %s:%s stays on the CPU: its GPU form did not load: %s",
                meta.model_name,
                meta.version,
                exc,
            )
            return None
        return gpu


def _compiled_gpu_session(artifact: LoadedArtifact, session: SessionSettings) -> Predictor:
    """Hummingbird's tensor form of the artifact in a CUDA session."""
    meta = artifact.metadata
    width = len(meta.feature_names)
    form = compile_tensor_form(
        artifact.onnx_bytes,
        _parity_rows(width, 64),
        input_name=meta.input_name,
        output_name=meta.output_name,
    )
    return OnnxModel(
        form.onnx_bytes,
        input_name=form.input_name,
        output_name=form.output_name,
        output_index=meta.output_index,
        width=width,
        settings=SessionSettings(session.intra_op_threads, "cuda"),
    )


def _parity_rows(width: int, n: int) -> np.ndarray:
    """Seeded positive rows with a spread like amounts and counts, plus a zero row."""
    rng = np.random.default_rng(7)
    rows = rng.gamma(2.0, 20.0, size=(n, width)).astype(np.float32)
    rows[0] = 0.0
    return rows


def _check_parity(onnx: OnnxModel, explainer: XgbExplainer, width: int) -> None:
    """The ONNX model must score like XGBoost's own model (catches a swapped file)."""
    rows = _parity_rows(width, 16)
    p_onnx = onnx.predict(rows)
    p_xgb = explainer.probabilities(rows)
    worst = float(np.max(np.abs(p_onnx - p_xgb)))
    if not worst <= PARITY_TOLERANCE:
        raise ArtifactRejected(
            reason=RejectReason.CORRUPT_MODEL,
            detail=f"ONNX and XGBoost disagree by {worst:.2e} (> {PARITY_TOLERANCE})",
        )
