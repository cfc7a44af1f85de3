"""The ``riskstream`` command line: one entry point that drives the whole system.

Each sub-command lives in the module of its concern (:mod:`services.cli.stack_commands`
for up/down/status, :mod:`services.cli.stream_commands` for produce/replay/consume);
this package only parses arguments and dispatches.
"""
