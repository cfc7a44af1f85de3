"""``riskstream demo``: the closed loop on this machine, shown end to end.

A private stack (own state directory and ports) comes up, a first model is trained
and becomes champion, the simulator streams while a built-in client calls Score,
drift is injected halfway, the drift monitor asks for a retrain, the trainer's
canary is promoted by the controller, and the run ends with a summary and a
self-contained HTML report.

Rooms:

- ``config`` — :class:`~services.demo.config.DemoConfig` (``RISKSTREAM_DEMO_*``).
- kernels — ``timeline`` (the event-time plan), ``summary`` (latency, decisions, AP
  per version and phase, daily drift statistics), ``charts`` (inline SVG),
  ``report`` (summary lines, HTML, JSON).
- adapters — ``private_stack`` (free ports, the stack file), ``kafka_io``
  (``KafkaTopicTail``, ``KafkaRetrainRequester``), ``stream`` (simulator → Kafka with
  the gRPC client scoring each transaction).
- ``__main__`` — the wiring (:class:`~services.demo.__main__.Demo`); the CLI
  command is ``services/cli/demo_commands.py``.
"""
