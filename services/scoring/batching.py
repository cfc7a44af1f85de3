"""Micro-batching: concurrent requests for one model share one inference call.

A request's row joins the pending batch; the batch runs when it reaches
``max_batch_size`` or when ``max_wait_us`` has passed since its first row (0: on the
next turn of the event loop, which gathers every request that arrived while the
loop was busy — under load batches grow by themselves, idle requests wait for
nothing). The model runs on the event loop's thread: a tree ensemble scores a
batch in tens of microseconds, less than a hand-off to a worker thread costs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

Rows = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]


class MicroBatcher:
    """Groups rows for one model and resolves each caller's future with its score.

    Args:
        run: scores a float32 batch of shape (n, width); returns n scores.
        max_batch_size: rows per call.
        max_wait_us: how long the first row of a batch waits for company.
        on_batch: called with (rows, seconds) after each call, for metrics.

    Examples:
        >>> async def demo():
        ...     batcher = MicroBatcher(lambda x: x.sum(axis=1).astype(float), max_batch_size=8)
        ...     return await asyncio.gather(*(batcher.submit([i, 1.0]) for i in range(3)))
        >>> asyncio.run(demo())
        [1.0, 2.0, 3.0]
    """

    def __init__(
        self,
        run: Callable[[Rows], Scores],
        *,
        max_batch_size: int = 64,
        max_wait_us: int = 0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch_size <= 0:
            raise ValueError("max_batch_size must be positive")
        self._run = run
        self._max = max_batch_size
        self._wait_s = max_wait_us / 1e6
        self._on_batch = on_batch
        self._rows: list[Sequence[float]] = []
        self._futures: list[asyncio.Future[float]] = []
        self._timer: asyncio.Handle | None = None

    @property
    def pending(self) -> int:
        """Rows waiting for the next call (queue depth)."""
        return len(self._rows)

    def submit(self, row: Sequence[float]) -> asyncio.Future[float]:
        """Queue one row; the future resolves to its score (or the model's error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self._rows.append(row)
        self._futures.append(future)
        if len(self._rows) >= self._max:
            self._flush()
        elif self._timer is None:
            self._timer = (
                loop.call_later(self._wait_s, self._flush)
                if self._wait_s > 0
                else loop.call_soon(self._flush)
            )
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows, futures = self._rows, self._futures
        if not rows:
            return
        self._rows, self._futures = [], []
        started = time.perf_counter()
        try:
            scores = self._run(np.asarray(rows, dtype=np.float32))
        except Exception as exc:  # noqa: BLE001 (every caller must hear of the failure)
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(rows), time.perf_counter() - started)
        for future, score in zip(futures, scores.tolist(), strict=True):
            if not future.done():  # a caller may have been cancelled meanwhile
                future.set_result(score)
