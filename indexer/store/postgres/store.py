"""The PostgreSQL store: one namespace (memory root) of a shared server.

Keyword search is FTS5's bm25, computed exactly: every chunk's terms are
stemmed here with the same tokenizer as the SQLite index (porter unicode61,
diacritics removed, no stopwords) and kept in ``postings`` (term, chunk,
column-weighted frequency, chunk length); a query reads only its own terms'
postings. Vectors live in a narrow ``chunk_vectors_<dims>`` table with an
HNSW index (pgvector), searched with ``hnsw.ef_search`` at least the number
of candidates and an iterative scan, so a namespace filter still fills them.

The search half is ``search.py`` (its read snapshots ``snapshot.py``; a hybrid search's
HNSW scan runs on a second connection: ``parallel.py``), status and checks ``checks.py``, the write path of
chunks ``write.py`` (and a sync's bulk load, ``bulk.py``), what is computed on the
client (terms, vector text, filter SQL) ``text.py``.

A file's update is one transaction: it locks the file's row first (an
upsert), then deletes and inserts only the chunks whose (lines, hash)
changed; a rebuild of the namespace (exclusive advisory lock) waits for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from indexer.errors import ConfigError, SchemaError
from indexer.sources.discover import FileStamp
from indexer.store.records import FileState, SkippedFile

from . import bulk
from . import connection as pg
from .access import Access, access_of, may_write, readable_names
from .cache import PgEmbeddingCache
from .checks import PgChecks
from .search import FilteredChunks, PgSearch
from .text import under_clause, vector_text
from .write import PgWrites

__all__ = ["FilteredChunks", "PgEmbeddingCache", "PgStore"]

class PgStore(PgWrites, PgSearch, PgChecks):
    """One namespace of a PostgreSQL index; searches cover ``search_namespaces``
    (names; ``"*"`` every namespace; default just this one)."""

    vec_enabled = True

    def __init__(
        self, url: str, *, namespace: str, host: str, write: bool, search_namespaces: Sequence[str] = (), root: str = ""
    ) -> None:
        self.url = url
        self.namespace = namespace
        # The writer: this host and memory root. Its stat cache is its own, and a sync
        # removes only files it indexed or confirmed (never another root's or host's).
        self.host = host
        self.root = root
        self.access = Access(role="", owner=True, schema_owner="")
        self._search_names = tuple(search_namespaces)
        self._conn: Any = None
        try:
            self.ns = self._namespace_id(create=write)
        except BaseException:
            self.close()
            raise

    # -- connection ---------------------------------------------------------------
    @property
    def connection(self) -> Any:
        """The live connection; inside a read snapshot, with the snapshot begun (search.py).
        Used outside one (a write, most likely this process's own), the next search reads its
        first statement before assuming anything (first.py): it would find the state changed."""
        conn = self._live_connection()
        if self._snapshot is not None:
            self.begin_snapshot(conn)
        else:
            self._kept_row = None
        return conn

    def _live_connection(self) -> Any:
        """The connection, idle (a read snapshot's COMMIT answered: ``settle``); a closed or
        broken one is replaced (between transactions)."""
        self.settle()
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = pg.connect(self.url)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def lost_connection(self) -> bool:
        """True when the server dropped the connection (the next use opens a new one); what
        was kept from it (term counts) is then read again (a restored server may differ)."""
        lost = self._conn is not None and bool(self._conn.broken or self._conn.closed)
        if lost:
            self._term_counts = self._kept_row = None
        return lost

    def _namespace_id(self, *, create: bool) -> int:
        conn = self.connection
        where = pg.redact(self.url)
        if create:
            pg.migrate(conn)
        else:
            version = pg.schema_version(conn)
            if version > pg.SCHEMA_VERSION:
                raise pg.newer_schema(version)
            if version < pg.SCHEMA_VERSION:
                owner = access_of(conn) if version else None
                if owner is not None and not owner.owner:
                    raise SchemaError(
                        f"memdex's schema at {where} is older than this memdex; its owner "
                        f"({owner.schema_owner}) must run 'memdex --db OWNER_URL grants' once to upgrade it"
                    )
                raise SchemaError(
                    f"no memdex index at {where} (or an older one); run 'memdex index' first (on a shared "
                    "server its owner sets it up once: memdex --db OWNER_URL grants)"
                )
        self.access = access = access_of(conn)
        row = conn.execute("SELECT id FROM namespaces WHERE name = %s", (self.namespace,)).fetchone()
        # Look before inserting: the upsert would wait for any transaction that updated the
        # row (a rebuild's, for its whole length) and could run past the statement timeout.
        if row is None and create and access.owner:
            conn.execute("INSERT INTO namespaces(name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (self.namespace,))
            row = conn.execute("SELECT id FROM namespaces WHERE name = %s", (self.namespace,)).fetchone()
        if row is None and self._search_names and not create:
            return 0  # a reader searching other namespaces: its own need not exist (ids start at 1)
        if row is None and not access.owner:
            raise SchemaError(
                f"namespace {self.namespace!r} does not exist at {where} or role {access.role} was not granted it; "
                + access.owner_hint(self.namespace)
            )
        if row is None:
            raise SchemaError(f"namespace {self.namespace!r} has no index at {where}; run 'memdex index' first")
        ns = int(row[0])
        if create and not access.owner and not may_write(conn, ns):
            raise SchemaError(
                f"role {access.role} may only read namespace {self.namespace!r} (a read-only grant); "
                f"writing it needs: memdex --db OWNER_URL --namespace {self.namespace} grant {access.role}"
            )
        if create and self.root:
            self._adopt_stat_rows(conn, ns)
        return ns

    def _adopt_stat_rows(self, conn: Any, ns: int) -> None:
        """Stat rows from before writers were told apart by root (root ''): this host's
        first writer of the namespace takes them as its own, so it still removes its deleted files."""
        for table in ("file_stats", "skipped"):
            conn.execute(
                f"UPDATE {table} SET root = %s WHERE ns = %s AND host = %s AND root = '' AND NOT EXISTS "
                f"(SELECT 1 FROM {table} WHERE ns = %s AND host = %s AND root = %s)",
                (self.root, ns, self.host, ns, self.host, self.root),
            )


    def unknown_namespace(self, name: str) -> ConfigError:
        """The error for a namespace this role cannot see: it does not exist, or was not granted."""
        names = readable_names(self.connection)
        known = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        if not self.access.owner:
            return ConfigError(
                f"namespace {name!r} does not exist or role {self.access.role} was not granted it "
                f"(granted: {known or 'none'})"
            )
        return ConfigError(f"no namespace {name!r} on the server (it has: {known or 'none'})")

    def namespaces(self) -> list[dict[str, Any]]:
        rows = self.connection.execute("SELECT name, chunk_count FROM namespaces ORDER BY name")
        return [{"name": name, "chunks": chunks} for name, chunks in rows]

    def size_bytes(self) -> int:
        """Disk used by memdex's tables and indexes on the server (all namespaces)."""
        row = self.connection.execute(
            "SELECT coalesce(sum(pg_total_relation_size(format('%%I.%%I', schemaname, tablename))), 0)::bigint "
            "FROM pg_tables WHERE schemaname = %s",
            (pg.SCHEMA,),
        ).fetchone()
        return int(row[0])


    @contextmanager
    def _file_transaction(self) -> Iterator[Any]:
        conn = self.connection
        if self._batch is not None and self._batch.conn is conn:  # a bulk load: files commit together
            self._batch.begin()
            yield conn
            self._batch.done()
            return
        with conn.transaction():
            pg.shared_namespace_lock(conn, self.namespace)
            yield conn

    # -- meta -------------------------------------------------------------------
    # meta(), and search_meta(): snapshot.py
    def set_meta(self, **values: str | int | float | None) -> None:
        kept = [(self.ns, key, str(value)) for key, value in values.items() if value is not None]
        removed = [key for key, value in values.items() if value is None]
        with self._file_transaction():
            if kept:
                self.connection.cursor().executemany(
                    "INSERT INTO meta(ns, key, value) VALUES (%s, %s, %s) "
                    "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                    kept,
                )
            if removed:
                self.connection.execute("DELETE FROM meta WHERE ns = %s AND key = ANY(%s)", (self.ns, removed))

    # -- files ------------------------------------------------------------------
    def file_states(self, under: Iterable[str] | None = None) -> dict[str, FileState]:
        """Every file of the namespace with this writer's stat of it: ``seen`` when this writer
        indexed or confirmed it, ``rewritten_elsewhere`` when the namespace's content is no
        longer what it last wrote or confirmed (another writer replaced it since)."""
        where, params = under_clause(under, "f.path")
        rows = self.connection.execute(
            "SELECT f.path, coalesce(s.size, -1), coalesce(s.mtime_ns, 0), coalesce(s.ctime_ns, 0), "
            "coalesce(s.inode, 0), f.hash, coalesce(s.indexed_at_ns, 0), s.path IS NOT NULL, "
            "s.path IS NOT NULL AND s.hash <> f.hash AND f.hash <> '' FROM files f "
            "LEFT JOIN file_stats s ON s.ns = f.ns AND s.path = f.path AND s.host = %s AND s.root = %s "
            f"WHERE f.ns = %s{where}",
            (self.host, self.root, self.ns, *params),
        )
        return {
            path: FileState(FileStamp(size, mtime, ctime, inode), digest, at, seen=seen, rewritten_elsewhere=foreign)
            for path, size, mtime, ctime, inode, digest, at, seen, foreign in rows
        }

    def files_over(self, kind: str, size: int) -> dict[str, str]:
        """Files of ``kind`` this writer indexed over ``size`` bytes (its stat): path -> hash
        (a range of its stat rows' size index, not every file)."""
        rows = self.connection.execute(
            "SELECT f.path, f.hash FROM file_stats s JOIN files f ON f.ns = s.ns AND f.path = s.path "
            "WHERE s.ns = %s AND s.host = %s AND s.root = %s AND s.size > %s AND f.kind = %s",
            (self.ns, self.host, self.root, size, kind),
        )
        return dict(rows.fetchall())

    def unseen_files(self) -> list[str]:
        """Files of the namespace this writer never indexed or confirmed (other roots' or hosts')."""
        rows = self.connection.execute(
            "SELECT f.path FROM files f WHERE f.ns = %s AND NOT EXISTS (SELECT 1 FROM file_stats s "
            "WHERE s.ns = f.ns AND s.path = f.path AND s.host = %s AND s.root = %s) ORDER BY f.path",
            (self.ns, self.host, self.root),
        )
        return [row[0] for row in rows]

    def skipped_files(self, under: Iterable[str] | None = None) -> dict[str, SkippedFile]:
        where, params = under_clause(under, "path")
        rows = self.connection.execute(
            "SELECT path, size, mtime_ns, ctime_ns, inode, reason, skipped_at_ns FROM skipped "
            f"WHERE ns = %s AND host = %s AND root = %s{where}",
            (self.ns, self.host, self.root, *params),
        )
        return {
            path: SkippedFile(FileStamp(size, mtime, ctime, inode), reason, at)
            for path, size, mtime, ctime, inode, reason, at in rows
        }

    def record_skipped(self, path: str, stamp: FileStamp, *, reason: str, skipped_at_ns: int) -> None:
        with self._file_transaction() as conn:
            conn.execute(
                "INSERT INTO skipped(ns, host, root, path, size, mtime_ns, ctime_ns, inode, reason, skipped_at_ns) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ns, host, root, path) DO UPDATE SET "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, "
                "inode = excluded.inode, reason = excluded.reason, skipped_at_ns = excluded.skipped_at_ns",
                (self.ns, self.host, self.root, path, stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.inode,
                 reason, skipped_at_ns),
            )  # fmt: skip

    def forget_skipped(self, path: str) -> None:
        with self._file_transaction() as conn:
            conn.execute(
                "DELETE FROM skipped WHERE ns = %s AND host = %s AND root = %s AND path = %s",
                (self.ns, self.host, self.root, path),
            )

    def touch_file(self, path: str, stamp: FileStamp, *, indexed_at_ns: int) -> None:
        """Record this writer's stat for a file whose content (hash) is what the server has."""
        with self._file_transaction() as conn:
            self._write_stat(conn, path, stamp, indexed_at_ns)

    def _write_stat(self, conn: Any, path: str, stamp: FileStamp, indexed_at_ns: int) -> None:
        """This writer's stat of the file, with the hash the namespace holds for it now (the
        content this writer wrote or confirmed: another writer's rewrite changes ``files.hash``)."""
        conn.execute(
            "INSERT INTO file_stats(ns, host, root, path, size, mtime_ns, ctime_ns, inode, indexed_at_ns, hash) "
            "SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, f.hash FROM files f WHERE f.ns = %s AND f.path = %s "
            "ON CONFLICT (ns, host, root, path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
            "ctime_ns = excluded.ctime_ns, inode = excluded.inode, indexed_at_ns = excluded.indexed_at_ns, "
            "hash = excluded.hash",
            (self.ns, self.host, self.root, path, stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.inode,
             indexed_at_ns, self.ns, path),
        )  # fmt: skip

    def last_chunk_start(self, path: str) -> int | None:
        """The first line of a file's last chunk, or None when it has none."""
        row = self.connection.execute(
            "SELECT max(start_line) FROM chunks WHERE ns = %s AND path = %s", (self.ns, path)
        ).fetchone()
        return row[0] if row else None

    def invalidate_files(self, paths: Sequence[str]) -> None:
        with self._file_transaction() as conn:
            conn.execute("UPDATE files SET hash = '' WHERE ns = %s AND path = ANY(%s)", (self.ns, list(paths)))
            # Every writer reads them again (its stat no longer matches), and still knows it saw them.
            conn.execute("UPDATE file_stats SET size = -1 WHERE ns = %s AND path = ANY(%s)", (self.ns, list(paths)))

    def remove_file(self, path: str) -> None:
        with self._file_transaction() as conn:
            if conn.execute("SELECT 1 FROM files WHERE ns = %s AND path = %s FOR UPDATE", (self.ns, path)).fetchone():
                removed = conn.execute(
                    "DELETE FROM chunks WHERE ns = %s AND path = %s RETURNING length", (self.ns, path)
                ).fetchall()
                conn.execute("DELETE FROM files WHERE ns = %s AND path = %s", (self.ns, path))
                self._count(conn, -len(removed), -sum(row[0] for row in removed))
            conn.execute(
                "DELETE FROM skipped WHERE ns = %s AND host = %s AND root = %s AND path = %s",
                (self.ns, self.host, self.root, path),
            )

    def clear(self) -> None:
        with self._file_transaction() as conn:
            conn.execute("DELETE FROM postings WHERE ns = %s", (self.ns,))  # a stray one too (no foreign key)
            conn.execute("DELETE FROM files WHERE ns = %s", (self.ns,))
            conn.execute("DELETE FROM skipped WHERE ns = %s", (self.ns,))
            conn.execute(
                "UPDATE namespaces SET chunk_count = 0, token_count = 0, generation = generation + 1 WHERE id = %s",
                (self.ns,),
            )

    # -- vectors ----------------------------------------------------------------
    def _vec_table(self) -> str | None:
        dims = self.vec_dimensions()
        return f"chunk_vectors_{dims}" if dims else None

    def vector_index_state(self) -> str | None:
        """Whether this namespace's vector table has its HNSW index (``valid``; ``missing``
        below ``bulk.HNSW_MIN_ROWS`` rows: searches scan exactly; ``invalid``: a cancelled
        build, dropped and built again by the next owner's sync), None without vectors."""
        table = self._vec_table()
        return None if table is None else bulk.index_state(self._live_connection(), table)  # a read: keeps first.py's row

    def vector_index_notes(self) -> list[str]:
        """A vector table past ``bulk.HNSW_MIN_ROWS`` rows without its HNSW index (agent
        roles' syncs took it there, or the owner's sync that would build it has not run).
        Counted as this role sees it: an agent's check tells only of its own rows."""
        table = self._vec_table()
        if table is None or self.vector_index_state() == "valid" or not bulk.wanted(self._live_connection(), table):
            return []
        return [
            f"the vector table {table} is past {bulk.HNSW_MIN_ROWS:,} rows (or had its HNSW index built there) "
            "but has none: "
            "one-shot searches scan it exactly; a sync by the schema's owner builds it"
        ]

    def vec_dimensions(self) -> int | None:
        value = self.meta().get("vec_dimensions")
        return int(value) if value and value.isdigit() else None

    def rebuild_vectors(self, dimensions: int, vectors_by_hash: dict[str, np.ndarray]) -> None:
        """Make this namespace's vectors those of ``vectors_by_hash``, in a table for ``dimensions``."""
        dims = int(dimensions)
        table = f"chunk_vectors_{dims}"
        conn = self.connection
        with pg.advisory_lock(conn, "schema"):  # two hosts creating the same table at once
            # Made by the schema's owner (a SECURITY DEFINER function): agents create no tables.
            # Schema-qualified and typed: an unqualified call with a smallint argument would pick
            # a same-named function another role created in public (an exact type match wins).
            conn.execute(f"SELECT {pg.SCHEMA}.ensure_vector_table(%s::int)", (dims,))
        with conn.transaction():
            # Alone in the namespace: another host may have set up the same table since the caller
            # looked (the first sync of a new namespace on two hosts); its vectors are complete.
            pg.exclusive_namespace_lock(conn, self.namespace)
            if self.vec_dimensions() == dims:
                return
            conn.execute("SET LOCAL statement_timeout = 0")  # HNSW inserts of a whole namespace take a while
            for other in self._vector_tables():
                conn.execute(f"DELETE FROM {other} WHERE ns = %s", (self.ns,))
            rows = conn.execute("SELECT id, hash FROM chunks WHERE ns = %s ORDER BY id", (self.ns,)).fetchall()
            conn.cursor().executemany(
                f"INSERT INTO {table}(chunk_id, ns, embedding) VALUES (%s, %s, %s::vector)",
                [(cid, self.ns, vector_text(vectors_by_hash[digest])) for cid, digest in rows],
            )
            conn.execute(
                "INSERT INTO meta(ns, key, value) VALUES (%s, 'vec_dimensions', %s) "
                "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                (self.ns, str(dims)),
            )
            # Its vectors moved: searchers of this namespace among others reload them (review).
            conn.execute("UPDATE namespaces SET generation = generation + 1 WHERE id = %s", (self.ns,))

    def _vector_tables(self) -> list[str]:
        rows = self.connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE 'chunk\\_vectors\\_%%'",
            (pg.SCHEMA,),
        )
        return [row[0] for row in rows]

    def shared_cache(self, *, model_id: str, dimensions: int) -> PgEmbeddingCache:
        return PgEmbeddingCache(self, model_id=model_id, dimensions=dimensions)

    def chunk_hashes(self) -> list[tuple[int, str]]:
        return self.connection.execute("SELECT id, hash FROM chunks WHERE ns = %s ORDER BY id", (self.ns,)).fetchall()
