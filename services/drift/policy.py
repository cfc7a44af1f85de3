"""When a retrain is asked for: one shift, one request.

Kernel, no I/O. A :class:`Trigger` (confirmed feature drift, performance decay or
staleness, with its evidence) becomes a :class:`RetrainDecision` unless

- a canary of the model is being rolled out (the answer to an earlier request is
  under evaluation: asking again would train the same data twice), or
- a request was sent less than ``cooldown_ms`` ago (the drift that caused it is
  still there until a retrained model is promoted; that takes minutes to hours).

The time of the last request is the policy's only state, and it is *derivable*:
on start-up the monitor reads its own last request back from ``retrain-requests``
(:func:`services.drift.kafka_io.last_request_ms`), so a restart does not send
again at once. A request's id is built from the champion, the reason and the
window where the evidence began, so a request re-sent after a crash between
publishing and recording carries the same id and the trainer skips it (the id is a
digest of those four, ``drift-`` + 24 hex digits, within the 64 characters an id
may have).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

FEATURE_DRIFT, PERFORMANCE_DECAY, STALENESS = "feature_drift", "performance_decay", "staleness"


@dataclass(frozen=True)
class Evidence:
    """One statistic behind a request (``DriftEvidence`` on the wire).

    Attributes:
        feature: the column (``__score__``, ``__error__``, ``model_age_s``...).
        test: ``ks``, ``chi2``, ``adwin``, ``page_hinkley``, ``model_age``, ``data_age``.
        statistic: the test statistic, the detector's new mean, or the age in seconds.
        p_value: the test's p-value; for detectors and ages see docs/DRIFT.md.
        psi: PSI over the reference bins (0 when not a binned comparison).
        window_rows: rows behind the statistic.
    """

    feature: str
    test: str
    statistic: float
    p_value: float
    psi: float
    window_rows: int


@dataclass(frozen=True)
class Trigger:
    """A reason to retrain, with what shows it."""

    reason: str
    evidence: tuple[Evidence, ...]
    window_start_ms: int
    window_end_ms: int


@dataclass(frozen=True)
class RetrainDecision:
    """A request to send (``RetrainRequest`` on the wire)."""

    request_id: str
    model_name: str
    champion_version: str
    reason: str
    evidence: tuple[Evidence, ...]
    window_start_ms: int
    window_end_ms: int
    requested_at_ms: int


class RetrainPolicy:
    """Deduplicates triggers with a cool-down and a hold while a canary runs.

    Args:
        model_name: the model.
        cooldown_ms: least time between two requests.
        last_sent_ms: when the last request was sent (None: never).

    Examples:
        >>> policy = RetrainPolicy("m", cooldown_ms=60_000, last_sent_ms=None)
        >>> t = Trigger(FEATURE_DRIFT, (), 0, 1_000)
        >>> policy.update(t, now_ms=10_000, champion="v1", canary_running=False).request_id
        'drift-727bc8b2ac457e6e59087c7f'
        >>> policy.update(t, now_ms=20_000, champion="v1", canary_running=False) is None
        True
        >>> policy.update(t, now_ms=80_000, champion="v1", canary_running=True) is None
        True
        >>> policy.update(t, now_ms=80_000, champion="v1", canary_running=False) is not None
        True
    """

    def __init__(self, model_name: str, *, cooldown_ms: int, last_sent_ms: int | None) -> None:
        self.model_name = model_name
        self.cooldown_ms = cooldown_ms
        self.last_sent_ms = last_sent_ms
        self.suppressed = 0

    def update(
        self, trigger: Trigger, *, now_ms: int, champion: str, canary_running: bool
    ) -> RetrainDecision | None:
        """The request to send for ``trigger`` now, or None (held or cooling down)."""
        cooling = self.last_sent_ms is not None and now_ms - self.last_sent_ms < self.cooldown_ms
        if canary_running or cooling:
            self.suppressed += 1
            return None
        self.last_sent_ms = now_ms
        key = f"{self.model_name}|{champion}|{trigger.reason}|{trigger.window_start_ms}"
        return RetrainDecision(
            request_id="drift-" + hashlib.sha256(key.encode()).hexdigest()[:24],
            model_name=self.model_name,
            champion_version=champion,
            reason=trigger.reason,
            evidence=trigger.evidence,
            window_start_ms=trigger.window_start_ms,
            window_end_ms=trigger.window_end_ms,
            requested_at_ms=now_ms,
        )
