"""The SQLite index's schema: a ladder of named migrations on ``PRAGMA user_version``.

Step N brings a database at version N-1 to N; every missing step runs in one
transaction. A database at a higher version than this code knows is refused
with a clear error, never written to (``memdex rebuild`` alone moves it aside).
The embedding cache has one fixed schema, at ``user_version`` 0: a cache from a
newer memdex is left alone and not used (``connection.connect_cache``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import apsw

from indexer.errors import NewerIndex, UnusableIndex
from indexer.store.tokenizer import FTS_TOKENIZE

from .errors import DAMAGE_ERRORS
from .ownership import CACHE_APPLICATION_ID, INDEX_APPLICATION_ID

log = logging.getLogger(__name__)

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
    (
        "date each chunk itself (a session transcript's turns); NULL: its file's date",
        """
        ALTER TABLE chunks ADD COLUMN date TEXT;
        """,
    ),
    (
        "files by kind and size: status lists the transcripts over their bound without reading every file",
        """
        CREATE INDEX IF NOT EXISTS files_kind_size ON files(kind, size);
        """,
    ),
    (
        "keep each file's chunk count: status counts chunks by kind from the files alone",
        """
        ALTER TABLE files ADD COLUMN chunk_count INTEGER NOT NULL DEFAULT 0;
        UPDATE files SET chunk_count = (SELECT count(*) FROM chunks c WHERE c.path = files.path);
        CREATE INDEX IF NOT EXISTS files_kind_chunks ON files(kind, chunk_count);
        """,
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
# The embedding cache's format; a later memdex that changes it raises its user_version.
CACHE_SCHEMA_VERSION = 0
# What an index from a newer memdex is renamed to by 'memdex rebuild': <name>.newer-<time>.
NEWER_LABEL = "newer"

CACHE_SCHEMA = f"""
PRAGMA application_id = {CACHE_APPLICATION_ID};
CREATE TABLE IF NOT EXISTS embeddings(
    model TEXT NOT NULL,
    hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, hash)
) WITHOUT ROWID;
"""


def migrate(connection: apsw.Connection, path: Path) -> None:
    """Run every missing step in ONE transaction (readers see the old schema or
    the new one, never a step in between) and stamp memdex's application_id."""
    version = user_version(connection, path)
    if version > SCHEMA_VERSION:
        raise NewerIndex(newer_message(path, version))
    stamped = int(connection.pragma("application_id")) == INDEX_APPLICATION_ID
    if version == SCHEMA_VERSION and stamped:
        return
    with connection:
        for number in range(version + 1, SCHEMA_VERSION + 1):
            name, sql = MIGRATIONS[number - 1]
            log.info("migrating %s to schema %d: %s", path, number, name)
            connection.execute(sql)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute(f"PRAGMA application_id = {INDEX_APPLICATION_ID}")


def user_version(connection: apsw.Connection, path: Path) -> int:
    try:
        return int(connection.pragma("user_version"))
    except DAMAGE_ERRORS as exc:
        raise UnusableIndex(f"{path} is not a usable SQLite database ({exc})") from None


def newer_message(path: Path, version: int) -> str:
    return (
        f"index at {path} has schema {version}, newer than this memdex understands "
        f"({SCHEMA_VERSION}); upgrade memdex, or run 'memdex rebuild' to build a new index from the "
        f"Markdown (the newer one is kept beside it as {path.name}.{NEWER_LABEL}-<time>)"
    )
