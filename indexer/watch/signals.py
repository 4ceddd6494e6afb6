"""SIGTERM and SIGINT stop a long-running command (``watch``, ``mcp``) cleanly.

The first signal raises ``KeyboardInterrupt`` in the main thread, which unwinds
through ``with connection:`` so the file being written is rolled back; later
signals are ignored while shutting down. It also sets ``Stopping.requested``:
a library may swallow the interrupt (ONNX Runtime's first import turns it into
an ``ImportError``), and the loops that run for a long time look at the flag
too, so the process still stops.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Stopping:
    """Whether a stop signal arrived (a plain attribute: safe to set in a signal handler)."""

    def __init__(self) -> None:
        self.requested = False


@contextmanager
def stop_on_signals() -> Iterator[Stopping]:
    """Make SIGTERM behave like Ctrl-C (KeyboardInterrupt), and remember that it came."""
    stopping = Stopping()

    def interrupt(signum: int, frame: object) -> None:
        stopping.requested = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
