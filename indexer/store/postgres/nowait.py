"""Sending a query without waiting for its answer, and reading the answer later, through
libpq's non-blocking calls (``psycopg.pq``; psycopg keeps its connections non-blocking).
Between the two, nothing else may use the connection: psycopg would find it busy.

Used for a hybrid search's parallel HNSW scan (parallel.py) and a read snapshot's COMMIT
(search.py), so that neither costs the search a wait of its own.
"""

from __future__ import annotations

import selectors
from typing import Any

IDLE = 0  # libpq's PQTRANS_IDLE
BAD = 1  # libpq's CONNECTION_BAD
COMMAND_OK, TUPLES_OK = 1, 2  # libpq's PGRES_COMMAND_OK, PGRES_TUPLES_OK


def send(pgconn: Any, text: bytes) -> None:
    """Send a simple-protocol query string without waiting for its answer (flush until
    every byte is out)."""
    pgconn.send_query(text)
    while pgconn.flush():  # 1: more to send; read meanwhile so the server is never stuck writing
        if _wait(pgconn.socket, selectors.EVENT_READ | selectors.EVENT_WRITE) & selectors.EVENT_READ:
            pgconn.consume_input()


def collect(pgconn: Any) -> list[Any]:
    """Every result of the query sent last, waiting for them."""
    results = []
    while True:
        while pgconn.is_busy():
            _wait(pgconn.socket, selectors.EVENT_READ)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            return results
        results.append(result)


def failure(results: list[Any]) -> str | None:
    """The first error message among ``results``, or None when every one succeeded."""
    for result in results:
        if result.status not in (COMMAND_OK, TUPLES_OK):
            return bytes(result.error_message or b"").decode("utf-8", "replace").strip() or "no answer"
    return None


def _wait(fd: int, events: int) -> int:
    """Block until ``fd`` is ready for ``events`` (poll or epoll: any descriptor number)."""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, events)
        while True:
            for _, ready in selector.select():
                return ready
