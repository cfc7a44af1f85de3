"""Change detectors on the score stream and, as labels arrive, on the error stream.

Kernel, no I/O (River's detectors are plain Python). Two River detectors watch
each stream: ADWIN (adaptive window: a change in the mean, with a bound ``delta``
on false detections per test) and Page-Hinkley (cumulative deviation above the
running mean; ``mode="up"``, so only increases count). On the **score** stream an
alarm is evidence that the served scores moved (reported, and named in a
request's evidence), never a trigger on its own: the score's own KS test in every
window already covers it with a controlled error rate. On the **error** stream —
the Brier loss ``(score - is_fraud)^2`` of each labelled decision — an ADWIN alarm
whose mean went *up* by at least ``min_error_increase`` (relative), or a
Page-Hinkley alarm, after ``min_labels`` labels, is **performance decay**.

Labels arrive long after the decision (chargebacks), so decisions wait for their
label in a bounded map: the oldest pending decisions are forgotten first
(``max_pending``), and :attr:`PerformanceMonitor.forgotten` counts them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from river import drift


@dataclass(frozen=True)
class DetectorAlarm:
    """One detector fired.

    Attributes:
        stream: ``score`` or ``error``.
        detector: ``adwin`` or ``page_hinkley``.
        mean_before: the stream's mean before the change (ADWIN: the dropped
            sub-window's; Page-Hinkley: the running mean since its last alarm).
        mean_after: its mean after (ADWIN: the kept window's; Page-Hinkley: the
            value that crossed the threshold).
        observations: values the detector had seen when it fired.
    """

    stream: str
    detector: str
    mean_before: float
    mean_after: float
    observations: int

    @property
    def increase(self) -> float:
        """Relative change of the mean (0 when the mean before was 0)."""
        return (self.mean_after - self.mean_before) / self.mean_before if self.mean_before else 0.0


class StreamDetectors:
    """ADWIN and Page-Hinkley over one stream of numbers.

    Args:
        stream: the stream's name (``score`` or ``error``).
        adwin_delta: ADWIN's confidence bound.
        ph_threshold: Page-Hinkley's alarm threshold (in units of the stream).
        ph_delta: Page-Hinkley's tolerated drift per observation.

    Examples:
        >>> import random
        >>> rng = random.Random(3)
        >>> det = StreamDetectors("error", adwin_delta=1e-5, ph_threshold=5.0, ph_delta=0.01)
        >>> quiet = [det.update(rng.random() * 0.1) for _ in range(2000)]
        >>> sum(len(a) for a in quiet)
        0
        >>> alarms = [a for _ in range(2000) for a in det.update(0.3 + rng.random() * 0.1)]
        >>> sorted({a.detector for a in alarms}), alarms[0].mean_after > alarms[0].mean_before
        (['adwin', 'page_hinkley'], True)
    """

    def __init__(
        self, stream: str, *, adwin_delta: float, ph_threshold: float, ph_delta: float
    ) -> None:
        self.stream = stream
        self._adwin = drift.ADWIN(delta=adwin_delta)  # type: ignore[no-untyped-call]
        self._ph = drift.PageHinkley(threshold=ph_threshold, delta=ph_delta, mode="up")
        self._ph_settings = (ph_threshold, ph_delta)
        self._sum = 0.0
        self.observations = 0

    def update(self, value: float) -> list[DetectorAlarm]:
        """Feed one value; the alarms it raised (usually none)."""
        alarms: list[DetectorAlarm] = []
        width, total = self._adwin.width, self._adwin.total
        running = self._sum / self.observations if self.observations else value
        self.observations += 1
        self._sum += value
        self._adwin.update(value)  # type: ignore[no-untyped-call]
        if self._adwin.drift_detected:
            # ADWIN drops its oldest sub-window when the two differ: compare the
            # dropped part's mean (before the change) with the kept part's (after).
            dropped = width + 1 - self._adwin.width
            old = (total + value - self._adwin.total) / dropped if dropped > 0 else running
            alarms.append(
                DetectorAlarm(self.stream, "adwin", old, self._adwin.estimation, self.observations)
            )
        self._ph.update(value)  # type: ignore[no-untyped-call]
        if self._ph.drift_detected:
            alarms.append(
                DetectorAlarm(self.stream, "page_hinkley", running, value, self.observations)
            )
            threshold, delta = self._ph_settings
            self._ph = drift.PageHinkley(threshold=threshold, delta=delta, mode="up")
            self._sum, self.observations = value, 1  # PH restarts after a change
        return alarms


class PerformanceMonitor:
    """Joins decisions with their labels and watches the loss.

    Args:
        errors: detectors on the error stream.
        max_pending: decisions kept while their labels are awaited.
        min_labels: labels needed before an error alarm counts as decay.
        min_error_increase: relative increase of the mean error an ADWIN alarm must
            show to count as decay (ADWIN also fires when the error falls).

    Examples:
        >>> det = StreamDetectors("error", adwin_delta=1e-5, ph_threshold=5.0, ph_delta=0.01)
        >>> perf = PerformanceMonitor(det, max_pending=2, min_labels=1, min_error_increase=0.5)
        >>> perf.add_decision("a", 0.9); perf.add_decision("b", 0.1); perf.add_decision("c", 0.2)
        >>> perf.forgotten, perf.add_label("a", True), perf.add_label("c", False)
        (1, [], [])
        >>> perf.labelled
        1
    """

    def __init__(
        self,
        errors: StreamDetectors,
        *,
        max_pending: int,
        min_labels: int,
        min_error_increase: float,
    ) -> None:
        self._errors = errors
        self._pending: OrderedDict[str, float] = OrderedDict()
        self.max_pending = max_pending
        self.min_labels = min_labels
        self.min_error_increase = min_error_increase
        self.forgotten = 0
        self.labelled = 0

    @property
    def pending(self) -> int:
        """Decisions awaiting their label."""
        return len(self._pending)

    def add_decision(self, transaction_id: str, score: float) -> None:
        """Remember a decision's score until its label comes."""
        self._pending[transaction_id] = score
        self._pending.move_to_end(transaction_id)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            self.forgotten += 1

    def add_label(self, transaction_id: str, is_fraud: bool) -> list[DetectorAlarm]:
        """Join one label; the error alarms that mean decay (none for unknown ids)."""
        score = self._pending.pop(transaction_id, None)
        if score is None:
            return []
        self.labelled += 1
        alarms = self._errors.update((score - float(is_fraud)) ** 2)
        if self.labelled < self.min_labels:
            return []
        return [
            a
            for a in alarms
            if a.detector == "page_hinkley" or a.increase >= self.min_error_increase
        ]
