"""The wire: FraudScoring and ModelAdmin requests in, domain calls, responses out.

Nothing here decides anything: it validates and translates (protobuf ↔
:mod:`services.scoring.scorer`), and lets the interceptor map errors to statuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from grpc import aio

from riskstream.v1 import events_pb2, scoring_pb2, scoring_pb2_grpc
from services.common.errors import InvalidEvent
from services.common.events import validate_transaction
from services.registry.rollout import CANARY, CHAMPION, SHADOW
from services.scoring.admin import RolloutAdmin
from services.scoring.pool import Snapshot
from services.scoring.scorer import Decided, Scorer, Transaction

#: Largest ScoreBatch accepted (bigger batches belong to a stream or a batch job).
MAX_BATCH = 1_000
#: Requests of one ScoreStream being scored at once (the micro-batcher's default max
#: batch): past it the stream stops reading, and HTTP/2 flow control slows the client.
STREAM_WINDOW = 64


def to_transaction(request: scoring_pb2.ScoreRequest, prefix: str = "") -> Transaction:
    """Validate a request's transaction; errors name the field from the request's root.

    Raises:
        InvalidEvent: the field and why.
    """
    if not request.HasField("transaction"):
        raise InvalidEvent(field=f"{prefix}transaction", reason="required")
    tx = request.transaction
    try:
        validate_transaction(tx)
    except InvalidEvent as exc:
        raise InvalidEvent(field=f"{prefix}transaction.{exc.field}", reason=exc.reason) from None
    return Transaction(
        tx.transaction_id, tx.card_id, tx.terminal_id, tx.amount, tx.event_time.ToMilliseconds()
    )


def to_response(decided: Decided, request_id: str) -> scoring_pb2.ScoreResponse:
    """The wire form of a decision."""
    response = scoring_pb2.ScoreResponse(
        transaction_id=decided.transaction_id,
        score=decided.score,
        decision=decided.decision,  # type: ignore[arg-type]
        model_name=decided.model_name,
        model_version=decided.model_version,
        route=decided.route,  # type: ignore[arg-type]
        latency_ms=decided.latency_ms,
        fallback_reason=decided.fallback_reason,
        request_id=request_id,
        freshness=scoring_pb2.FeatureFreshness(
            card_age_ms=decided.card_age_ms,
            terminal_age_ms=decided.terminal_age_ms,
            card_found=decided.card_found,
            terminal_found=decided.terminal_found,
            feature_set_version=decided.feature_set_version,
        ),
        reason_codes=[
            events_pb2.ReasonCode(
                code=r.code, feature=r.feature, contribution=r.contribution,
                description=r.description,
            )
            for r in decided.reasons
        ],
    )  # fmt: skip
    response.server_time.FromMilliseconds(decided.server_time_ms)
    return response


#: What the reader of a ScoreStream hands its writer: a decision in progress with its
#: request id, the error that ended the requests, or None at their end.
_StreamItem = tuple["asyncio.Future[Decided]", str] | BaseException | None


class FraudScoringServicer(scoring_pb2_grpc.FraudScoringServicer):
    """Score, ScoreBatch and ScoreStream over one :class:`Scorer`."""

    def __init__(self, scorer: Scorer, *, stream_window: int = STREAM_WINDOW) -> None:
        if stream_window < 1:
            raise ValueError("stream_window must be at least 1")
        self._scorer = scorer
        self._stream_window = stream_window

    async def Score(  # noqa: N802 (gRPC method name)
        self, request: scoring_pb2.ScoreRequest, context: aio.ServicerContext
    ) -> scoring_pb2.ScoreResponse:
        """Score one transaction."""
        tx = to_transaction(request)
        decided = await self._scorer.score(
            tx, explain=request.explain, time_remaining_s=context.time_remaining()
        )
        return to_response(decided, request.request_id)

    async def ScoreBatch(  # noqa: N802
        self, request: scoring_pb2.ScoreBatchRequest, context: aio.ServicerContext
    ) -> scoring_pb2.ScoreBatchResponse:
        """Score several transactions; responses in request order."""
        if len(request.requests) > MAX_BATCH:
            raise InvalidEvent(field="requests", reason=f"more than {MAX_BATCH} transactions")
        txs = [to_transaction(r, f"requests[{i}].") for i, r in enumerate(request.requests)]
        remaining = context.time_remaining()
        decided = await asyncio.gather(
            *(
                self._scorer.score(tx, explain=r.explain, time_remaining_s=remaining)
                for tx, r in zip(txs, request.requests, strict=True)
            )
        )
        return scoring_pb2.ScoreBatchResponse(
            responses=[
                to_response(d, r.request_id) for d, r in zip(decided, request.requests, strict=True)
            ]
        )

    async def ScoreStream(  # noqa: N802
        self,
        request_iterator: AsyncIterator[scoring_pb2.ScoreRequest],
        context: aio.ServicerContext,
    ) -> AsyncIterator[scoring_pb2.ScoreResponse]:
        """One response per request, in request order; an invalid request ends the stream.

        Requests are scored concurrently, up to the stream window, so a stream's
        messages share micro-batches instead of each waiting for the one before it
        (one message costs far less than one unary call: streaming is the fast path
        for high-rate clients). Answers still leave in request order. An invalid
        request ends the stream with INVALID_ARGUMENT naming the field, after the
        answers to the requests before it.
        """
        in_flight: asyncio.Queue[_StreamItem] = asyncio.Queue()
        window = asyncio.Semaphore(self._stream_window)

        async def read() -> None:
            try:
                async for request in request_iterator:
                    tx = to_transaction(request)
                    await window.acquire()
                    scoring = asyncio.ensure_future(
                        self._scorer.score(
                            tx, explain=request.explain, time_remaining_s=context.time_remaining()
                        )
                    )
                    in_flight.put_nowait((scoring, request.request_id))
            except Exception as exc:  # noqa: BLE001 (handed to the writer, raised there)
                in_flight.put_nowait(exc)
            else:
                in_flight.put_nowait(None)

        reader = asyncio.ensure_future(read())
        try:
            while (item := await in_flight.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                scoring, request_id = item
                decided = await scoring
                window.release()
                yield to_response(decided, request_id)
        finally:
            reader.cancel()
            while not in_flight.empty():
                left = in_flight.get_nowait()
                if isinstance(left, tuple):
                    left[0].cancel()


def loaded_models(snapshot: Snapshot) -> list[scoring_pb2.LoadedModel]:
    """Every version a snapshot holds, with its role and share."""
    out: list[scoring_pb2.LoadedModel] = []
    canary_share = snapshot.canary_weight if snapshot.canary else 0.0
    for version, model in sorted(snapshot.models.items()):
        if snapshot.champion is model:
            status, share = CHAMPION, 1.0 - canary_share
        elif snapshot.canary is model:
            status, share = CANARY, canary_share
        elif model in snapshot.shadows:
            status, share = SHADOW, 0.0
        else:
            status, share = events_pb2.MODEL_STATUS_CANDIDATE, 0.0
        entry = scoring_pb2.LoadedModel(
            model_name=model.metadata.model_name,
            version=version,
            status=status,  # type: ignore[arg-type]
            traffic_share=share,
            sha256=model.digest,
            feature_set_version=model.metadata.feature_set_version,
        )
        entry.loaded_at.FromDatetime(model.loaded_at)
        out.append(entry)
    return out


class ModelAdminServicer(scoring_pb2_grpc.ModelAdminServicer):
    """Rollout administration (role ``admin``)."""

    def __init__(self, admin: RolloutAdmin, snapshot: object) -> None:
        self._admin = admin
        self._snapshot = snapshot  # a callable returning the current Snapshot

    def _listing(self, snap: Snapshot, message: str) -> scoring_pb2.RolloutResponse:
        return scoring_pb2.RolloutResponse(models=loaded_models(snap), message=message)

    async def ListModels(  # noqa: N802
        self, request: scoring_pb2.ListModelsRequest, context: aio.ServicerContext
    ) -> scoring_pb2.ListModelsResponse:
        """Every loaded version."""
        snap: Snapshot = self._snapshot()  # type: ignore[operator]
        return scoring_pb2.ListModelsResponse(
            models=loaded_models(snap),
            last_good_version=snap.last_good.version if snap.last_good else "",
        )

    async def SetCanaryWeight(  # noqa: N802
        self, request: scoring_pb2.SetCanaryWeightRequest, context: aio.ServicerContext
    ) -> scoring_pb2.RolloutResponse:
        """Set the canary's share of cards."""
        if not request.version:
            raise InvalidEvent(field="version", reason="required")
        snap = await self._admin.set_canary_weight(request.version, request.weight, request.reason)
        return self._listing(snap, f"{request.version} takes {request.weight:.1%} of cards")

    async def Promote(  # noqa: N802
        self, request: scoring_pb2.PromoteRequest, context: aio.ServicerContext
    ) -> scoring_pb2.RolloutResponse:
        """Make a version the champion."""
        if not request.version:
            raise InvalidEvent(field="version", reason="required")
        snap = await self._admin.promote(request.version, request.reason)
        return self._listing(snap, f"{request.version} is the champion")

    async def Rollback(  # noqa: N802
        self, request: scoring_pb2.RollbackRequest, context: aio.ServicerContext
    ) -> scoring_pb2.RolloutResponse:
        """Back to the last-good champion."""
        snap = await self._admin.rollback(request.reason)
        champion = snap.champion.version if snap.champion else "rules"
        return self._listing(snap, f"rolled back; {champion} is the champion")
