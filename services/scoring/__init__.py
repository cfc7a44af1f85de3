"""The scorer: gRPC fraud scores in milliseconds.

Per request: validate → the card's and terminal's features from Redis (one round
trip) → request-time features → the vector in the model's own feature order → a
micro-batched ONNX Runtime call → calibrated score → decision from the model's
thresholds → response with reasons, model version, route and feature age. Models
arrive on ``model-updates`` and are verified, warmed up and swapped in atomically;
canary routing is sticky by hashed card id; shadow models score off the hot path.
When the model, Redis or the caller's deadline fails, documented rules decide and
the response says so (route = fallback).

Rooms: :mod:`config`, kernels (:mod:`decision`, :mod:`rules`, :mod:`routing`,
:mod:`vectorize`, :mod:`batching`, :mod:`reasons`, :mod:`score_events`; the
rollout fold is the registry's, :mod:`services.registry.rollout`), adapters
(:mod:`onnx_model`, :mod:`model_loader`,
:mod:`model_updates`, :mod:`publisher`, :mod:`auth`, :mod:`telemetry`), the request
path (:mod:`scorer`), the wire (:mod:`server`, :mod:`inference_server`,
:mod:`interceptors`) and the wiring (:mod:`__main__`).
"""
