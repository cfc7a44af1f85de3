"""The drift monitor: notices by itself when the champion's world has moved.

A faust-streaming app over ``scores`` and ``labels``. It compares tumbling windows
of the champion's own decisions (its input rows and scores) with the reference
distributions stored in the champion's artifact: KS against the reference's
quantile sketch for continuous columns, chi-square over the reference bins for
binary and discrete ones, PSI alongside; Benjamini-Hochberg across the columns of
each window and a k-of-m persistence rule, at a level derived from the false-alarm
rate an operator accepts. River's ADWIN and Page-Hinkley watch the score stream
and, as labels arrive, the error stream; model age and data staleness have limits.
On confirmed drift, performance decay or staleness it publishes one
``RetrainRequest`` with the evidence, then holds further requests through a
cool-down (read back from ``retrain-requests`` on restart) and while a canary runs.
Each window's report goes to a JSON file and to Prometheus. See docs/DRIFT.md.

Rooms: :mod:`config`, :mod:`errors`; kernels :mod:`two_sample`, :mod:`correction`,
:mod:`windows`, :mod:`window_report`, :mod:`performance`, :mod:`policy`,
:mod:`monitor` (the reference itself is the registry's:
:mod:`services.registry.reference`, read verified by
:mod:`services.registry.reference_loader`); adapters :mod:`champion` (artifact store),
:mod:`kafka_io` (retrain requests), :mod:`reports` (files), :mod:`telemetry`
(Prometheus); the loop (:mod:`loop`); the stream app (:mod:`app`); the wiring
(:mod:`__main__`); fakes for tests (:mod:`testing`).
"""
