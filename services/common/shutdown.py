"""Graceful stop of a long-running consumer process on SIGTERM / SIGINT.

``riskstream down`` stops services with SIGTERM and escalates to SIGKILL after a
timeout; a consumer must finish its batch and commit before it exits, so the
signal only raises a flag its loop polls.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def stop_on_signals() -> Callable[[], bool]:
    """Install SIGTERM and SIGINT handlers; returns "has a stop been asked for?".

    Call from the main thread (Python delivers signals there).
    """
    asked = threading.Event()

    def stop(signum: int, frame: object) -> None:
        asked.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return asked.is_set
