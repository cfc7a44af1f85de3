"""The drift monitor's state machine: decisions, labels and clock ticks in; reports,
detector alarms and retrain requests out.

Kernel, no I/O: the stream app (:mod:`services.drift.app`) decodes the topics into
:class:`Scored` and :class:`Labelled`, follows the registry, and acts on each
:class:`Outcome`. Only the champion's own decisions (route ``champion``, its
version) count: a canary's or a fallback's rows are another model's or none.

Per decision: the row goes into the open window (:mod:`windows`), the score into
the score detectors and into the label join (:mod:`performance`). Per closed
window: the report (:mod:`window_report`), then the persistence rule
(:mod:`correction`); a confirmed drift is a ``feature_drift`` trigger naming the
drifted columns of the confirming window. Per label: decay alarms are a
``performance_decay`` trigger. Per tick: quiet windows close, and model age and
data staleness are checked. Every trigger goes through :class:`RetrainPolicy`.
A new champion resets the window, the persistence rule and the detectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.drift.correction import Persistence, window_level
from services.drift.performance import DetectorAlarm, PerformanceMonitor, StreamDetectors
from services.drift.policy import (
    FEATURE_DRIFT,
    PERFORMANCE_DECAY,
    STALENESS,
    Evidence,
    RetrainDecision,
    RetrainPolicy,
    Trigger,
)
from services.drift.window_report import WindowReport, judge_window
from services.drift.windows import ClosedWindow, WindowBuffer
from services.registry.reference import Reference


@dataclass(frozen=True)
class MonitorSettings:
    """The monitor's thresholds (from :class:`services.drift.config.DriftConfig`)."""

    model_name: str
    window_rows: int
    window_s: float
    min_window_rows: int
    false_alarm_rate: float
    persistence_k: int
    persistence_m: int
    cooldown_s: float
    score_adwin_delta: float
    error_adwin_delta: float
    ph_threshold: float
    ph_delta: float
    max_pending_labels: int
    min_labels: int
    min_error_increase: float
    max_model_age_s: float
    max_data_age_s: float
    min_psi: float
    ignore_features: str
    report_only_features: str

    @property
    def window_level(self) -> float:
        """The Benjamini-Hochberg level each window is judged at."""
        return window_level(self.false_alarm_rate, self.persistence_k, self.persistence_m)


@dataclass(frozen=True)
class Champion:
    """The monitored version and what it was trained on.

    Attributes:
        version: the champion's version.
        reference: its reference distributions.
        created_ms: when it was created (None: unknown; no age check).
        train_end_ms: end of its train window (None: unknown; no staleness check).
        canary_running: whether a canary of the model is being rolled out.
    """

    version: str
    reference: Reference
    created_ms: int | None = None
    train_end_ms: int | None = None
    canary_running: bool = False


@dataclass(frozen=True)
class Scored:
    """One decision of the ``scores`` topic, as the monitor needs it."""

    transaction_id: str
    at_ms: int
    event_ms: int
    version: str
    route: str
    score: float
    features: dict[str, float]


@dataclass(frozen=True)
class Labelled:
    """One verdict of the ``labels`` topic."""

    transaction_id: str
    is_fraud: bool


@dataclass(frozen=True)
class Tick:
    """The wall clock, epoch ms (closes quiet windows, checks ages)."""

    now_ms: int


@dataclass
class Outcome:
    """What one update produced, for the app to act on."""

    reports: list[WindowReport] = field(default_factory=list)
    alarms: list[DetectorAlarm] = field(default_factory=list)
    confirmed: bool = False
    request: RetrainDecision | None = None
    held: list[Trigger] = field(default_factory=list)


class DriftMonitor:
    """Watches one model's champion against its reference.

    Args:
        config: the thresholds.
        last_request_ms: when this monitor last asked for a retrain (from the log).
    """

    def __init__(self, config: MonitorSettings, *, last_request_ms: int | None = None) -> None:
        self.config = config
        self.level = config.window_level
        self.champion: Champion | None = None
        self.policy = RetrainPolicy(
            config.model_name,
            cooldown_ms=int(config.cooldown_s * 1000),
            last_sent_ms=last_request_ms,
        )
        self.persistence = Persistence(config.persistence_k, config.persistence_m)
        self.windows_judged = 0
        self.latest_event_ms = 0
        #: The monitor's clock (scored-at and tick times, epoch ms): the cool-down's.
        self.now_ms = 0
        self._buffer: WindowBuffer | None = None
        self._flag_starts: list[int] = []
        self._score_alarms: list[DetectorAlarm] = []
        self._reset_detectors()

    def _reset_detectors(self) -> None:
        c = self.config
        self._scores = StreamDetectors(
            "score", adwin_delta=c.score_adwin_delta, ph_threshold=c.ph_threshold,
            ph_delta=c.ph_delta,
        )  # fmt: skip
        self.performance = PerformanceMonitor(
            StreamDetectors(
                "error", adwin_delta=c.error_adwin_delta, ph_threshold=c.ph_threshold,
                ph_delta=c.ph_delta,
            ),
            max_pending=c.max_pending_labels,
            min_labels=c.min_labels,
            min_error_increase=c.min_error_increase,
        )  # fmt: skip

    def follow(self, champion: Champion | None) -> bool:
        """Monitor ``champion`` from now on; True when the version changed (state reset)."""
        previous = self.champion
        self.champion = champion
        if champion is None or previous is None or previous.version != champion.version:
            ignored = column_names(self.config.ignore_features)
            self._buffer = (
                WindowBuffer(
                    tuple(f for f in champion.reference.features if f not in ignored),
                    max_rows=self.config.window_rows,
                    span_ms=int(self.config.window_s * 1000),
                )
                if champion is not None
                else None
            )
            self.persistence.reset()
            self._flag_starts.clear()
            self._score_alarms.clear()
            self._reset_detectors()
            return True
        return False

    def update(self, item: Scored | Labelled | Tick) -> Outcome:
        """Feed one decision, label or tick."""
        out = Outcome()
        if self.champion is None or self._buffer is None:
            return out
        if isinstance(item, Scored):
            if item.version != self.champion.version or item.route != "champion":
                return out
            self.latest_event_ms = max(self.latest_event_ms, item.event_ms)
            self.now_ms = max(self.now_ms, item.at_ms)
            self.performance.add_decision(item.transaction_id, item.score)
            out.alarms += self._scores.update(item.score)
            self._score_alarms = (self._score_alarms + out.alarms)[-10:]
            closed = self._buffer.update(item.at_ms, item.event_ms, item.features, item.score)
            if closed is not None:
                self._judge(closed, item.at_ms, out)
        elif isinstance(item, Labelled):
            decay = self.performance.add_label(item.transaction_id, item.is_fraud)
            out.alarms += decay
            if decay:
                evidence = tuple(_alarm_evidence(a, self.config) for a in decay)
                # A label carries no clock: the latest decision's time is "now" (event
                # time would mix clocks with the other triggers and break the cool-down).
                self._trigger(Trigger(PERFORMANCE_DECAY, evidence, 0, self.latest_event_ms),
                              self.now_ms, out)  # fmt: skip
        else:
            self.now_ms = max(self.now_ms, item.now_ms)
            closed = self._buffer.flush(item.now_ms)
            if closed is not None:
                self._judge(closed, item.now_ms, out)
            stale = self._staleness(item.now_ms)
            if stale:
                start = self.champion.train_end_ms or 0
                self._trigger(Trigger(STALENESS, stale, start, self.latest_event_ms),
                              item.now_ms, out)  # fmt: skip
        return out

    def _judge(self, window: ClosedWindow, now_ms: int, out: Outcome) -> None:
        assert self.champion is not None
        report = judge_window(
            window, self.champion.reference, model_name=self.config.model_name,
            champion_version=self.champion.version, level=self.level,
            min_rows=self.config.min_window_rows, min_psi=self.config.min_psi,
            report_only=column_names(self.config.report_only_features),
        )  # fmt: skip
        out.reports.append(report)
        if not report.evaluated:
            return
        self.windows_judged += 1
        confirmed = self.persistence.update(report.flagged)
        if report.flagged:
            self._flag_starts.append(report.first_event_ms)
        self._flag_starts = self._flag_starts[-self.persistence.flagged :] if (
            self.persistence.flagged
        ) else []  # fmt: skip
        if not confirmed:
            return
        out.confirmed = True
        evidence = tuple(
            Evidence(r.column, r.test, r.statistic, r.p_value, r.psi, r.rows)
            for r in report.drifted
        ) + tuple(_alarm_evidence(a, self.config) for a in self._score_alarms)
        # Event time: the trainer reads the request's window as the data's own time.
        start = self._flag_starts[0] if self._flag_starts else report.first_event_ms
        self._trigger(Trigger(FEATURE_DRIFT, evidence, start, report.last_event_ms), now_ms, out)

    def _staleness(self, now_ms: int) -> tuple[Evidence, ...]:
        assert self.champion is not None
        c, found = self.config, []
        created, trained = self.champion.created_ms, self.champion.train_end_ms
        if c.max_model_age_s and created is not None:
            age_s = (now_ms - created) / 1000
            if age_s > c.max_model_age_s:
                found.append(Evidence("model_age_s", "model_age", age_s, 0.0, 0.0, 0))
        if c.max_data_age_s and trained is not None and self.latest_event_ms:
            lag_s = (self.latest_event_ms - trained) / 1000
            if lag_s > c.max_data_age_s:
                found.append(Evidence("data_age_s", "data_age", lag_s, 0.0, 0.0, 0))
        return tuple(found)

    def _trigger(self, trigger: Trigger, now_ms: int, out: Outcome) -> None:
        assert self.champion is not None
        decision = self.policy.update(
            trigger, now_ms=now_ms, champion=self.champion.version,
            canary_running=self.champion.canary_running,
        )  # fmt: skip
        if decision is None:
            out.held.append(trigger)
        else:
            out.request = decision


def _alarm_evidence(alarm: DetectorAlarm, config: MonitorSettings) -> Evidence:
    """A detector alarm as evidence: the statistic is the stream's new mean; the
    p-value field carries ADWIN's delta (its bound on a false detection), 0 for PH."""
    column = "__score__" if alarm.stream == "score" else "__error__"
    delta = config.score_adwin_delta if alarm.stream == "score" else config.error_adwin_delta
    bound = delta if alarm.detector == "adwin" else 0.0
    return Evidence(column, alarm.detector, alarm.mean_after, bound, 0.0, alarm.observations)


def column_names(names: str) -> set[str]:
    """The columns of a comma-separated setting (blanks around names dropped).

    Examples:
        >>> sorted(column_names("__score__, tx_is_night,"))
        ['__score__', 'tx_is_night']
    """
    return {n.strip() for n in names.split(",") if n.strip()}
