"""The MCP SDK's and uvicorn's log lines in memdex's style: ``memdex: warning: ...``, one line each.

``MCPServer()`` points the root logger at a multi-line Rich handler; ``log_like_memdex``
(called by ``mcp.build_server`` after it) gives the ``mcp`` and ``uvicorn`` loggers their own.
"""

from __future__ import annotations

import logging
import re
import sys

from indexer.errors import one_line

SDK_MESSAGES = (  # the SDK's refusals, said as memdex says things (and what to do about them)
    (re.compile(r"^Invalid Origin header: (?P<value>.*)$"),
     "refused an HTTP request from Origin {value} (accept it with --allow-origin {value})"),
    (re.compile(r"^Invalid Host header: (?P<value>.*)$"),
     "refused an HTTP request for Host {value} (accept it with --allow-host NAME)"),
)  # fmt: skip


class OneLineHandler(logging.Handler):
    """The SDK's and uvicorn's log records as ``memdex: warning: ...``, one line each, on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            for pattern, text in SDK_MESSAGES:
                found = pattern.match(message)
                if found:
                    message = text.format(value=found["value"])
                    break
            sys.stderr.write(f"memdex: {record.levelname.lower()}: {one_line(message)}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break a request
            self.handleError(record)


def log_like_memdex() -> None:
    """Route the ``mcp`` and ``uvicorn`` loggers through ``OneLineHandler`` (not the root's Rich handler)."""
    for name in ("mcp", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [OneLineHandler()]
        logger.propagate = False
