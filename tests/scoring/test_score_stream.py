"""ScoreStream's pipelining, on the servicer with a scorer that takes its time.

The boundary faked here is the scorer (its real path is covered against Redis, Kafka
and a served model in test_server.py): each call waits a different time, so answers
that left in completion order would come out shuffled, and the scorer counts how
many calls it has at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from riskstream.v1 import events_pb2, scoring_pb2
from services.common.errors import InvalidEvent
from services.scoring.scorer import Decided, Transaction
from services.scoring.server import FraudScoringServicer


class SlowScorer:
    """Answers after a delay that shrinks with the request's index."""

    def __init__(self) -> None:
        self.running = 0
        self.most_at_once = 0

    async def score(self, tx: Transaction, *, explain: bool, time_remaining_s: float | None):
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        index = int(tx.transaction_id.rsplit("-", 1)[1])
        await asyncio.sleep(0.002 * (30 - index % 30))
        self.running -= 1
        return Decided(
            transaction_id=tx.transaction_id, score=index / 100, decision=1, reasons=(),
            model_name="m", model_version="v1", route=1, card_age_ms=0.0,
            terminal_age_ms=0.0, card_found=True, terminal_found=True,
            feature_set_version="fs", fallback_reason="", latency_ms=1.0, server_time_ms=0,
        )  # fmt: skip


class Context:
    def time_remaining(self) -> float | None:
        return None


def request(i: int, *, card: str = "card-1") -> scoring_pb2.ScoreRequest:
    tx = events_pb2.Transaction(
        transaction_id=f"tx-{i}", card_id=card, terminal_id="term-1", amount=10.0 + i,
        currency="EUR", channel=events_pb2.CHANNEL_ECOMMERCE, country="FR",
    )  # fmt: skip
    tx.event_time.GetCurrentTime()
    return scoring_pb2.ScoreRequest(transaction=tx, request_id=f"r{i}")


async def requests(
    items: list[scoring_pb2.ScoreRequest],
) -> AsyncIterator[scoring_pb2.ScoreRequest]:
    for item in items:
        yield item


async def collect(
    servicer: FraudScoringServicer, items: list[scoring_pb2.ScoreRequest]
) -> list[str]:
    out = []
    async for response in servicer.ScoreStream(requests(items), Context()):  # type: ignore[arg-type]
        out.append(response.request_id)
    return out


def test_requests_overlap_up_to_the_window_and_answers_keep_request_order() -> None:
    scorer = SlowScorer()
    servicer = FraudScoringServicer(scorer, stream_window=8)  # type: ignore[arg-type]
    items = [request(i) for i in range(60)]
    answered = asyncio.run(collect(servicer, items))
    assert answered == [f"r{i}" for i in range(60)]
    assert scorer.most_at_once == 8


def test_a_window_of_one_scores_one_at_a_time() -> None:
    scorer = SlowScorer()
    servicer = FraudScoringServicer(scorer, stream_window=1)  # type: ignore[arg-type]
    asyncio.run(collect(servicer, [request(i) for i in range(6)]))
    assert scorer.most_at_once == 1


def test_an_invalid_request_is_raised_after_the_answers_before_it() -> None:
    servicer = FraudScoringServicer(SlowScorer())  # type: ignore[arg-type]
    items = [request(0), request(1), request(2, card=""), request(3)]
    answered: list[str] = []

    async def run() -> None:
        async for response in servicer.ScoreStream(requests(items), Context()):  # type: ignore[arg-type]
            answered.append(response.request_id)

    with pytest.raises(InvalidEvent) as caught:
        asyncio.run(run())
    assert caught.value.field == "transaction.card_id"
    assert answered == ["r0", "r1"]


def test_a_window_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="stream_window"):
        FraudScoringServicer(SlowScorer(), stream_window=0)  # type: ignore[arg-type]


class StallingScorer(SlowScorer):
    """Answers the first three requests, then takes 5 s a call; counts cancellations."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = 0

    async def score(self, tx: Transaction, *, explain: bool, time_remaining_s: float | None):
        try:
            if int(tx.transaction_id.rsplit("-", 1)[1]) >= 3:
                self.running += 1
                await asyncio.sleep(5.0)
            return await super().score(tx, explain=explain, time_remaining_s=time_remaining_s)
        except asyncio.CancelledError:
            self.running -= 1
            self.cancelled += 1
            raise


def test_a_cancelled_stream_stops_reading_and_cancels_the_scoring_in_flight() -> None:
    scorer = StallingScorer()
    servicer = FraudScoringServicer(scorer, stream_window=8)  # type: ignore[arg-type]
    pulled: list[int] = []

    async def endless() -> AsyncIterator[scoring_pb2.ScoreRequest]:
        i = 0
        while True:  # a client that would send for ever
            pulled.append(i)
            yield request(i)
            i += 1
            await asyncio.sleep(0)

    async def run() -> tuple[list[str], int, int, int, int, int]:
        answered: list[str] = []

        async def consume() -> None:
            async for response in servicer.ScoreStream(endless(), Context()):  # type: ignore[arg-type]
                answered.append(response.request_id)

        task = asyncio.create_task(consume())  # as grpc.aio runs a handler
        while len(answered) < 3 or scorer.running < 8:
            await asyncio.sleep(0.001)
        in_flight = scorer.running  # the window, full of stalled calls
        task.cancel()  # what grpc.aio does when the client cancels
        with pytest.raises(asyncio.CancelledError):
            await task
        at_cancel = len(pulled)
        await asyncio.sleep(0.1)
        # Read here: leaving asyncio.run would cancel whatever is left anyway.
        return answered, at_cancel, len(pulled), in_flight, scorer.cancelled, scorer.running

    answered, at_cancel, later, in_flight, cancelled, running = asyncio.run(run())
    assert answered == ["r0", "r1", "r2"]
    assert later == at_cancel  # the reader stopped pulling requests
    # The window's stalled calls were all cancelled at once, none left running.
    assert in_flight == cancelled == 8 and running == 0
