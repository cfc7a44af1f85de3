"""The rollout controller: promotes or rolls back a canary on live metrics, on its own.

It follows ``model-updates`` for the champion, the canary and each version's full
record; reads the scorers' decisions on ``scores`` and the verdicts on ``labels``
from the moment the canary started; keeps both versions' statistics over a sliding
window (requests, model errors, p99 latency, score histogram, decline rate, and
precision of flagged decisions as labels arrive); and every few seconds decides
PROMOTE, ROLLBACK or WAIT (:func:`services.controller.policy.decide`): whether the
canary is broken against its own holdout (the score sketch of its artifact's
``reference.json``, the holdout decline rate of its record), whether it is better
against the champion. A promotion publishes a CHAMPION record for the canary, a
rollback a REJECTED one (the champion stays), each with its reason. A high-impact
version is never promoted without ``approved_by``: it waits, reported as awaiting
approval.

Rooms: :mod:`config`; kernels :mod:`windows`, :mod:`divergence`, :mod:`precision`,
:mod:`comparison`, :mod:`roles`, :mod:`baseline`, :mod:`guards`, :mod:`policy`;
adapters :mod:`kafka_io` (the registry log and the decision stream),
:mod:`artifacts` (a canary's holdout, from its verified artifact) and
:mod:`telemetry`; the loop (:mod:`loop`); the wiring (:mod:`__main__`); fakes for
tests (:mod:`testing`).
"""
