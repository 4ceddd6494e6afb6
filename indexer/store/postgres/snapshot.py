"""A search's read snapshot on PostgreSQL, mixed into ``PgStore`` (through ``PgSearch``): one
REPEATABLE READ transaction, so the ids a search finds are the ids it reads back.

BEGIN is not sent when the snapshot opens but with its first statement (``first.py``'s
totals fold it into their own string; any other statement gets it from the ``connection``
property first): PostgreSQL takes the snapshot at the first statement anyway, so the
snapshot costs no round trip of its own. Its COMMIT is sent without waiting for the answer,
which the connection's next use reads (``settle``): a read-only transaction's commit has
nothing to lose, and the server ends it as soon as the COMMIT arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from indexer.errors import StorageError

from . import nowait

log = logging.getLogger(__name__)


@dataclass
class SnapshotMemo:
    """What one read snapshot (``PgStore.read_snapshot``) has read already: a search asks for
    its namespaces' totals, the vector table and its terms' counts more than once, and inside
    one REPEATABLE READ snapshot the answers cannot change."""

    counts: dict[str, int] = field(default_factory=dict)  # term -> chunks holding it
    totals: tuple[int, int, str | None] | None = None  # (chunks, tokens, vector table)
    ids: list[int] | None = None  # search_ids()
    exported: str | None = None  # pg_export_snapshot(): the id a second connection imports (parallel.py)
    whole: bool = False  # the searched namespaces hold every chunk of every namespace (hnsw_sql's first pass)
    version: Any = None  # data_version(): the searched namespaces' ids and generations, the model
    conn: Any = None  # the connection BEGIN was sent on; None: not begun yet (sent with the first statement)
    meta: dict[str, str] | None = None  # this namespace's meta, as the first statement read it
    assumed: bool = False  # totals, version, meta: the last snapshot's, until the first statement is sent (first.py)


BEGIN_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"  # its COMMIT is not waited for: nothing to lose
# Meta keys that change without changing what a search reads (every sync stamps its time).
UNSEARCHED_META = frozenset({"last_sync"})


class MetaChanged(StorageError):
    """The meta a search was served (``search_meta``) is not its snapshot's: the search
    runs again (``PgEngine.reconnected``), with the snapshot's meta."""


class PgSnapshot:
    """Read snapshots of ``PgStore`` (which provides ``connection`` and ``_live_connection``)."""

    connection: Any  # the live connection; inside a read snapshot, begun (``begin_snapshot``)
    ns: int  # this store's namespace id
    _live_connection: Any  # () -> the live connection, idle, nothing sent
    _snapshot: SnapshotMemo | None = None  # inside a read snapshot: what it has read already
    _unsettled: Any = None  # the connection whose COMMIT's answer is still to be read (settle)
    _kept_meta: dict[str, str] | None = None  # meta as the last read snapshot read it (search_meta)
    _served_meta: dict[str, str] | None = None  # what search_meta gave the search now running

    def meta(self) -> dict[str, str]:
        """Outside a read snapshot a plain read (``search_info``, ``get``): it keeps the last
        first statement's row, as only a write must drop it (``PgStore.connection``)."""
        conn = self.connection if self._snapshot is not None else self._live_connection()
        return dict(conn.execute("SELECT key, value FROM meta WHERE ns = %s", (self.ns,)).fetchall())

    def search_meta(self, *, fresh: bool = False) -> dict[str, str]:
        """Meta for a search about to open its read snapshot, without a round trip of its
        own: as the last snapshot read it. The new snapshot's first statement reads meta
        again (``remember_meta``); if what the search was served has changed since, the
        search runs again. Outside a search, ``meta()`` reads it from the server; so does the
        search after one that was served meta and never read its snapshot (it failed first,
        maybe on that meta: a model check). ``fresh``: read it now, and forget what was served
        (the search would stop on what it was served: no model yet, or another model)."""
        kept, unchecked = self._kept_meta, self._served_meta is not None
        self._served_meta = None
        if unchecked or fresh:
            self._kept_meta = kept = None  # only a snapshot's first statement keeps meta again
        if kept is None or self._snapshot is not None or self._live_connection().info.transaction_status != 0:
            return self.meta()
        self._served_meta = kept
        return dict(kept)

    def remember_meta(self, meta: dict[str, str]) -> None:
        """Meta as a read snapshot's first statement read it: kept for the next search,
        and checked against what this search was served (``search_meta``)."""
        served, self._served_meta = self._served_meta, None
        self._kept_meta = meta
        if served is not None and _searched(served) != _searched(meta):
            self._kept_meta = None  # the search again reads meta itself: it cannot fail this way twice
            raise MetaChanged("the index's meta changed since the last search; searching again")

    def in_read_snapshot(self) -> bool:
        return self._snapshot is not None

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """One REPEATABLE READ transaction for what runs inside. BEGIN is not sent here but
        with the first statement (``begin_snapshot``; ``_totals`` folds it into its own string):
        the snapshot is taken at the first statement anyway, so this costs no round trip."""
        if self._snapshot is not None or self._live_connection().info.transaction_status != 0:
            yield  # already inside a snapshot, or a transaction
            return
        memo = self._snapshot = SnapshotMemo()  # what a search asks for more than once, read once
        try:
            yield
            if memo.assumed and memo.conn is None:  # nothing sent: what it assumed is checked all the same
                self.connection  # noqa: B018 - begins the snapshot with its first statement (first.py)
        except BaseException:
            conn = memo.conn
            if conn is not None and conn.info.transaction_status in (2, 3):  # in a transaction, failed or not (not a lost connection)
                conn.execute("ROLLBACK")
            raise
        else:
            if memo.conn is not None:
                self._commit_unanswered(memo.conn)
        finally:
            self._snapshot = None

    def _commit_unanswered(self, conn: Any) -> None:
        """Send the read snapshot's COMMIT without waiting for its answer, which ``settle``
        reads at the connection's next use: the search's rows are read already, and a
        read-only transaction's commit has nothing to lose (if the connection is lost
        meanwhile, the server ends the transaction all the same)."""
        try:
            nowait.send(conn.pgconn, b"COMMIT")
        except Exception as exc:  # noqa: BLE001 - a lost connection: the next use opens another
            log.info("the read snapshot's COMMIT could not be sent (%s); closing the connection", exc)
            conn.close()
            return
        except BaseException:  # Ctrl-C mid-send: libpq may be busy while psycopg does not know
            conn.close()
            raise
        self._unsettled = conn

    def settle(self) -> None:
        """Read the answer to a COMMIT sent without waiting (``_commit_unanswered``), so the
        connection is idle again. A failed one closes the connection (the next use opens
        another): it can only mean the connection was lost."""
        conn, self._unsettled = self._unsettled, None
        if conn is None or conn.closed:
            return
        try:
            error = nowait.failure(nowait.collect(conn.pgconn))
        except BaseException:
            conn.close()  # mid-answer (a lost connection, Ctrl-C): unusable
            raise
        if error is not None or conn.pgconn.transaction_status != nowait.IDLE:
            log.info("a read snapshot's COMMIT failed (%s); closing the connection", error)
            conn.close()

    def begin_snapshot(self, conn: Any) -> None:
        """Inside a read snapshot not yet begun: BEGIN it on ``conn`` (the ``connection``
        property calls this before handing the connection out)."""
        memo = self._snapshot
        if memo is not None and memo.conn is None:
            memo.conn = conn
            conn.execute(BEGIN_SNAPSHOT)


def _searched(meta: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in meta.items() if key not in UNSEARCHED_META}
