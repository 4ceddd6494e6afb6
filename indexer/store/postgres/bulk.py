"""Bulk loads of a vector table: a big first index writes its vectors without
the HNSW index and builds the index once at the end, if the table is big enough.

The HNSW index is built only once the table holds more than ``HNSW_MIN_ROWS`` rows.
Below that, searches scan the vectors exactly (perfect recall, as SQLite's do) in
about the index's time: a one-shot search of 200 candidates at 50K rows of 384
dimensions took 34 ms scanning and 34 ms through HNSW for one of two namespaces (19 ms
for all), whose recall@10 was 0.80 (0.86) there (bench/bench_pg_exact_scan.py); building
it cost 32 CPU-s, and 10 at 20K (two writers' 10K chunks: almost half their server's
CPU, bench/bench_pg_two_writers.py). A warm process scans its in-memory matrix either
way (retrieval/warm.py). The sync that takes the table past it builds it (the one
that finds it missing, or a load's end); once built at that size the table keeps it
(``KEPT``, its comment: a table that shrinks does not flap). A new table is made with
its (empty) index (``ensure_vector_table``): one filled by small syncs keeps it; a bulk
load drops it and builds it again only past ``HNSW_MIN_ROWS``.

Inserting a row into an HNSW index searches the graph for its neighbours, page
by page and logged; building the index over rows already there does the same
work in memory, 6-7x faster (10K vectors of 384 dimensions: 15.9-33.6 s of
inserts against 2.5-4.7 s of ``CREATE INDEX``). So a sync that fills an empty
namespace with many files, while the (shared, per-dimensions) vector table is
still small, drops the table's HNSW index, writes, and builds it again at its
end with a plain ``CREATE INDEX``. Searches go on meanwhile (they only read);
other writers of the table wait for the build (13-22 s at 50K rows on two cores). Not
``CONCURRENTLY``: that waits for every older snapshot in the database (a
``pg_dump``, an idle transaction), so a sync could hang at its end for as long;
a plain build waits only for the table's lock, ``BUILD_LOCK_WAIT`` at most, and
otherwise leaves the build to the next sync. A build that fails or is cancelled
leaves nothing behind (one transaction). A sync stopped by Ctrl-C does not build.

Meanwhile searches of every namespace in the table scan its vectors exactly
(the planner has no index to use: slower, never wrong), and other writers
insert without the index's cost too. Who builds: each loader holds a shared
session advisory lock on the table while it loads; at its end it lets go and
builds only if it then gets the lock alone (the last loader out). A loader that
died lost its lock with its session: the next sync that finds the index
missing (or left invalid by a cancelled build) and no loader builds it.

Dropping the index needs the table alone, and a search that arrives while a DROP
waits for it queues behind the DROP: so the DROP tries for ``DROP_WAIT_S`` at most,
lets the searches through, and tries again (``DROP_TRIES``), then writes through
the index. When the table holds other namespaces' rows, only a load of at most
``BULK_MAX_FILES_SHARED`` files goes without the index: their exact scans last a
bounded while.

Only the schema's owner drops and builds (an agent role may not change the
owner's tables): other roles always write through the index (when there is one);
a table their syncs take past ``HNSW_MIN_ROWS`` is scanned exactly until the
owner's next sync builds its index. Never inside a
transaction (a namespace rebuild): a dropped index would stay locked until it
commits.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import connection as pg

log = logging.getLogger(__name__)

# A load this big is worth it (files a sync writes into an empty namespace)...
BULK_MIN_FILES = 50
# ...when the table holds at most this many rows: searches of other namespaces scan them
# exactly meanwhile, and the end builds the index over them too if the table is then past
# HNSW_MIN_ROWS (or was before: KEPT).
BULK_MAX_ROWS = 50_000
# ...and, when the table holds other namespaces' rows, the load writes at most this many
# files (about 10 chunks a file): their searches scan exactly only for a bounded while.
BULK_MAX_FILES_SHARED = 5_000
# Dropping the index needs the table alone, and every search of the table queues behind
# a DROP that waits: each try waits this long at most, then lets the searches through.
DROP_WAIT_S = 0.1
DROP_TRIES = 10  # ... with a pause as long between them; then write through the index
# Below this many rows a table has no HNSW index (searches scan exactly); a bulk load's end,
# or a sync that finds it missing, builds it above.
HNSW_MIN_ROWS = 50_000
KEPT = "memdex: HNSW index kept"  # the vector table's comment once its index was built past HNSW_MIN_ROWS
# The build keeps the graph in memory up to this (pgvector's fast path). It waits at most
# BUILD_LOCK_WAIT for the table (other writers' transactions) and is cut off after an hour.
BUILD_MEMORY = "512MB"
BUILD_LOCK_WAIT = "3s"
BUILD_TIMEOUT = "1h"
_IDLE, _ACTIVE = 0, 1  # psycopg's TransactionStatus: no transaction, a command under way


def index_name(table: str) -> str:
    return f"{table}_hnsw"  # as access.py's ensure_vector_table names it


def index_state(conn: Any, table: str) -> str:
    """``valid``, ``invalid`` (a cancelled concurrent build of an older memdex) or ``missing``."""
    row = conn.execute(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (pg.SCHEMA, index_name(table)),
    ).fetchone()
    return "missing" if row is None else "valid" if row[0] else "invalid"


def end_transaction(conn: Any) -> None:
    """Roll back what ``conn`` has open, whatever the error that got here. A command cut off
    half-way (Ctrl-C while the sync's thread waits on the server) leaves the connection busy:
    it cannot take a ROLLBACK, so it is closed, which ends the session, rolls back and frees
    its session locks; the store opens a new one on its next use."""
    if conn.closed or conn.broken:
        return
    status = conn.info.transaction_status
    if status == _ACTIVE:
        conn.close()
    elif status != _IDLE:
        try:
            conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the error that got here matters more
            conn.close()


@contextmanager
def bulk_load(conn: Any, table: str | None, *, owner: bool, namespace_empty: bool, files: int) -> Iterator[bool]:
    """Around a sync's writes: yields whether they go in as a bulk load (index dropped)."""
    usable = table is not None and owner and conn.info.transaction_status == _IDLE
    loading = bool(
        usable and namespace_empty and files >= BULK_MIN_FILES and _bounded(conn, table, files) and _begin(conn, table)
    )
    stopped = False
    try:
        yield loading
    except (KeyboardInterrupt, SystemExit):
        stopped = True  # Ctrl-C or a stop: no build on the way out; the next sync builds it
        raise
    finally:
        if loading and conn.info.transaction_status != _IDLE:
            end_transaction(conn)  # what is left of a failed batch (a busy connection is closed: lock freed)
        # At every owner's sync's end: the table it took past HNSW_MIN_ROWS, or whose loader died, gets its index.
        if usable and not (conn.closed or conn.broken) and conn.info.transaction_status == _IDLE:
            try:
                if loading:
                    pg.session_unlock(conn, _load_lock(table), shared=True)
                if not stopped:
                    _build_if_missing(conn, table)
            except Exception as exc:  # the sync's own error (if any) matters more; the next sync builds it
                log.warning("the vector index was not built (the next sync builds it): %s", pg.user_error(exc) or exc)


def _load_lock(table: str | None) -> str:
    return f"vector-load:{table}"


def _bounded(conn: Any, table: str, files: int) -> bool:
    """A load of at most ``BULK_MAX_FILES_SHARED`` files, or into a table of no other rows."""
    return files <= BULK_MAX_FILES_SHARED or conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None


def _begin(conn: Any, table: str) -> bool:
    """Join the loaders and drop the index; False (write through it) when the table is big,
    a build is running, or the index cannot be dropped soon."""
    if not pg.try_session_lock(conn, _load_lock(table), shared=True):
        return False  # a build is running: it would only be dropped again
    dropped = False
    try:
        (rows,) = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT %s) t", (BULK_MAX_ROWS + 1,)).fetchone()
        dropped = rows <= BULK_MAX_ROWS and _drop_index(conn, table)
    finally:  # not dropped, or Ctrl-C between the tries: the loaders' lock is not kept
        if not dropped:
            _unlock_quietly(conn, table)
    if dropped:
        log.info("bulk load: %s written without its HNSW index, built at the end past %d rows", table, HNSW_MIN_ROWS)
    return dropped


def _unlock_quietly(conn: Any, table: str) -> None:
    try:
        pg.session_unlock(conn, _load_lock(table), shared=True)
    except Exception:  # noqa: BLE001 - a connection mid-command or lost: its session's end frees the lock
        log.debug("the bulk-load lock of %s was not released here", table, exc_info=True)


def _drop_index(conn: Any, table: str) -> bool:
    """Drop the table's HNSW index, in short tries: a search waits behind a try for
    ``DROP_WAIT_S`` at most. False when every try found the table busy."""
    for attempt in range(DROP_TRIES):
        if attempt:
            time.sleep(DROP_WAIT_S)  # the searches that queued behind the last try run
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{int(DROP_WAIT_S * 1000)}ms'")
                conn.execute(f"DROP INDEX IF EXISTS {pg.SCHEMA}.{index_name(table)}")
        except Exception as exc:
            if not pg.is_lock_timeout(exc):
                raise
            continue
        return True
    log.info("the HNSW index of %s was not dropped: the table stayed busy", table)
    return False


def _cores() -> int:
    return os.cpu_count() or 1


def _limit_build_workers(conn: Any) -> None:
    """A server on this machine builds with one process a core at most: the leader and
    ``cores - 1`` parallel workers, within the server's own ``max_parallel_maintenance_workers``.
    On two cores the leader and two workers cost 25 % more CPU than the leader and one (7.0 →
    8.9 CPU-s for 19,400 vectors) and were no faster; a remote server keeps its setting."""
    if _server_is_local(conn):
        conn.execute(
            "SELECT set_config('max_parallel_maintenance_workers', "
            "least(current_setting('max_parallel_maintenance_workers')::int, %s)::text, true)",
            (_cores() - 1,),
        )


def _server_is_local(conn: Any) -> bool:
    host = conn.info.host or ""
    return host.startswith(("/", "127.")) or host in ("localhost", "::1")  # "/": a Unix socket folder


def wanted(conn: Any, table: str) -> bool:
    """Whether ``table`` should have its HNSW index: it holds more than ``HNSW_MIN_ROWS`` rows,
    or it had one built at that size before (``KEPT``: kept when the table shrinks, no flapping).
    The namespaces' chunk counts (a few rows; an upper bound of the table's rows) spare most
    syncs the count of the table itself."""
    kept, chunks = conn.execute(
        "SELECT obj_description(to_regclass(%s), 'pg_class') = %s, "
        "(SELECT coalesce(sum(chunk_count), 0) FROM namespaces)",
        (f"{pg.SCHEMA}.{table}", KEPT),
    ).fetchone()
    if kept:
        return True
    if chunks <= HNSW_MIN_ROWS:
        return False
    (rows,) = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT %s) t", (HNSW_MIN_ROWS + 1,)).fetchone()
    return bool(rows > HNSW_MIN_ROWS)


def _build_if_missing(conn: Any, table: str | None) -> None:
    """Build the index when it is missing (or invalid), ``wanted``, and no loader is still writing."""
    if table is None:
        return
    state = index_state(conn, table)
    if state == "valid" or (state == "missing" and not wanted(conn, table)):
        return
    if not pg.try_session_lock(conn, _load_lock(table)):
        return  # another load is running: its end builds it
    try:
        if index_state(conn, table) == "invalid" and not _drop_index(conn, table):
            return  # the table is busy: the next sync builds it
        if index_state(conn, table) == "missing" and wanted(conn, table):
            (ext,) = conn.execute(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'vector'"
            ).fetchone()
            log.info("building the HNSW index of %s", table)
            try:
                with conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = '{BUILD_LOCK_WAIT}'")
                    conn.execute(f"SET LOCAL statement_timeout = '{BUILD_TIMEOUT}'")
                    conn.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
                    _limit_build_workers(conn)
                    conn.execute(
                        f'CREATE INDEX IF NOT EXISTS {index_name(table)} ON {pg.SCHEMA}.{table} '
                        f'USING hnsw (embedding "{ext}".vector_cosine_ops)'
                    )
                    conn.execute(f"COMMENT ON TABLE {pg.SCHEMA}.{table} IS '{KEPT}'")
            except Exception as exc:
                if not pg.is_lock_timeout(exc):
                    raise
                log.info("the HNSW index of %s is left to the next sync: its writers are busy", table)
    finally:
        if not (conn.closed or conn.broken):
            pg.session_unlock(conn, _load_lock(table))
