"""PostgreSQL connections: URLs without secrets in messages, timeouts,
advisory locks and running the schema migrations (``migrations.py``; the same
ladder as SQLite's).

Everything memdex keeps on a server lives in the PostgreSQL schema
``memdex`` of the database the URL names; memdex never touches anything
outside it, and refuses a ``memdex`` schema it did not make. One server holds
many memory roots, each in its own *namespace* (``namespaces`` row): files,
chunks, postings, vectors and the embedding cache carry the namespace id,
per namespace (``access.py``: who may read and write which namespace).

Only this module imports psycopg; the store modules go through ``connect``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from indexer.config.database import redact, scrub
from indexer.errors import ConfigError, NewerIndex, SchemaError, StorageError, Unavailable

from .access import access_of, no_schema_access
from .migrations import MIGRATIONS

log = logging.getLogger(__name__)

SCHEMA = "memdex"
# Every statement a search or sync sends is cut off after this long (a guard
# against a runaway query holding locks); bulk steps raise it locally.
STATEMENT_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10
# Advisory lock keys: one for the schema (migrations, new vector tables), one per
# namespace (a rebuild holds it exclusively, each file transaction shared).
_LOCK_SPACE = 0x4D44  # "MD"

# The steps of the schema are in migrations.py.
SCHEMA_VERSION = len(MIGRATIONS)


def bind(conn: Any, sql: str, params: Any) -> str:
    """``sql`` with ``params`` bound client-side (quoted as the server would), for one string
    of several statements."""
    return str(_psycopg().ClientCursor(conn).mogrify(sql, params))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "a postgresql:// index needs psycopg: pip install 'memdex[postgres]' (or 'psycopg[binary]')"
        ) from None
    return psycopg


def user_error(exc: BaseException, url: str | None = None) -> StorageError | None:
    """The one-line error for a PostgreSQL failure, or None if ``exc`` is not one.
    The message never carries the password (libpq leaves it out; the URL is redacted)."""
    psycopg = sys.modules.get("psycopg")  # not loaded: no PostgreSQL error is possible
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return None
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    detail = scrub(detail, url)  # the address redacted, and a password libpq quoted in a parse error
    where = f" at {redact(url)}" if url else ""
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return StorageError(f"PostgreSQL cancelled a statement that ran past the timeout{where} ({detail})")
    if isinstance(exc, psycopg.OperationalError) and "authentication failed" in detail:
        return StorageError(f"the PostgreSQL server{where} refused the login ({detail}); check the user and password")
    if isinstance(exc, psycopg.OperationalError) and _server_unreachable(exc):
        return Unavailable(f"cannot reach the PostgreSQL server{where} ({detail})")
    if isinstance(exc, psycopg.OperationalError):
        return StorageError(f"the PostgreSQL server{where} refused the connection ({detail})")
    return StorageError(f"PostgreSQL error{where}: {detail}")


# SQLSTATEs where a later attempt can work: the database system is starting up, shutting
# down or restarting after a crash (57P01-57P03), a connection exception (class 08).
UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03")
# Without a SQLSTATE (no server answered): libpq's words for a server or network that is
# not there yet. Anything else (a TLS certificate, a bad option) is a setting to fix.
UNREACHABLE_WORDS = (
    "connection refused", "could not connect", "timeout expired", "no route to host",
    "network is unreachable", "could not translate host name", "name resolution",
    "server closed the connection", "connection reset", "terminating connection",
    "no such file or directory", "the database system is",
)


def _server_unreachable(exc: Any) -> bool:
    """No answer from a server that is down, restarting or not reachable yet (boot, network);
    not a login, a database, a TLS certificate or an option that was refused."""
    state = getattr(exc, "sqlstate", None)
    if state is not None:
        return bool(state.startswith(UNREACHABLE_STATES))
    text = str(exc).lower()
    if "ssl" in text or "certificate" in text:
        return False
    return any(words in text for words in UNREACHABLE_WORDS)


def connect(url: str, *, application: str = "memdex") -> Any:
    """An autocommit connection (each ``with conn.transaction()`` is one transaction)
    with the statement timeout set and ``search_path`` on memdex's schema."""
    psycopg = _psycopg()
    try:
        connection = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=application,
            # No server-side prepared statements: after five runs psycopg would prepare
            # them, and a generic plan can pick the HNSW index where a filter needs an
            # exact scan (recall fell from 1.0 to 0.89 in bench/pg_hnsw.py's notes).
            prepare_threshold=None,
            # random_page_cost 1.1 (SSD-like, for memdex's sessions only): with the stock 4 the
            # planner hash-joined all files of every namespace to look up a few chunks (2.3 ms
            # at 11K files, growing with the server) instead of using files' primary key (0.9 ms).
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c search_path={SCHEMA},public -c random_page_cost=1.1",
        )
    except psycopg.Error as exc:
        raise user_error(exc, url) from None  # type: ignore[misc]
    _register_adapters(connection)
    return connection


class Float4Array:
    """A float32 matrix sent as one flat binary ``real[]`` parameter (row after row): no text
    to format on the client nor to parse on the server. SQL takes row ``i`` (from 1) of ``d``
    values as ``param[(i - 1) * d + 1 : i * d]``, and ``::vector`` makes it pgvector's."""

    def __init__(self, rows: Any) -> None:
        import struct

        import numpy as np

        flat = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1)
        # PostgreSQL's binary array: ndim 1, no nulls, element type float4 (oid 700), length,
        # lower bound 1; then each element as its int32 length (4) and its big-endian bytes.
        cells = np.empty((flat.size, 2), dtype=">i4")
        cells[:, 0] = 4
        cells[:, 1] = flat.astype(">f4").view(">i4")
        self.data = struct.pack(">iiiii", 1, 0, 700, flat.size, 1) + cells.tobytes()


@functools.cache
def _float4_array_dumper() -> Any:
    psycopg = _psycopg()

    class Float4ArrayDumper(psycopg.adapt.Dumper):  # type: ignore[misc, name-defined]
        format = psycopg.pq.Format.BINARY
        oid = 1021  # float4[]

        def dump(self, obj: Float4Array) -> bytes:
            return obj.data

    return Float4ArrayDumper


def _register_adapters(connection: Any) -> None:
    connection.adapters.register_dumper(Float4Array, _float4_array_dumper())


def pipeline(connection: Any) -> Any:
    """Statements whose answers nobody reads, sent together (one round trip at the end, where
    an error still raises); one at a time where libpq has no pipeline mode (before 14)."""
    if _psycopg().Pipeline.is_supported():
        return connection.pipeline()
    return nullcontext()


def lock_key(name: str) -> int:
    """A stable 32-bit advisory lock key for a name (a namespace, or the schema)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=4).digest(), "big", signed=True)


@contextmanager
def advisory_lock(connection: Any, name: str) -> Iterator[None]:
    """Hold the session-level advisory lock for ``name`` (waits for it)."""
    key = lock_key(name)
    connection.execute("SELECT pg_advisory_lock(%s, %s)", (_LOCK_SPACE, key))
    try:
        yield
    finally:
        if not connection.closed:
            connection.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_SPACE, key))


def try_session_lock(connection: Any, name: str, *, shared: bool = False) -> bool:
    """Take the session-level advisory lock for ``name`` if it is free now (no wait)."""
    function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    return bool(connection.execute(f"SELECT {function}(%s, %s)", (_LOCK_SPACE, lock_key(name))).fetchone()[0])


def session_unlock(connection: Any, name: str, *, shared: bool = False) -> None:
    function = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
    connection.execute(f"SELECT {function}(%s, %s)", (_LOCK_SPACE, lock_key(name)))


def is_lock_timeout(exc: BaseException) -> bool:
    """``lock_timeout`` ran out while a statement waited for a lock."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.errors.LockNotAvailable)


def shared_namespace_lock(connection: Any, name: str) -> None:
    """Inside a transaction: block a rebuild of the namespace until it commits, or wait
    for a running one, however long it takes (the wait is exempt from the statement timeout)."""
    _wait_for_lock(connection, "pg_advisory_xact_lock_shared", name)


def exclusive_namespace_lock(connection: Any, name: str) -> None:
    """Inside a transaction: wait for the namespace's other writers and keep them out until it commits."""
    _wait_for_lock(connection, "pg_advisory_xact_lock", name)


def _wait_for_lock(connection: Any, function: str, name: str) -> None:
    key = (_LOCK_SPACE, lock_key(name))
    try_function = function.replace("pg_advisory", "pg_try_advisory")
    if connection.execute(f"SELECT {try_function}(%s, %s)", key).fetchone()[0]:
        return  # the usual case: one round trip
    (timeout,) = connection.execute("SELECT current_setting('statement_timeout')").fetchone()
    connection.execute("SELECT set_config('statement_timeout', '0', true)")
    connection.execute(f"SELECT {function}(%s, %s)", key)
    connection.execute("SELECT set_config('statement_timeout', %s, true)", (timeout,))


def migrate(connection: Any) -> None:
    """Create or upgrade memdex's schema, one transaction per step, under an advisory
    lock so that hosts starting together do not race. A newer schema is refused."""
    with advisory_lock(connection, "schema"):
        check_pgvector(connection)
        version = schema_version(connection)
        if 0 < version < SCHEMA_VERSION and not access_of(connection).owner:
            raise SchemaError(
                f"memdex's schema on this server is at version {version} and this memdex needs "
                f"{SCHEMA_VERSION}; only its owner ({access_of(connection).schema_owner}) may upgrade it: "
                "run 'memdex --db OWNER_URL grants' (or 'memdex index') as the owner once"
            )
        if version > SCHEMA_VERSION:
            raise newer_schema(version)
        if version == 0:
            _create_schema(connection)
        for number, (name, sql) in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("PostgreSQL migration %d: %s", number, name)
            with connection.transaction():
                connection.execute(sql)  # type: ignore[arg-type]
                connection.execute("UPDATE schema_version SET version = %s", (number,))


def newer_schema(version: int) -> NewerIndex:
    """A schema from a newer memdex: every command refuses it and changes nothing (other hosts share it)."""
    return NewerIndex(
        f"the PostgreSQL schema '{SCHEMA}' has version {version}, newer than this memdex understands "
        f"({SCHEMA_VERSION}); upgrade memdex (a newer memdex wrote it; nothing was changed)"
    )


# Iterative index scans (hnsw.iterative_scan), which keep a filtered search's list full.
PGVECTOR_MINIMUM = (0, 8, 0)


def check_pgvector(connection: Any) -> None:
    """Refuse a pgvector older than memdex needs (its searches would fail on a setting)."""
    row = connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if row is not None and pgvector_too_old(row[0]):
        raise SchemaError(
            f"pgvector {row[0]} on this server is too old: memdex needs "
            f"{'.'.join(map(str, PGVECTOR_MINIMUM))} or later; install a newer pgvector, then run "
            "'ALTER EXTENSION vector UPDATE' as a superuser"
        )


def pgvector_too_old(version: str) -> bool:
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts))) < PGVECTOR_MINIMUM


def schema_version(connection: Any) -> int:
    """0 for no memdex schema yet; refuses a ``memdex`` schema that is not memdex's."""
    exists = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone()
    if not exists:
        return 0
    table = connection.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'schema_version'", (SCHEMA,)
    ).fetchone()
    if not table:
        raise SchemaError(f"the PostgreSQL schema '{SCHEMA}' exists but was not made by memdex; memdex leaves it alone")
    psycopg = _psycopg()
    try:
        row = connection.execute(f"SELECT version FROM {SCHEMA}.schema_version").fetchone()
    except psycopg.errors.InsufficientPrivilege:
        (role,) = connection.execute("SELECT current_user").fetchone()
        raise no_schema_access(role, "this server") from None
    return int(row[0]) if row else 0


def _create_schema(connection: Any) -> None:
    psycopg = _psycopg()
    with connection.transaction():
        try:
            if connection.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
                with connection.transaction():
                    connection.execute("CREATE EXTENSION vector")
        except psycopg.Error as exc:
            raise StorageError(
                f"the PostgreSQL server has no pgvector extension, or this user may not create it ({exc}); "
                "install pgvector, or run 'CREATE EXTENSION vector' as a superuser"
            ) from None
        try:
            with connection.transaction():
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        except psycopg.errors.InsufficientPrivilege:
            raise SchemaError(
                "there is no memdex schema on this server and this role may not create it; the owner "
                "(a role with CREATE on the database) sets it up once: memdex --db OWNER_URL grants"
            ) from None
        connection.execute("CREATE TABLE schema_version(version int NOT NULL)")
        connection.execute("INSERT INTO schema_version VALUES (0)")
