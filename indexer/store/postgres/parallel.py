"""A hybrid search's vector half on a second connection, in parallel with its keyword half.

The server runs one statement at a time per connection: on one connection a hybrid search
waits for its keyword queries, then for the HNSW scan (the larger part of its server time).
Instead, the scan is sent on a second connection of the process and left running on the
server while the search's own connection counts terms and scores bm25; its rows are read
when the search asks for them. No thread: the scan is sent and read through libpq's
non-blocking calls (``psycopg.pq``), so nothing contends for the GIL with the search.

The scan reads the search's own snapshot: the search exports it (``pg_export_snapshot()``, in
the statement that begins the snapshot, only when a scan is sent) and the second connection
imports it (``SET TRANSACTION SNAPSHOT``), so both halves see the same rows, and the ids found
are the ids read back. The whole scan is one simple-protocol string: one round trip.

The second connection opens at a process's second hybrid search: a one-shot ``memdex search``
pays no second handshake (and exports no snapshot), a warm process pays it once. It only ever
speeds a search up: when it cannot be opened (a role's connection limit, a full server)
searches scan on their own connection for a minute, and when a scan fails (the server dropped
the connection) that search scans on its own connection again, so a search never fails
because of it. Like the search's own connection, it serves one search at a time (the
MCP server's request threads take turns).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import connection as pg
from . import nowait
from .search import PgSearch

log = logging.getLogger(__name__)

SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")  # what pg_export_snapshot() returns
RETRY_CONNECT_SECONDS = 60.0  # after the second connection could not be opened
OPEN_AT_SEARCH = 2  # the hybrid search that opens the second connection (the first scans on its own)
_SCAN_RESULT = 4  # the scan's rows follow BEGIN, SET TRANSACTION SNAPSHOT and hnsw_sql's two SETs


class ScanFailed(Exception):
    """The second connection's scan did not answer (the search scans on its own connection)."""


class ShortPass(ScanFailed):
    """HNSW's first pass alone found fewer rows than asked: only the iterative scan is exact."""


class VectorSide:
    """The second connection, and the scan it is running."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._pending: PendingScan | None = None
        self._unavailable_until = 0.0
        self._searches = 0  # hybrid searches asked to start a scan

    def unavailable(self) -> bool:
        return time.monotonic() < self._unavailable_until

    def start(self, store: PgSearch, vector: np.ndarray, limit: int) -> PendingScan | None:
        """The HNSW scan of ``store``'s searched namespaces sent inside its read snapshot,
        or None (the process's first hybrid search, outside a snapshot, no vectors, or no
        second connection): then the caller scans on its own."""
        self._searches += 1
        if self._searches < OPEN_AT_SEARCH or self.unavailable() or not store.in_read_snapshot():
            return None
        if self._pending is not None:  # a search that never asked for its scan's rows
            self._pending.discard()
        try:
            conn = self._connection()
        except Exception:  # noqa: BLE001 - logged in _connection; this search scans on its own
            return None
        job = store.nearest_job(vector, limit)
        if job is None:
            return None
        snapshot, sql, first_pass = job
        if not SNAPSHOT_ID.fullmatch(snapshot):
            return None
        text = f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'; {sql}; COMMIT"
        try:
            nowait.send(conn.pgconn, text.encode("ascii"))
        except Exception as exc:  # noqa: BLE001 - a lost connection: this search scans on its own
            log.info("the parallel vector scan could not be sent (%s); scanning on the search's connection", exc)
            self._drop()
            return None
        except BaseException:
            self._drop()
            raise
        self._pending = PendingScan(self, conn, limit if first_pass else 0)
        return self._pending

    def _connection(self) -> Any:
        conn = self._conn
        if conn is None or conn.closed or conn.broken or conn.pgconn.status == nowait.BAD:
            self._drop()
            try:
                self._conn = pg.connect(self.url, application="memdex vectors")
            except Exception:
                self._unavailable_until = time.monotonic() + RETRY_CONNECT_SECONDS
                log.info("a second PostgreSQL connection could not be opened; vector scans share the search's")
                raise
        return self._conn

    def _drop(self) -> None:
        """Close the connection (a scan left unread, or a broken one): the next scan opens another."""
        self._pending = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()


class PendingScan:
    """A scan sent on the second connection; ``rows()`` waits for its answer."""

    def __init__(self, side: VectorSide, conn: Any, fill: int) -> None:
        self.side, self.conn = side, conn
        self.fill = fill  # a first pass alone (hnsw_sql): fewer rows than this need the iterative scan

    def rows(self) -> list[tuple[int, float]]:
        """The scan's (chunk id, cosine) rows; ScanFailed when it failed (its connection is
        then left idle or dropped)."""
        if self.side._pending is not self:
            raise ScanFailed("the scan was discarded")
        self.side._pending = None
        try:
            results = nowait.collect(self.conn.pgconn)
        except BaseException as exc:  # lost connection, Ctrl-C: the connection is mid-command
            self.side._drop()
            if isinstance(exc, Exception):
                raise ScanFailed(str(exc)) from exc
            raise
        statuses = [result.status for result in results]
        expected = len(results) == _SCAN_RESULT + 2 and statuses[_SCAN_RESULT] == nowait.TUPLES_OK
        if not expected or statuses[-1] != nowait.COMMAND_OK:
            self._end_transaction()
            raise ScanFailed(nowait.failure(results) or "no rows")
        found = results[_SCAN_RESULT]
        if found.ntuples < self.fill:  # dead or concurrent rows took places: only the iterative scan is exact
            raise ShortPass(f"the first pass found {found.ntuples} of {self.fill} rows")
        return [(int(found.get_value(i, 0)), float(found.get_value(i, 1))) for i in range(found.ntuples)]

    def discard(self) -> None:
        """Read and drop the answer (the search did not ask for it), so the connection is idle again."""
        try:
            self.rows()
        except ScanFailed:
            pass

    def _end_transaction(self) -> None:
        """After a failed scan the connection may be left in its (aborted) transaction."""
        try:
            if self.conn.pgconn.transaction_status != nowait.IDLE:
                self.conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - then it is dropped: the next scan opens another
            self.side._drop()


class StartedScan:
    """A vector source whose scan for one query is already running (``VectorSide.start``):
    ``nearest`` returns it when asked for that query without ``only``; anything else goes
    to ``source``."""

    def __init__(self, source: Any, scan: PendingScan, query: np.ndarray, k: int) -> None:
        self.source, self.scan, self.query, self.k = source, scan, query, k

    def nearest(self, query: np.ndarray, k: int, *, only: Sequence[int] | None = None) -> list[tuple[int, float]]:
        if only is None and k == self.k and query is self.query:
            try:
                return self.scan.rows()
            except ScanFailed as exc:  # the scan is only a head start: redo it here
                log.log(logging.DEBUG if isinstance(exc, ShortPass) else logging.INFO,
                        "the parallel vector scan failed (%s); scanning on the search's connection", exc)
        return self.source.nearest(query, k, only=only)
