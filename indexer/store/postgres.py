"""The PostgreSQL store: one namespace (memory root) of a shared server.

Keyword search is FTS5's bm25, computed exactly: every chunk's terms are
stemmed here with the same tokenizer as the SQLite index (porter unicode61,
diacritics removed, no stopwords) and kept in ``postings`` (term, chunk,
column-weighted frequency, chunk length); a query reads only its own terms'
postings. Vectors live in a narrow ``chunk_vectors_<dims>`` table with an
HNSW index (pgvector), searched with ``hnsw.ef_search`` at least the number
of candidates and an iterative scan, so a namespace filter still fills them.

A file's update is one transaction: it locks the file's row first (an
upsert), then deletes and inserts only the chunks whose (lines, hash)
changed; a rebuild of the namespace (exclusive advisory lock) waits for it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import apsw
import numpy as np

from .. import pg
from ..chunk import Chunk
from ..db import FTS_TOKENIZE
from ..discover import FileStamp
from ..errors import ConfigError, SchemaError
from ..filters import SearchFilters
from .records import (
    BM25_B, BM25_K1, BM25_WEIGHTS, ChunkRow, FileRecord, FileState, SkippedFile, plausible,
)  # fmt: skip

# tsvector-free limits of our own: a term longer than this is not indexed (it
# is almost always an id or base64 run; FTS5 keeps it, PostgreSQL's btree would not).
MAX_TERM_BYTES = 1000
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
ALL = "*"  # search every namespace on the server


@functools.cache
def _tokenizer() -> apsw.FTS5Tokenizer:
    name, *args = FTS_TOKENIZE.split()
    return apsw.Connection(":memory:").fts5_tokenizer(name, args)


def stems(text: str, *, query: bool = False) -> list[str]:
    """The terms FTS5 would index (or, with ``query``, look up) for ``text``."""
    reason = apsw.FTS5_TOKENIZE_QUERY if query else apsw.FTS5_TOKENIZE_DOCUMENT
    return [token[2] for token in _tokenizer()(text.encode("utf-8"), reason, None)]


def chunk_terms(text: str, heading: str, title: str) -> tuple[dict[str, float], int]:
    """(term -> column-weighted frequency, length in tokens) of a chunk's text, heading and title,
    as FTS5 counts them for bm25 (length: every token of every column)."""
    freq: dict[str, float] = {}
    length = 0
    for text, weight in zip((text, heading, title), BM25_WEIGHTS):
        for term in stems(text):
            length += 1
            if len(term.encode("utf-8")) <= MAX_TERM_BYTES:
                freq[term] = freq.get(term, 0.0) + weight
    return freq, length


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form; 9 significant digits give back the same float32."""
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(vector, dtype=np.float32).tolist()) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.asarray(json.loads(text), dtype=np.float32)


class PgStore:
    """One namespace of a PostgreSQL index; searches cover ``search_namespaces``
    (names; ``"*"`` every namespace; default just this one)."""

    vec_enabled = True
    _snapshot_counts: dict[str, int] | None = None  # term -> chunks holding it, within one read snapshot

    def __init__(
        self, url: str, *, namespace: str, host: str, write: bool, search_namespaces: Sequence[str] = ()
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.host = host
        self.write = write
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
        """The live connection; a closed or broken one is replaced (between transactions)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = pg.connect(self.url)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def lost_connection(self) -> bool:
        """True when the server dropped the connection (the next use opens a new one)."""
        return self._conn is not None and bool(self._conn.broken or self._conn.closed)

    def _namespace_id(self, *, create: bool) -> int:
        conn = self.connection
        if create:
            pg.migrate(conn)
            # Look before inserting: the upsert would wait for any transaction that updated the
            # row (a rebuild's, for its whole length) and could run past the statement timeout.
            if conn.execute("SELECT 1 FROM namespaces WHERE name = %s", (self.namespace,)).fetchone() is None:
                conn.execute("INSERT INTO namespaces(name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (self.namespace,))
        elif pg.schema_version(conn) < pg.SCHEMA_VERSION:
            raise SchemaError(f"no memdex index at {pg.redact(self.url)} (or an older one); run 'memdex index' first")
        row = conn.execute("SELECT id FROM namespaces WHERE name = %s", (self.namespace,)).fetchone()
        if row is None and self._search_names:
            return 0  # a reader searching other namespaces: its own need not exist (ids start at 1)
        if row is None:
            raise SchemaError(
                f"namespace {self.namespace!r} has no index at {pg.redact(self.url)}; run 'memdex index' first"
            )
        return int(row[0])

    def search_ids(self) -> list[int]:
        """Namespace ids a search covers: this one, the named ones, or every one ("*")."""
        if not self._search_names:
            return [self.ns]
        if ALL in self._search_names:
            return [row[0] for row in self.connection.execute("SELECT id FROM namespaces ORDER BY id")]
        rows = self.connection.execute(
            "SELECT id, name FROM namespaces WHERE name = ANY(%s) ORDER BY id", (list(self._search_names),)
        ).fetchall()
        missing = sorted(set(self._search_names) - {name for _, name in rows})
        if missing:
            names = [item["name"] for item in self.namespaces()]
            known = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            raise ConfigError(f"no namespace {missing[0]!r} on the server (it has: {known or 'none'})")
        return [row[0] for row in rows]

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
    def read_snapshot(self) -> Iterator[None]:
        conn = self.connection
        if conn.info.transaction_status != 0:  # already inside a transaction
            yield
            return
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            self._snapshot_counts = {}  # a search asks for its terms' counts more than once
            try:
                yield
            finally:
                self._snapshot_counts = None

    @contextmanager
    def _file_transaction(self) -> Iterator[Any]:
        conn = self.connection
        with conn.transaction():
            pg.shared_namespace_lock(conn, self.namespace)
            yield conn

    # -- meta -------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.connection.execute("SELECT key, value FROM meta WHERE ns = %s", (self.ns,)).fetchall())

    def set_meta(self, **values: str | int | float) -> None:
        with self._file_transaction():
            self.connection.cursor().executemany(
                "INSERT INTO meta(ns, key, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                [(self.ns, key, str(value)) for key, value in values.items()],
            )

    # -- files ------------------------------------------------------------------
    def file_states(self, under: Iterable[str] | None = None) -> dict[str, FileState]:
        where, params = _under(under, "f.path")
        rows = self.connection.execute(
            "SELECT f.path, coalesce(s.size, -1), coalesce(s.mtime_ns, 0), coalesce(s.ctime_ns, 0), "
            "coalesce(s.inode, 0), f.hash, coalesce(s.indexed_at_ns, 0) FROM files f "
            "LEFT JOIN file_stats s ON s.ns = f.ns AND s.path = f.path AND s.host = %s "
            f"WHERE f.ns = %s{where}",
            (self.host, self.ns, *params),
        )
        return {
            path: FileState(FileStamp(size, mtime, ctime, inode), digest, at)
            for path, size, mtime, ctime, inode, digest, at in rows
        }

    def skipped_files(self, under: Iterable[str] | None = None) -> dict[str, SkippedFile]:
        where, params = _under(under, "path")
        rows = self.connection.execute(
            "SELECT path, size, mtime_ns, ctime_ns, inode, reason, skipped_at_ns FROM skipped "
            f"WHERE ns = %s AND host = %s{where}",
            (self.ns, self.host, *params),
        )
        return {
            path: SkippedFile(FileStamp(size, mtime, ctime, inode), reason, at)
            for path, size, mtime, ctime, inode, reason, at in rows
        }

    def record_skipped(self, path: str, stamp: FileStamp, *, reason: str, skipped_at_ns: int) -> None:
        with self._file_transaction() as conn:
            conn.execute(
                "INSERT INTO skipped(ns, host, path, size, mtime_ns, ctime_ns, inode, reason, skipped_at_ns) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ns, host, path) DO UPDATE SET "
                "size = excluded.size, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, "
                "inode = excluded.inode, reason = excluded.reason, skipped_at_ns = excluded.skipped_at_ns",
                (self.ns, self.host, path, stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.inode, reason, skipped_at_ns),
            )

    def forget_skipped(self, path: str) -> None:
        with self._file_transaction() as conn:
            conn.execute("DELETE FROM skipped WHERE ns = %s AND host = %s AND path = %s", (self.ns, self.host, path))

    def touch_file(self, path: str, stamp: FileStamp, *, indexed_at_ns: int) -> None:
        """Record this host's stat for a file whose content (hash) is what the server has."""
        with self._file_transaction() as conn:
            self._write_stat(conn, path, stamp, indexed_at_ns)

    def _write_stat(self, conn: Any, path: str, stamp: FileStamp, indexed_at_ns: int) -> None:
        conn.execute(
            "INSERT INTO file_stats(ns, host, path, size, mtime_ns, ctime_ns, inode, indexed_at_ns) "
            "SELECT %s, %s, %s, %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM files WHERE ns = %s AND path = %s) "
            "ON CONFLICT (ns, host, path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
            "ctime_ns = excluded.ctime_ns, inode = excluded.inode, indexed_at_ns = excluded.indexed_at_ns",
            (self.ns, self.host, path, stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.inode, indexed_at_ns,
             self.ns, path),
        )  # fmt: skip

    def replace_file(
        self, record: FileRecord, chunks: Sequence[Chunk], vectors: np.ndarray, *, indexed_at_ns: int
    ) -> None:
        """One transaction: lock the file's row (upsert), then replace only the chunks
        whose (lines, hash) changed (all of them when the file's title words changed)."""
        front = json.dumps(record.frontmatter, default=str, ensure_ascii=False)
        with self._file_transaction() as conn:
            old_title, inserted = conn.execute(
                "INSERT INTO files(ns, path, kind, date, hash, frontmatter, title) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (ns, path) DO UPDATE SET updated_at = now() RETURNING title, (xmax = 0)",
                (self.ns, record.path, record.kind, record.date, record.hash, front, record.title),
            ).fetchone()
            if not inserted:
                conn.execute(
                    "UPDATE files SET kind = %s, date = %s, hash = %s, frontmatter = %s, title = %s "
                    "WHERE ns = %s AND path = %s",
                    (record.kind, record.date, record.hash, front, record.title, self.ns, record.path),
                )
            existing = conn.execute(
                "SELECT id, start_line, end_line, hash, length FROM chunks WHERE ns = %s AND path = %s",
                (self.ns, record.path),
            ).fetchall()
            same_title = not inserted and old_title == record.title
            wanted = {(c.start_line, c.end_line, c.hash) for c in chunks}
            kept = {(s, e, h) for _, s, e, h, _ in existing if (s, e, h) in wanted} if same_title else set()
            gone = [(cid, length) for cid, s, e, h, length in existing if (s, e, h) not in kept]
            if gone:
                conn.execute("DELETE FROM chunks WHERE id = ANY(%s)", ([cid for cid, _ in gone],))
            fresh = [(c, v) for c, v in zip(chunks, vectors) if (c.start_line, c.end_line, c.hash) not in kept]
            added_tokens = self._insert_chunks(conn, record, fresh)
            self._write_stat(conn, record.path, record.stamp, indexed_at_ns)
            conn.execute("DELETE FROM skipped WHERE ns = %s AND path = %s", (self.ns, record.path))
            self._count(conn, len(fresh) - len(gone), added_tokens - sum(length for _, length in gone))

    def _insert_chunks(self, conn: Any, record: FileRecord, items: Sequence[tuple[Chunk, np.ndarray]]) -> int:
        if not items:
            return 0
        terms = [chunk_terms(chunk.text, chunk.heading, record.title) for chunk, _ in items]
        cursor = conn.cursor()
        cursor.executemany(
            "INSERT INTO chunks(ns, path, start_line, end_line, heading, text, hash, oversized, length) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [
                (self.ns, record.path, c.start_line, c.end_line, c.heading, c.text, c.hash, c.oversized, length)
                for (c, _), (_, length) in zip(items, terms)
            ],
            returning=True,
        )
        ids = []
        while True:
            ids.append(cursor.fetchone()[0])
            if not cursor.nextset():
                break
        with cursor.copy("COPY postings(term, ns, chunk_id, freq, length) FROM STDIN") as copy:
            for cid, (freq, length) in zip(ids, terms):
                for term, f in freq.items():
                    copy.write_row((term, self.ns, cid, f, length))
        table = self._vec_table()
        if table is not None:
            cursor.executemany(
                f"INSERT INTO {table}(chunk_id, ns, embedding) VALUES (%s, %s, %s::vector)",
                [(cid, self.ns, vector_text(v)) for cid, (_, v) in zip(ids, items)],
            )
        return sum(length for _, length in terms)

    def _count(self, conn: Any, chunks: int, tokens: int) -> None:
        conn.execute(
            "UPDATE namespaces SET chunk_count = chunk_count + %s, token_count = token_count + %s, "
            "generation = generation + 1 WHERE id = %s",
            (chunks, tokens, self.ns),
        )

    def invalidate_files(self, paths: Sequence[str]) -> None:
        with self._file_transaction() as conn:
            conn.execute("UPDATE files SET hash = '' WHERE ns = %s AND path = ANY(%s)", (self.ns, list(paths)))
            conn.execute("DELETE FROM file_stats WHERE ns = %s AND path = ANY(%s)", (self.ns, list(paths)))

    def remove_file(self, path: str) -> None:
        with self._file_transaction() as conn:
            if conn.execute("SELECT 1 FROM files WHERE ns = %s AND path = %s FOR UPDATE", (self.ns, path)).fetchone():
                removed = conn.execute(
                    "DELETE FROM chunks WHERE ns = %s AND path = %s RETURNING length", (self.ns, path)
                ).fetchall()
                conn.execute("DELETE FROM files WHERE ns = %s AND path = %s", (self.ns, path))
                self._count(conn, -len(removed), -sum(row[0] for row in removed))
            conn.execute("DELETE FROM skipped WHERE ns = %s AND host = %s AND path = %s", (self.ns, self.host, path))

    def clear(self) -> None:
        with self._file_transaction() as conn:
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

    def vec_dimensions(self) -> int | None:
        value = self.meta().get("vec_dimensions")
        return int(value) if value and value.isdigit() else None

    def rebuild_vectors(self, dimensions: int, vectors_by_hash: dict[str, np.ndarray]) -> None:
        """Make this namespace's vectors those of ``vectors_by_hash``, in a table for ``dimensions``."""
        dims = int(dimensions)
        table = f"chunk_vectors_{dims}"
        conn = self.connection
        with pg.advisory_lock(conn, "schema"):  # two hosts creating the same table at once
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table}(chunk_id bigint PRIMARY KEY REFERENCES chunks(id) "
                f"ON DELETE CASCADE, ns int NOT NULL, embedding vector({dims}) NOT NULL)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} USING hnsw (embedding vector_cosine_ops)")
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

    def _vector_tables(self) -> list[str]:
        rows = self.connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE 'chunk\\_vectors\\_%%'",
            (pg.SCHEMA,),
        )
        return [row[0] for row in rows]

    def vectors_by_chunk(self) -> dict[int, bytes]:
        table = self._vec_table()
        if table is None:
            return {}
        rows = self.connection.execute(
            f"SELECT v.chunk_id, v.embedding::text FROM {table} v WHERE v.ns = %s", (self.ns,)
        )
        return {cid: parse_vector(text).tobytes() for cid, text in rows}

    def shared_cache(self, *, model_id: str, dimensions: int) -> PgEmbeddingCache:
        return PgEmbeddingCache(self, model_id=model_id, dimensions=dimensions)

    def chunk_hashes(self) -> list[tuple[int, str]]:
        return self.connection.execute("SELECT id, hash FROM chunks WHERE ns = %s ORDER BY id", (self.ns,)).fetchall()

    def vector_candidates(
        self, vector: np.ndarray, limit: int, *, only: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the nearest chunks in the searched namespaces: HNSW with
        ``ef_search`` >= ``limit``; with ``only``, an exact scan of those chunks."""
        table = self._vec_table()
        if table is None or (only is not None and not only) or limit < 1:
            return []
        query = vector_text(vector)
        conn = self.connection
        with self.read_snapshot():
            if isinstance(only, FilteredChunks):  # exact: every allowed chunk, scanned on the server
                sql, params = self._filtered(only.filters, vectors=table)
                rows = conn.execute(
                    f"SELECT c.id, 1 - (v.embedding <=> %(q)s::vector) AS cosine {sql} "
                    "ORDER BY cosine DESC, c.id LIMIT %(limit)s",
                    {**params, "q": query, "limit": limit},
                ).fetchall()
            elif only is not None:
                rows = conn.execute(
                    f"SELECT chunk_id, 1 - (embedding <=> %s::vector) AS cosine FROM {table} "
                    "WHERE chunk_id = ANY(%s) ORDER BY cosine DESC, chunk_id LIMIT %s",
                    (query, [int(i) for i in only], limit),
                ).fetchall()
            else:
                conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, min(limit, MAX_EF_SEARCH))}")
                conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
                rows = conn.execute(
                    f"SELECT chunk_id, 1 - (embedding <=> %s::vector) FROM {table} "
                    "WHERE ns = ANY(%s) ORDER BY embedding <=> %s::vector LIMIT %s",
                    (query, self.search_ids(), query, limit),
                ).fetchall()
        return [(int(cid), float(cosine)) for cid, cosine in rows]

    def vectors_by_pairs(self, pairs: Sequence[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray]:
        return self.vectors_of([chunk_id for chunk_id, _ in pairs])

    def vectors_of(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        table = self._vec_table()
        rows = (
            self.connection.execute(
                f"SELECT chunk_id, embedding::text FROM {table} WHERE chunk_id = ANY(%s) ORDER BY chunk_id",
                ([int(i) for i in ids],),
            ).fetchall()
            if table
            else []
        )
        found = np.asarray([cid for cid, _ in rows], dtype=np.int64)
        matrix = np.stack([parse_vector(text) for _, text in rows]) if rows else np.zeros((0, 0), dtype=np.float32)
        return found, matrix

    def data_version(self) -> tuple[int, int]:
        row = self.connection.execute(
            "SELECT coalesce(sum(generation), 0)::bigint FROM namespaces WHERE id = ANY(%s)", (self.search_ids(),)
        ).fetchone()
        return int(row[0]), 0

    # -- keyword search ------------------------------------------------------------
    def stem(self, text: str) -> list[str]:
        return stems(text, query=True)

    def term_document_counts(self, terms: Sequence[str]) -> tuple[int, dict[str, int]]:
        """(chunks in the searched namespaces, chunks containing each stemmed term); inside a
        read snapshot each term is counted once (counting a common term reads all its postings)."""
        ids = self.search_ids()
        (total,) = self.connection.execute(
            "SELECT coalesce(sum(chunk_count), 0)::bigint FROM namespaces WHERE id = ANY(%s)", (ids,)
        ).fetchone()
        wanted = set(terms)
        memo = self._snapshot_counts
        missing = wanted if memo is None else wanted - memo.keys()
        counts: dict[str, int] = {}
        if missing:
            rows = self.connection.execute(
                "SELECT term, count(*) FROM postings WHERE term = ANY(%s) AND ns = ANY(%s) GROUP BY term",
                (list(missing), ids),
            )
            counts = {term: int(count) for term, count in rows}
        if memo is None:
            return int(total), counts
        memo.update((term, counts.get(term, 0)) for term in missing)
        return int(total), {term: memo[term] for term in wanted if memo[term]}

    def keyword_candidates(
        self, terms: Sequence[str], limit: int, *, filters: SearchFilters | None = None
    ) -> list[tuple[int, float]]:
        """FTS5's bm25 (higher is better) of the chunks holding any of the terms."""
        lexemes = [s for term in terms for s in self.stem(term) if len(s.encode("utf-8")) <= MAX_TERM_BYTES]
        if not lexemes:
            return []
        ids = self.search_ids()
        total, tokens = self.connection.execute(
            "SELECT coalesce(sum(chunk_count), 0)::bigint, coalesce(sum(token_count), 0)::bigint FROM namespaces WHERE id = ANY(%s)",
            (ids,),
        ).fetchone()
        if not total:
            return []
        _, counts = self.term_document_counts(lexemes)
        idfs = [max(1e-6, math.log((total - counts.get(t, 0) + 0.5) / (counts.get(t, 0) + 0.5))) for t in lexemes]
        where, params = filter_clause(filters)
        joins = " JOIN chunks c ON c.id = p.chunk_id JOIN files f ON f.ns = c.ns AND f.path = c.path" if where else ""
        rows = self.connection.execute(
            "SELECT p.chunk_id, sum(q.idf * (p.freq * %(k1)s + p.freq) / "
            "(p.freq + %(k1)s * (1 - %(b)s + %(b)s * p.length / %(avgdl)s))) AS score "
            "FROM unnest(%(terms)s::text[], %(idfs)s::float8[]) AS q(term, idf) "
            f"JOIN postings p ON p.term = q.term AND p.ns = ANY(%(ns)s){joins} "
            f"{'WHERE ' + where if where else ''} "
            "GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT %(limit)s",
            {"k1": BM25_K1, "b": BM25_B, "avgdl": tokens / total, "terms": lexemes, "idfs": idfs, "ns": ids,
             "limit": limit, **params},
        ).fetchall()  # fmt: skip
        return [(int(cid), float(score)) for cid, score in rows]

    def filtered_chunk_ids(self, filters: SearchFilters) -> FilteredChunks:
        """The chunks ``filters`` allows, kept as the query: ``vector_candidates`` scans
        them on the server instead of sending every id back and forth."""
        return FilteredChunks(self, filters)

    def _filtered(self, filters: SearchFilters, *, vectors: str | None = None) -> tuple[str, dict[str, Any]]:
        """``FROM ... WHERE ...`` of the allowed chunks (joined with a vector table) and its parameters."""
        where, params = filter_clause(filters)
        join = f" JOIN {vectors} v ON v.chunk_id = c.id" if vectors else ""
        sql = (
            f"FROM chunks c JOIN files f ON f.ns = c.ns AND f.path = c.path{join} "
            f"WHERE c.ns = ANY(%(ns)s){' AND ' + where if where else ''}"
        )
        return sql, {"ns": self.search_ids(), **params}

    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        rows = self.connection.execute(
            "SELECT c.id, c.path, c.start_line, c.end_line, c.heading, c.text, f.kind, f.date, n.name "
            "FROM chunks c JOIN files f ON f.ns = c.ns AND f.path = c.path JOIN namespaces n ON n.id = c.ns "
            "WHERE c.id = ANY(%s)",
            ([int(i) for i in ids],),
        )
        return {row[0]: ChunkRow(*row) for row in rows}

    def stored_lines(self, namespace: str, path: str) -> list[tuple[int, int, str]] | None:
        """(start, end, text) of a file's chunks in another namespace, or None if it has no such file."""
        row = self.connection.execute(
            "SELECT f.ns FROM files f JOIN namespaces n ON n.id = f.ns WHERE n.name = %s AND f.path = %s",
            (namespace, path),
        ).fetchone()
        if row is None:
            return None
        return self.connection.execute(
            "SELECT start_line, end_line, text FROM chunks WHERE ns = %s AND path = %s ORDER BY start_line",
            (row[0], path),
        ).fetchall()

    # -- status and checks -----------------------------------------------------------
    def counts_by_kind(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for kind, files in self.connection.execute("SELECT kind, count(*) FROM files WHERE ns = %s GROUP BY kind", (self.ns,)):
            counts.setdefault(kind, {"files": 0, "chunks": 0})["files"] = files
        rows = self.connection.execute(
            "SELECT f.kind, count(*) FROM chunks c JOIN files f ON f.ns = c.ns AND f.path = c.path "
            "WHERE c.ns = %s GROUP BY f.kind",
            (self.ns,),
        )
        for kind, chunks in rows:
            counts.setdefault(kind, {"files": 0, "chunks": 0})["chunks"] = chunks
        return counts

    def consistency_counts(self) -> dict[str, int]:
        sql = {
            "files": "SELECT count(*) FROM files WHERE ns = %(ns)s",
            "chunks": "SELECT count(*) FROM chunks WHERE ns = %(ns)s",
            "chunks without postings": "SELECT count(*) FROM chunks c WHERE c.ns = %(ns)s AND c.length > 0 "
            "AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.chunk_id = c.id)",
            "chunk count recorded for the namespace is off by": "SELECT abs((SELECT count(*) FROM chunks WHERE "
            "ns = %(ns)s) - (SELECT chunk_count FROM namespaces WHERE id = %(ns)s))",
        }
        table = self._vec_table()
        if table:
            sql["chunks without a vector"] = (
                f"SELECT count(*) FROM chunks c WHERE c.ns = %(ns)s AND NOT EXISTS "
                f"(SELECT 1 FROM {table} v WHERE v.chunk_id = c.id)"
            )
        return {name: self.connection.execute(query, {"ns": self.ns}).fetchone()[0] for name, query in sql.items()}

    def chunks_with_fts(self) -> dict[str, list[tuple[int, int, str, str, tuple[str, str, str]]]]:
        """path -> [(start, end, heading, text, (text, heading, title) its postings were made from)];
        a chunk whose postings are not those of its text and title gets ("", "", "")."""
        conn, ns = self.connection, {"ns": self.ns}
        stored: dict[int, dict[str, float]] = {}
        for cid, term, freq in conn.execute("SELECT chunk_id, term, freq FROM postings WHERE ns = %(ns)s", ns):
            stored.setdefault(cid, {})[term] = freq
        rows = conn.execute(
            "SELECT c.id, c.path, c.start_line, c.end_line, c.heading, c.text, f.title, c.length FROM chunks c "
            "JOIN files f ON f.ns = c.ns AND f.path = c.path WHERE c.ns = %(ns)s ORDER BY c.path, c.start_line",
            ns,
        )
        found: dict[str, list[tuple[int, int, str, str, tuple[str, str, str]]]] = {}
        for cid, path, start, end, heading, text, title, length in rows:
            expected, tokens = chunk_terms(text, heading, title)
            same = tokens == length and expected == stored.get(cid, {})
            found.setdefault(path, []).append((start, end, heading, text, (text, heading, title) if same else ("", "", "")))
        return found

    def chunk_texts(self) -> Iterator[tuple[str, int, str, str, str]]:
        yield from self.connection.execute(
            "SELECT path, start_line, heading, text, hash FROM chunks WHERE ns = %s", (self.ns,)
        ).fetchall()

    def file_descriptions(self) -> dict[str, tuple[str, str | None, dict[str, Any]]]:
        rows = self.connection.execute("SELECT path, kind, date, frontmatter FROM files WHERE ns = %s", (self.ns,))
        return {path: (kind, day, json.loads(front)) for path, kind, day, front in rows}

    def snapshot(self) -> dict[str, Any]:
        """The namespace's content independent of row ids (for comparing with a rebuild)."""
        conn, ns = self.connection, {"ns": self.ns}
        files = sorted(conn.execute("SELECT path, kind, date, hash, frontmatter FROM files WHERE ns = %(ns)s", ns))
        chunks = sorted(conn.execute(
            "SELECT path, start_line, end_line, heading, text, hash FROM chunks WHERE ns = %(ns)s", ns
        ))  # fmt: skip
        postings = conn.execute(
            "SELECT c.path, c.start_line, p.term, p.freq, p.length FROM postings p JOIN chunks c ON c.id = p.chunk_id "
            "WHERE c.ns = %(ns)s",
            ns,
        )
        skipped = sorted(conn.execute("SELECT path, reason FROM skipped WHERE ns = %(ns)s", ns))
        snapshot: dict[str, Any] = {"files": files, "chunks": chunks, "postings": sorted(postings), "skipped": skipped}
        counters = conn.execute("SELECT chunk_count, token_count FROM namespaces WHERE id = %(ns)s", ns).fetchone()
        snapshot["counters"] = tuple(counters)
        table = self._vec_table()
        if table:
            vec = conn.execute(
                f"SELECT c.path, c.start_line, v.embedding::text FROM {table} v JOIN chunks c ON c.id = v.chunk_id "
                "WHERE c.ns = %(ns)s",
                ns,
            )
            snapshot["vec"] = sorted((p, s, parse_vector(e).tobytes()) for p, s, e in vec)
        return snapshot


class FilteredChunks(Sequence[int]):
    """The ids of the chunks a filter allows, read from the server only when iterated."""

    def __init__(self, store: PgStore, filters: SearchFilters) -> None:
        self.store = store
        self.filters = filters
        self._ids: list[int] | None = None
        self._count: int | None = None

    def __len__(self) -> int:
        if self._ids is not None:
            return len(self._ids)
        if self._count is None:
            sql, params = self.store._filtered(self.filters)
            self._count = int(self.store.connection.execute(f"SELECT count(*) {sql}", params).fetchone()[0])
        return self._count

    def __getitem__(self, index: Any) -> Any:
        if self._ids is None:
            sql, params = self.store._filtered(self.filters)
            self._ids = [row[0] for row in self.store.connection.execute(f"SELECT c.id {sql} ORDER BY c.id", params)]
        return self._ids[index]


class PgEmbeddingCache:
    """The server's shared embedding cache: (model id, text hash) -> float32 vector.

    Writes go through a connection of its own and commit at once, in hash order: a
    rebuild's long transaction must not hold cache rows that other hosts (of any
    namespace) write too, which would make them wait for it or deadlock with it; and
    what a failed rebuild embedded stays cached."""

    def __init__(self, store: PgStore, *, model_id: str, dimensions: int) -> None:
        self.store = store
        self.model_id = model_id
        self.dimensions = dimensions
        self._conn: Any = None

    def get_many(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        rows = self.store.connection.execute(
            "SELECT hash, vector FROM embeddings WHERE model = %s AND hash = ANY(%s)",
            (self.model_id, sorted(set(hashes))),
        )
        found: dict[str, np.ndarray] = {}
        for digest, blob in rows:
            if len(blob) == 4 * self.dimensions:
                vector = np.frombuffer(bytes(blob), dtype=np.float32)
                if plausible(vector):
                    found[digest] = vector
        return found

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = pg.connect(self.store.url)
        conn = self._conn
        with conn.transaction():
            conn.cursor().executemany(
                "INSERT INTO embeddings(model, hash, vector) VALUES (%s, %s, %s) ON CONFLICT (model, hash) "
                "DO UPDATE SET vector = excluded.vector",
                [(self.model_id, digest, np.ascontiguousarray(vectors[digest], dtype=np.float32).tobytes())
                 for digest in sorted(vectors)],
            )  # fmt: skip

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _under(under: Iterable[str] | None, column: str) -> tuple[str, list[Any]]:
    """`` AND (column is or lies below one of the paths)``, or nothing for None."""
    if under is None:
        return "", []
    prefixes = sorted(set(under))
    if not prefixes:
        return " AND false", []
    return (
        f" AND ({column} = ANY(%s) OR EXISTS (SELECT 1 FROM unnest(%s::text[]) AS u(p) WHERE starts_with({column}, u.p)))",
        [prefixes, [p + "/" for p in prefixes]],
    )


def filter_clause(filters: SearchFilters | None) -> tuple[str, dict[str, Any]]:
    """Conditions over ``chunks c JOIN files f`` for a filter (named parameters)."""
    if filters is None or not filters.narrows_candidates:
        return "", {}
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if filters.kinds:
        conditions.append("f.kind = ANY(%(kinds)s)")
        params["kinds"] = list(filters.kinds)
    if filters.path_prefix is not None:
        conditions.append("starts_with(c.path, %(prefix)s)")
        params["prefix"] = filters.path_prefix
    if filters.after is not None:
        conditions.append("f.date >= %(after)s")
        params["after"] = filters.after.isoformat()
    if filters.before is not None:
        conditions.append("f.date <= %(before)s")
        params["before"] = filters.before.isoformat()
    return " AND ".join(conditions), params
