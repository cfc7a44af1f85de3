"""What a canary did on its own holdout: the behaviour its live window is judged against.

Kernel: no I/O. A trained version carries two records of its validated behaviour:
the quantile sketch of its holdout scores (``__score__`` of its artifact's
``reference.json``, :mod:`services.registry.reference`) and its holdout decision
rates in the registry record's ``metrics`` (``decline_rate`` over ``rows``,
:func:`services.trainer.evaluation.decision_metrics`). :class:`Baseline` holds them
in the controller's terms: the sketch binned on the window's fixed score bins
(:data:`services.controller.windows.SCORE_EDGES`) — each quantile stands for an
equal share of the holdout, so a bin's share is the share of quantiles that fall in
it, binned by the very function that bins live scores (ties of an isotonic map land
where live scores of the same value land) — and scaled to the holdout's row count,
so that :func:`services.controller.divergence.psi` smooths it as the sample it is.

A part that is missing (an old artifact without ``reference.json``, a record
without ``decline_rate``) stays empty, with the reason in ``missing``: the decision
then compares that signal with the champion, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.controller.windows import SCORE_BINS, score_bin


def sketch_counts(quantiles: Iterable[float], rows: int) -> tuple[float, ...]:
    """Rows per score bin of a holdout summarised by equally spaced ``quantiles``.

    Args:
        quantiles: the sketch, quantiles at (i + 0.5) / len.
        rows: the real rows behind it.

    Raises:
        ValueError: the sketch is empty.

    Examples:
        >>> counts = sketch_counts([0.0001, 0.0003, 0.0003, 0.6], rows=1_000)
        >>> counts[1], counts[2], counts[13], sum(counts)
        (250.0, 500.0, 250.0, 1000.0)
    """
    bins = [0] * SCORE_BINS
    for q in quantiles:
        bins[score_bin(q)] += 1
    total = sum(bins)
    if not total:
        raise ValueError("sketch_counts: an empty sketch")
    return tuple(rows * b / total for b in bins)


@dataclass(frozen=True, slots=True)
class Baseline:
    """A version's validated behaviour on its holdout (read-only).

    Attributes:
        version: the model version.
        score_counts: holdout rows per score bin (() when there is no reference).
        decline_rate: share of holdout rows declined (None when not recorded).
        decline_rows: holdout rows behind ``decline_rate`` (0: unknown, and the rate
            is then taken as known exactly).
        missing: why a part is absent, for the decision's reason ("" when complete).
    """

    version: str
    score_counts: tuple[float, ...] = ()
    decline_rate: float | None = None
    decline_rows: int = 0
    missing: str = ""

    @property
    def score_rows(self) -> float:
        """Holdout rows behind ``score_counts`` (0 without a reference)."""
        return sum(self.score_counts)

    @classmethod
    def of(
        cls,
        version: str,
        metrics: Mapping[str, float],
        *,
        score_sketch: Iterable[float] | None = None,
        score_rows: int = 0,
        missing: str = "",
    ) -> Baseline:
        """The baseline of ``version`` from its record's metrics and its score sketch.

        Args:
            version: the model version.
            metrics: the registry record's ``metrics`` (holdout metrics).
            score_sketch: ``__score__``'s quantile sketch (None: no reference).
            score_rows: the real rows behind the sketch.
            missing: why the reference is absent, when it is.

        Examples:
            >>> b = Baseline.of("v2", {"decline_rate": 0.004, "rows": 2_500.0},
            ...                 score_sketch=[0.001] * 1_000, score_rows=2_500)
            >>> b.decline_rate, b.decline_rows, b.score_rows, b.missing
            (0.004, 2500, 2500.0, '')
            >>> Baseline.of("v0", {}, missing="no reference.json").missing
            'no reference.json; no holdout decline_rate in the record'
        """
        sketch = list(score_sketch) if score_sketch is not None else []
        rows = score_rows if score_rows > 0 else len(sketch)
        counts = sketch_counts(sketch, rows) if sketch else ()
        rate = metrics.get("decline_rate")
        gaps = [missing] if missing else []
        if not sketch and not missing:
            gaps.append("no holdout score sketch")
        if rate is None or not 0.0 <= rate <= 1.0:
            rate = None
            gaps.append("no holdout decline_rate in the record")
        decline_rows = int(metrics.get("rows", 0.0)) or (score_rows if sketch else 0)
        return cls(
            version=version,
            score_counts=counts,
            decline_rate=rate,
            decline_rows=decline_rows if rate is not None else 0,
            missing="; ".join(gaps),
        )
