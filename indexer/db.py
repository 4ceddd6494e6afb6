"""APSW connections: pragmas, the sqlite-vec extension and schema migrations.

Migrations are a ladder on ``PRAGMA user_version``: step N brings a database
at version N-1 to N. A database at a higher version than this code knows is
refused with a clear error, never written to.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import apsw

from .errors import SchemaError, UnusableIndex

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
# What SQLite raises for a damaged file, at open or in the middle of a run.
DAMAGE_ERRORS: tuple[type[Exception], ...] = (apsw.CorruptError, apsw.NotADBError)
# What SQLite raises when another connection holds a lock past the busy timeout.
BUSY_ERRORS: tuple[type[Exception], ...] = (apsw.BusyError, apsw.LockedError)
# sqlite-vec reports a damaged vec0 table as a plain SQL error with these words.
VEC_DAMAGE = re.compile(r"(?i)vector blob|shadow table|sqlite-vec error|chunk position|could not (find|fetch|extract)")
# Quarantined damaged files kept beside the index (the newest ones).
KEEP_QUARANTINED = 3
SIDECARS = ("-wal", "-shm", "-journal")
# The FTS5 tokenizer of chunks_fts; search stems queries with the same one.
# Changing it needs a new migration that rebuilds chunks_fts.
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"

# (name, SQL) in order; never edit a step that has shipped, add a new one.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "create files, chunks, meta and full-text tables",
        """
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE files(
            path TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            date TEXT,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            hash TEXT NOT NULL,
            frontmatter TEXT NOT NULL DEFAULT '{}',
            indexed_at_ns INTEGER NOT NULL
        );
        CREATE TABLE chunks(
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            start_line INTEGER NOT NULL,
            end_line INTEGER NOT NULL,
            heading TEXT NOT NULL,
            text TEXT NOT NULL,
            hash TEXT NOT NULL,
            oversized INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX chunks_by_path ON chunks(path, start_line);
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, heading, title,
            tokenize = '"""
        + FTS_TOKENIZE
        + """'
        );
        CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');
        """,
    ),
    (
        "record each file's ctime and inode, so a rename over it or a restored mtime is noticed",
        """
        ALTER TABLE files ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE files ADD COLUMN inode INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        "remember files skipped with a warning, so an unchanged bad file is not warned about again",
        """
        CREATE TABLE skipped(
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            ctime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            reason TEXT NOT NULL,
            skipped_at_ns INTEGER NOT NULL
        );
        """,
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings(
    model TEXT NOT NULL,
    hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, hash)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Opened:
    connection: apsw.Connection
    vec_loaded: bool
    vec_warning: str | None


def connect(path: Path, *, load_vec: bool) -> Opened:
    """Open (creating if needed) and migrate the index database at ``path``."""
    _make_folder(path.parent)
    connection = _open(path)
    try:
        vec_loaded, warning = _load_sqlite_vec(connection) if load_vec else (False, None)
        migrate(connection, path)
    except DAMAGE_ERRORS as exc:
        connection.close()
        raise UnusableIndex(f"{path} is damaged ({exc})") from None
    except BaseException:
        connection.close()
        raise
    return Opened(connection, vec_loaded, warning)


def connect_reader(path: Path, *, load_vec: bool) -> Opened:
    """Open an existing index for searching; never creates or migrates it."""
    if not path.exists():
        raise SchemaError(f"no index at {path}; run 'memdex index' first")
    connection = _open(path, flags=apsw.SQLITE_OPEN_READWRITE)
    try:
        vec_loaded, warning = _load_sqlite_vec(connection) if load_vec else (False, None)
        version = _user_version(connection, path)
        if version > SCHEMA_VERSION:
            raise UnusableIndex(_newer_message(path, version))
        if version < SCHEMA_VERSION:
            raise SchemaError(f"index at {path} has schema {version}; run 'memdex index' to upgrade it")
    except BaseException:
        connection.close()
        raise
    return Opened(connection, vec_loaded, warning)


def connect_cache(path: Path) -> apsw.Connection:
    """Open (creating if needed) the embedding cache database.

    A damaged cache is moved aside and started afresh: it only saves model
    calls, so losing it costs time, never data.
    """
    _make_folder(path.parent)
    try:
        connection = _open(path)
        connection.execute(CACHE_SCHEMA)
        return connection
    except (UnusableIndex, *DAMAGE_ERRORS) as exc:
        moved = quarantine(path)
        log.warning("embedding cache %s is damaged (%s); moved to %s and started afresh", path, exc, moved.name)
    connection = _open(path)
    connection.execute(CACHE_SCHEMA)
    return connection


def is_damage(exc: BaseException) -> bool:
    """SQLite's corruption errors, sqlite-vec's errors for its damaged tables, and
    text that no longer decodes (memdex only ever stores valid UTF-8)."""
    if isinstance(exc, (*DAMAGE_ERRORS, UnicodeDecodeError)):
        return True
    return isinstance(exc, apsw.SQLError) and VEC_DAMAGE.search(str(exc)) is not None


def quarantine(path: Path, *, keep: int = KEEP_QUARANTINED) -> Path:
    """Move a damaged database (and its WAL) aside as ``<name>.corrupt-<timestamp>``.

    Only the newest ``keep`` quarantined copies of this file are kept.
    """
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    if path.exists():
        os.replace(path, target)
        os.utime(target)  # its mtime now says when it was moved aside: the newest are kept
    wal = Path(f"{path}-wal")
    if wal.exists():
        os.replace(wal, Path(f"{target}-wal"))
    for suffix in ("-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    old = sorted(
        (p for p in path.parent.glob(f"{path.name}.corrupt-*") if not p.name.endswith("-wal")),
        key=lambda p: p.stat().st_mtime_ns,
    )
    for stale in old[:-keep] if keep else old:
        stale.unlink(missing_ok=True)
        Path(f"{stale}-wal").unlink(missing_ok=True)
    return target


def close_for_move(connection: apsw.Connection, path: Path) -> None:
    """Checkpoint and close the only connection to ``path`` so that the file
    alone holds everything and can be renamed (its WAL must not be left behind)."""
    connection.pragma("wal_checkpoint(TRUNCATE)")
    connection.close()
    for suffix in SIDECARS:
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def remove_database(path: Path) -> None:
    """Delete a database file and its WAL, shared-memory and journal files."""
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in SIDECARS)):
        candidate.unlink(missing_ok=True)


def copy_into(destination: apsw.Connection, source: apsw.Connection) -> None:
    """Replace the destination database's whole content with the source's, in
    one transaction (SQLite's backup API): readers of the destination see the
    old content until the copy commits, then the new one."""
    with destination.backup("main", source, "main") as backup:
        backup.step(-1)


def migrate(connection: apsw.Connection, path: Path) -> None:
    version = _user_version(connection, path)
    if version > SCHEMA_VERSION:
        raise UnusableIndex(_newer_message(path, version))
    for number in range(version + 1, SCHEMA_VERSION + 1):
        name, sql = MIGRATIONS[number - 1]
        log.info("migrating %s to schema %d: %s", path, number, name)
        with connection:
            connection.execute(sql)
            connection.execute(f"PRAGMA user_version = {number}")


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SchemaError(f"cannot create the index folder {folder} ({exc.strerror or exc})") from None


def _open(path: Path, flags: int | None = None) -> apsw.Connection:
    try:
        if flags is None:
            connection = apsw.Connection(str(path))
        else:
            connection = apsw.Connection(str(path), flags=flags)
    except apsw.CantOpenError as exc:
        raise SchemaError(f"cannot open {path} ({exc})") from None
    try:
        connection.set_busy_timeout(BUSY_TIMEOUT_MS)
        connection.pragma("journal_mode", "wal")
        connection.pragma("synchronous", "normal")
    except DAMAGE_ERRORS as exc:
        connection.close()
        raise UnusableIndex(f"{path} is not a usable SQLite database ({exc})") from None
    except BaseException:
        connection.close()
        raise
    return connection


def _user_version(connection: apsw.Connection, path: Path) -> int:
    try:
        return int(connection.pragma("user_version"))
    except DAMAGE_ERRORS as exc:
        raise UnusableIndex(f"{path} is not a usable SQLite database ({exc})") from None


def _newer_message(path: Path, version: int) -> str:
    return (
        f"index at {path} has schema {version}, newer than this memdex understands "
        f"({SCHEMA_VERSION}); upgrade memdex or run 'memdex rebuild'"
    )


def _load_sqlite_vec(connection: apsw.Connection) -> tuple[bool, str | None]:
    try:
        import sqlite_vec

        connection.enable_load_extension(True)
        try:
            connection.load_extension(sqlite_vec.loadable_path())
        finally:
            connection.enable_load_extension(False)
    except Exception as exc:  # ImportError, ExtensionLoadingError, missing file...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, f"sqlite-vec could not be loaded ({reason}); using exact NumPy vector search"
    return True, None
