"""A hybrid search's vector half on a second connection, in parallel with its keyword half.

The server runs one statement at a time per connection: on one connection a hybrid search
waits for its keyword queries, then for the HNSW scan (the larger part of its server time).
Instead, the scan runs on a second connection of the process, on a worker thread, while the
search's own connection counts terms and scores bm25. It reads the search's own snapshot: the
search exports it (``pg_export_snapshot()``, in the statement that reads the namespace totals)
and the second connection imports it (``SET TRANSACTION SNAPSHOT``), so both halves see the
same rows, and the ids found are the ids read back. The whole scan is one simple-protocol
string: one round trip. The connection opens on the first hybrid search (a process that
searches holds two connections) and is replaced when the server dropped it.

The second connection only ever speeds a search up: when it cannot be opened (a role's
connection limit, a full server) searches scan on their own connection for a minute, and
when a scan fails (the server dropped the connection) that search scans on its own
connection again, so a search never fails because of it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from . import connection as pg
from .search import PgSearch

log = logging.getLogger(__name__)

SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")  # what pg_export_snapshot() returns
RETRY_CONNECT_SECONDS = 60.0  # after the second connection could not be opened


class VectorSide:
    """The second connection and the one thread that waits on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._unavailable_until = 0.0

    def unavailable(self) -> bool:
        return time.monotonic() < self._unavailable_until

    def start(self, store: PgSearch, vector: np.ndarray, limit: int) -> Future[list[tuple[int, float]]] | None:
        """The HNSW scan of ``store``'s searched namespaces started inside its read snapshot,
        or None (outside a snapshot, or no vectors): then the caller scans on its own."""
        if self.unavailable():
            return None
        job = store.nearest_job(vector, limit)
        if job is None:
            return None
        snapshot, sql = job
        if not SNAPSHOT_ID.fullmatch(snapshot):
            return None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memdex-pg-vectors")
        return self._executor.submit(self._scan, snapshot, sql)

    def _scan(self, snapshot: str, sql: str) -> list[tuple[int, float]]:
        conn = self._connection()
        try:
            cursor = conn.execute(
                f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'; {sql}; COMMIT"
            )
        except BaseException:
            if conn.info.transaction_status in (2, 3):  # in a transaction (failed or not): end it
                conn.execute("ROLLBACK")
            raise
        for _ in range(4):  # past BEGIN, SET TRANSACTION SNAPSHOT and the two SETs of hnsw_sql
            cursor.nextset()
        return [(int(cid), float(cosine)) for cid, cosine in cursor.fetchall()]

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            try:
                self._conn = pg.connect(self.url, application="memdex vectors")
            except Exception:
                self._unavailable_until = time.monotonic() + RETRY_CONNECT_SECONDS
                log.info("a second PostgreSQL connection could not be opened; vector scans share the search's")
                raise
        return self._conn

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._conn is not None:
            self._conn.close()


class StartedScan:
    """A vector source whose scan for one query is already running (``VectorSide.start``):
    ``nearest`` returns it when asked for that query without ``only``; anything else goes
    to ``source``."""

    def __init__(self, source: Any, future: Future[list[tuple[int, float]]], query: np.ndarray, k: int) -> None:
        self.source, self.future, self.query, self.k = source, future, query, k

    def nearest(self, query: np.ndarray, k: int, *, only: Sequence[int] | None = None) -> list[tuple[int, float]]:
        if only is None and k == self.k and query is self.query:
            try:
                return self.future.result()
            except Exception as exc:  # noqa: BLE001 - the scan is only a head start: redo it here
                log.info("the parallel vector scan failed (%s); scanning on the search's connection", exc)
        return self.source.nearest(query, k, only=only)
