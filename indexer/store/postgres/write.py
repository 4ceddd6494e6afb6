"""The write path of a file's chunks on PostgreSQL, mixed into ``PgStore``: one
transaction per file that replaces only the chunks that changed, its rows sent
as arrays in one statement; and a sync's bulk load (``bulk.py``), whose files
commit in batches and are sent without waiting for the server (``Batch``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np

from indexer.sources.base import Chunk
from indexer.store.records import FileRecord

from . import connection as pg
from .access import Access
from .bulk import bulk_load, end_transaction
from .text import SEPARATOR, chunk_terms

log = logging.getLogger(__name__)

BATCH_FILES = 100  # a bulk load's files per commit




class PgWrites:
    """Writing files' chunks (``PgStore`` provides ``connection``, ``ns``, ``namespace``,
    ``access``, ``_file_transaction``, ``_write_stat`` and ``_vec_table``)."""

    connection: Any
    _conn: Any
    ns: int
    namespace: str
    access: Access
    _file_transaction: Any
    _write_stat: Any
    _vec_table: Any

    _batch: Batch | None = None

    @contextmanager
    def bulk_load(self, *, files: int) -> Iterator[None]:
        """Around a sync's writes of ``files`` files: a big first index of the namespace
        goes in without the HNSW index, built once at the end (``bulk.py``), and its files
        commit ``BATCH_FILES`` at a time (``Batch``)."""
        conn = self.connection
        (chunks,) = conn.execute("SELECT chunk_count FROM namespaces WHERE id = %s", (self.ns,)).fetchone()
        empty = chunks == 0
        with bulk_load(conn, self._vec_table(), owner=self.access.owner, namespace_empty=empty, files=files) as loading:
            if not loading:
                yield
                return
            self._batch = batch = Batch(conn, self.ns, self.namespace, lambda c, t: self._count(conn, c, t))
            try:
                yield
                batch.commit()
            except BaseException as exc:
                batch.rollback(interrupted=isinstance(exc, (KeyboardInterrupt, SystemExit)))
                raise
            finally:
                self._batch = None

    def replace_file(
        self, record: FileRecord, chunks: Sequence[Chunk], vectors: np.ndarray, *, indexed_at_ns: int,
        keep_before: int | None = None,
    ) -> None:
        """One transaction: lock the file's row (upsert), then replace only the chunks
        whose (lines, hash) changed (all of them when the file's title words changed);
        with ``keep_before``, its chunks that start before that line stay (a transcript that only grew)."""
        front = json.dumps(record.frontmatter, default=str, ensure_ascii=False)
        # In a bulk load the file's rows are made before anything waits for the server: meanwhile
        # it still writes the files before (their statements were sent, not waited for).
        batch = self._batch if self._batch is not None and self._batch.conn is self._conn else None
        rows = Rows(record, chunks, vectors) if batch is not None else None
        with self._file_transaction() as conn:
            if batch is not None and rows is not None and batch.new_file(record.path):
                self._write_new_file(conn, batch, record, front, rows, indexed_at_ns)
                return
            # The vector table's size comes back too (read after the namespace lock: a rebuild may change it).
            old_title, inserted, dims = conn.execute(
                "INSERT INTO files(ns, path, kind, date, hash, frontmatter, title) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (ns, path) DO UPDATE SET updated_at = now() RETURNING title, (xmax = 0), "
                "(SELECT value FROM meta WHERE ns = %s AND key = 'vec_dimensions')",
                (self.ns, record.path, record.kind, record.date, record.hash, front, record.title, self.ns),
            ).fetchone()
            existing = conn.execute(
                "SELECT id, start_line, end_line, hash || coalesce(date, ''), length FROM chunks "
                "WHERE ns = %s AND path = %s AND start_line >= %s",
                (self.ns, record.path, 0 if keep_before is None else keep_before),
            ).fetchall()
            same_title = not inserted and old_title == record.title
            wanted = {(c.start_line, c.end_line, c.hash + (c.date or "")) for c in chunks}
            kept = {(s, e, h) for _, s, e, h, _ in existing if (s, e, h) in wanted} if same_title else set()
            gone = [(cid, length) for cid, s, e, h, length in existing if (s, e, h) not in kept]
            fresh = [i for i, c in enumerate(chunks) if (c.start_line, c.end_line, c.hash + (c.date or "")) not in kept]
            table = f"chunk_vectors_{int(dims)}" if dims and dims.isdigit() else None
            if batch is not None and inserted:
                batch.paths.add(record.path)
            # The rest needs no answer: one round trip (errors still raise here); in a bulk load
            # it joins the batch's pipeline and is not waited for (an error raises at the next answer).
            with nullcontext() if batch is not None else pg.pipeline(conn):
                if not inserted:
                    conn.execute(
                        "UPDATE files SET kind = %s, date = %s, hash = %s, frontmatter = %s, title = %s "
                        "WHERE ns = %s AND path = %s",
                        (record.kind, record.date, record.hash, front, record.title, self.ns, record.path),
                    )
                if gone:
                    conn.execute("DELETE FROM chunks WHERE id = ANY(%s)", ([cid for cid, _ in gone],))
                made = rows.only(fresh) if rows is not None else Rows(record, [chunks[i] for i in fresh], vectors[fresh])
                added_tokens = self._insert_chunks(conn, record, made, table)
                self._write_stat(conn, record.path, record.stamp, indexed_at_ns)
                conn.execute("DELETE FROM skipped WHERE ns = %s AND path = %s", (self.ns, record.path))
                self._count(conn, len(fresh) - len(gone), added_tokens - sum(length for _, length in gone))

    def _write_new_file(
        self, conn: Any, batch: Batch, record: FileRecord, front: str, rows: Rows, indexed_at_ns: int
    ) -> None:
        """``replace_file`` of a file the namespace does not have, in a bulk load whose batch is
        alone in it (``Batch.new_file``): nothing to read first, so nothing waits for the server."""
        conn.execute(
            "INSERT INTO files(ns, path, kind, date, hash, frontmatter, title) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (self.ns, record.path, record.kind, record.date, record.hash, front, record.title),
        )
        batch.paths.add(record.path)
        added_tokens = self._insert_chunks(conn, record, rows, batch.table)
        self._write_stat(conn, record.path, record.stamp, indexed_at_ns)
        conn.execute("DELETE FROM skipped WHERE ns = %s AND path = %s", (self.ns, record.path))
        self._count(conn, len(rows.chunks), added_tokens)

    def _insert_chunks(self, conn: Any, record: FileRecord, rows: Rows, table: str | None) -> int:
        """One statement (one round trip) for a file's new chunks, their postings and their
        vectors: the rows travel as arrays, each chunk takes its id from the sequence in
        ``src`` (a CTE with a volatile function is computed once), and the postings and
        vectors join it by the chunk's ordinal. Plain INSERTs, so row-level security and
        the foreign keys (checked at the statement's end) hold. The postings go in sorted by
        term, so the primary key's inserts walk its pages in order: 10-13 % less of the
        writer's server CPU (bench/bench_pg_two_writers.py)."""
        if not rows.chunks:
            return 0
        chunks = rows.chunks
        vectors = (
            f", v AS (INSERT INTO {table}(chunk_id, ns, embedding) SELECT src.id, %(ns)s, "
            "(%(vectors)s::real[])[(src.ord - 1) * %(dims)s + 1 : src.ord * %(dims)s]::vector FROM src)"
            if table is not None
            else ""
        )
        conn.execute(
            "WITH src AS (SELECT nextval('chunks_id_seq') AS id, u.start_line, u.end_line, u.heading, u.text, u.hash, "
            "u.oversized, u.length, u.date, string_to_array(u.terms, chr(31)) AS terms, "
            "string_to_array(u.freqs, ',')::real[] AS freqs, u.ord FROM unnest(%(starts)s::int[], %(ends)s::int[], "
            "%(headings)s::text[], %(texts)s::text[], %(hashes)s::text[], %(oversized)s::bool[], %(lengths)s::int[], "
            "%(dates)s::text[], %(terms)s::text[], %(freqs)s::text[]) WITH ORDINALITY "
            "AS u(start_line, end_line, heading, text, hash, oversized, length, date, terms, freqs, ord)), "
            "c AS (INSERT INTO chunks(id, ns, path, start_line, end_line, heading, text, hash, oversized, length, date, terms) "
            "SELECT id, %(ns)s, %(path)s, start_line, end_line, heading, text, hash, oversized, length, date, terms FROM src), "
            "p AS (INSERT INTO postings(term, ns, chunk_id, freq, length) SELECT t.term, %(ns)s, src.id, t.freq, src.length "
            f"FROM src, unnest(src.terms, src.freqs) AS t(term, freq) ORDER BY t.term){vectors} SELECT 1",
            {"ns": self.ns, "path": record.path, "starts": [c.start_line for c in chunks],
             "ends": [c.end_line for c in chunks], "headings": [c.heading for c in chunks],
             "texts": [c.text for c in chunks], "hashes": [c.hash for c in chunks],
             "oversized": [bool(c.oversized) for c in chunks], "lengths": rows.lengths,
             "dates": [c.date for c in chunks], "terms": rows.terms, "freqs": rows.freqs,
             "vectors": pg.Float4Array(rows.vectors), "dims": rows.vectors.shape[1]},
        )  # fmt: skip
        return sum(rows.lengths)

    def commit_batch(self) -> None:
        """Commit a bulk load's open batch now (before the model runs: no transaction stays
        open, holding its files' rows, while the next group of texts is embedded)."""
        if self._batch is not None and self._batch.conn is self._conn:
            self._batch.commit(wait=False)

    def _count(self, conn: Any, chunks: int, tokens: int) -> None:
        if self._batch is not None and conn is self._batch.conn and self._batch.open:
            self._batch.chunks += chunks  # written once at its commit: no lock on the row meanwhile
            self._batch.tokens += tokens
            self._batch.wrote = True  # even with no net change: its commit bumps the generation
            return
        conn.execute(
            "UPDATE namespaces SET chunk_count = chunk_count + %s, token_count = token_count + %s, "
            "generation = generation + 1 WHERE id = %s",
            (chunks, tokens, self.ns),
        )


class Rows:
    """What a file's chunks send besides their own fields: each chunk's terms as one string
    (split by the server, and kept on its row: a delete finds its postings by them), their
    column-weighted frequencies (its postings), its length in tokens, and its vector.
    Strings, not arrays: psycopg builds an array parameter element by element in Python
    (5 s of a 10K-chunk index for the postings)."""

    def __init__(self, record: FileRecord, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        self.chunks = list(chunks)
        counted = [chunk_terms(chunk.text, chunk.heading, record.title) for chunk in self.chunks]
        self.terms = [SEPARATOR.join(freq) for freq, _ in counted]
        self.freqs = [",".join(map(repr, freq.values())) for freq, _ in counted]
        self.lengths = [length for _, length in counted]
        self.vectors = np.asarray(vectors, dtype=np.float32).reshape(len(self.chunks), -1) if self.chunks else None

    def only(self, kept: Sequence[int]) -> Rows:
        """These rows for the chunks at positions ``kept`` (the ones to insert)."""
        if len(kept) == len(self.chunks):
            return self
        part = object.__new__(Rows)
        part.chunks = [self.chunks[i] for i in kept]
        part.terms, part.freqs = [self.terms[i] for i in kept], [self.freqs[i] for i in kept]
        part.lengths = [self.lengths[i] for i in kept]
        part.vectors = self.vectors[list(kept)] if part.chunks else None
        return part


class Batch:
    """A bulk load's files, committed ``BATCH_FILES`` at a time: each commit waits for the
    disk (the WAL's fsync), about 9 of 32 s of a 10K-chunk index one file a commit.
    Durable as before: a crash loses at most the open batch, whose files (their stat rows
    included) the next sync writes again. Its chunk and token counts go in at its commit,
    so the namespace's row is locked only then (two writers' batches never wait in a cycle).

    The load is one pipeline: statements are sent and not waited for, so the server writes
    while this side reads, chunks and embeds the next files. A batch holds the namespace's
    lock alone (other writers of the namespace wait for its commit), so a file it has not
    written and that was not there when it began is new: written without asking the server
    anything. A commit is sent and not waited for either (``wait=False``); its answer, or
    the first error of the batch, comes with the next answer read, at the latest at the
    load's end (``commit()``)."""

    def __init__(self, conn: Any, ns: int, namespace: str, count: Any) -> None:
        self.conn, self.ns, self.namespace, self._count = conn, ns, namespace, count
        self.open = False
        self.files = self.chunks = self.tokens = 0
        self.wrote = False  # a file written or removed in the open batch (``commit`` bumps the generation)
        self.paths: set[str] = set()  # files this load wrote
        self.alone = False  # the namespace holds only those (read at the batch's start)
        self.table: str | None = None  # the vector table (read at the batch's start)
        self._pipeline: Any = None

    def begin(self) -> None:
        """Before a file's statements: join the open batch, or start one."""
        if not self.open:
            if self._pipeline is None:
                self._pipeline = pg.pipeline(self.conn)
                self._pipeline.__enter__()
            self.conn.execute("BEGIN")
            self.open = True
            pg.exclusive_namespace_lock(self.conn, self.namespace)
            files, dims = self.conn.execute(
                "SELECT (SELECT count(*) FROM files WHERE ns = %s), "
                "(SELECT value FROM meta WHERE ns = %s AND key = 'vec_dimensions')",
                (self.ns, self.ns),
            ).fetchone()
            self.alone = files == len(self.paths)
            self.table = f"chunk_vectors_{int(dims)}" if dims and dims.isdigit() else None

    def new_file(self, path: str) -> bool:
        """True when the namespace cannot have ``path`` (inside the batch: ``begin`` first)."""
        return self.open and self.alone and path not in self.paths

    def done(self) -> None:
        self.files += 1
        if self.files >= BATCH_FILES:
            self.commit(wait=False)

    def commit(self, *, wait: bool = True) -> None:
        if self.open:
            if self.wrote:  # review: postings changed with no net count change still bump the generation
                self.open = False  # so that ``count`` writes them: the counts' own statement
                self._count(self.chunks, self.tokens)
            self.conn.execute("COMMIT")
        self.open = False
        self.files = self.chunks = self.tokens = 0
        self.wrote = False
        if wait:
            self._leave_pipeline()  # waits for the load: its first error raises here

    def rollback(self, *, interrupted: bool = False) -> None:
        """End whatever the batch left open, from the connection's own state: a failed counts
        statement or COMMIT leaves the transaction open (aborted) with ``open`` already False.
        After an interrupt the connection may be mid-command: it is closed (which rolls back);
        otherwise what was sent is finished first (a commit sent stays committed)."""
        if self._pipeline is not None and (interrupted or self.conn.closed or self.conn.broken):
            self._pipeline = None
            self.conn.close()
        try:
            self._leave_pipeline()
        except Exception as exc:  # noqa: BLE001 - the error that got here matters more (this is often its echo)
            log.debug("ending a failed batch: %s", exc)
        end_transaction(self.conn)
        self.open = False
        self.files = self.chunks = self.tokens = 0
        self.wrote = False

    def _leave_pipeline(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.__exit__(None, None, None)
