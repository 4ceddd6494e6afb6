"""The SQLite store: the index tables' SQL (rows, keyword and vector search, checks).

Every write happens inside ``with connection:`` and a file's rows (files,
chunks, FTS, vectors) are replaced in one transaction, so a reader or a crash
never sees a half-updated file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import apsw
import numpy as np

from indexer.retrieval.filters import SearchFilters
from indexer.sources.base import Chunk
from indexer.sources.discover import FileStamp
from indexer.store.records import (
    BM25_WEIGHTS, ChunkRow, FileRecord, FileState, SearchedHashes, SkippedFile, batches as _batches,
    blob as _blob,
)  # fmt: skip
from indexer.store.sqlite.filters import filter_clause
from indexer.store.sqlite.keyword import top_bm25
from indexer.store.sqlite.phrases import PhraseScores
from indexer.store.sqlite.whole import WholeIndexReads
from indexer.store.tokenizer import fts_text, query_pieces, stems

log = logging.getLogger(__name__)

MERGE_FROM_FILES = 50  # a sync that writes at least this many files merges FTS5's segments
MAX_COUNTED_TERMS = 50_000  # terms whose chunk counts are kept (per state of the index)


class Store(WholeIndexReads):
    """The SQLite index database (one memory root). ``vec_enabled`` says whether ``chunks_vec`` is usable."""

    def __init__(self, connection: apsw.Connection, *, vec_enabled: bool) -> None:
        self.connection = connection
        self.vec_enabled = vec_enabled
        self._chunk_count: tuple[tuple[int, int], int] | None = None  # (data_version, chunks)
        self._term_counts: tuple[tuple[int, int] | None, dict[str, int]] = (None, {})  # (data_version, term -> chunks)
        self._phrases = PhraseScores(connection)  # common words' bm25 in NumPy (phrases.py)
        self._files_written = 0  # files written or removed: a bulk load merges segments after many

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Reads inside see one consistent state of the index, whatever writers do meanwhile."""
        self.connection.execute("BEGIN")
        try:
            yield
        finally:
            if not self.connection.get_autocommit():
                self.connection.execute("ROLLBACK")  # nothing was written

    # -- meta -------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.connection.execute("SELECT key, value FROM meta"))

    def search_meta(self, *, fresh: bool = False) -> dict[str, str]:
        return self.meta()  # a file: read at no round trip's cost

    def set_meta(self, **values: str | int | float | None) -> None:
        with self.connection:
            self.connection.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(key, str(value)) for key, value in values.items() if value is not None],
            )
            self.connection.executemany(
                "DELETE FROM meta WHERE key = ?", [(key,) for key, value in values.items() if value is None]
            )

    # -- files ------------------------------------------------------------
    def file_states(self, under: Iterable[str] | None = None) -> dict[str, FileState]:
        """Indexed files: all of them, or those that are or lie below the given paths."""
        select = "SELECT path, size, mtime_ns, ctime_ns, inode, hash, indexed_at_ns FROM files"
        rows = self._rows_under(select, under)
        return {
            path: FileState(FileStamp(size, mtime, ctime, inode), digest, at)
            for path, size, mtime, ctime, inode, digest, at in rows
        }

    def files_over(self, kind: str, size: int) -> dict[str, str]:
        """Indexed files of ``kind`` over ``size`` bytes: path -> hash (an index range, not every file)."""
        rows = self.connection.execute("SELECT path, hash FROM files WHERE kind = ? AND size > ?", (kind, size))
        return dict(rows)

    def skipped_files(self, under: Iterable[str] | None = None) -> dict[str, SkippedFile]:
        """Files skipped with a warning: all of them, or those at or below the given paths."""
        select = "SELECT path, size, mtime_ns, ctime_ns, inode, reason, skipped_at_ns FROM skipped"
        rows = self._rows_under(select, under)
        return {
            path: SkippedFile(FileStamp(size, mtime, ctime, inode), reason, at)
            for path, size, mtime, ctime, inode, reason, at in rows
        }

    def _rows_under(self, select: str, under: Iterable[str] | None) -> Iterable[tuple[Any, ...]]:
        if under is None:
            return self.connection.execute(select)
        return [
            row
            for prefix in sorted(set(under))
            for row in self.connection.execute(
                # '0' sorts right after '/': the range is everything below prefix/
                f"{select} WHERE path = ? OR (path >= ? AND path < ?)",
                (prefix, prefix + "/", prefix + "0"),
            )
        ]

    def record_skipped(self, path: str, stamp: FileStamp, *, reason: str, skipped_at_ns: int) -> None:
        with self.connection:
            self.connection.execute(
                "INSERT OR REPLACE INTO skipped(path, size, mtime_ns, ctime_ns, inode, reason, skipped_at_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (path, stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.inode, reason, skipped_at_ns),
            )

    def forget_skipped(self, path: str) -> None:
        with self.connection:
            self.connection.execute("DELETE FROM skipped WHERE path = ?", (path,))

    def touch_file(self, path: str, stamp: FileStamp, *, indexed_at_ns: int) -> None:
        """Record a new stat for a file whose content is unchanged."""
        with self.connection:
            self.connection.execute(
                "UPDATE files SET size = ?, mtime_ns = ?, ctime_ns = ?, inode = ?, indexed_at_ns = ? WHERE path = ?",
                (stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.inode, indexed_at_ns, path),
            )

    @contextmanager
    def bulk_load(self, *, files: int) -> Iterator[None]:
        """Each file's rows are cheap to write one file at a time. After a sync of many files,
        FTS5's segments (one per file's transaction, merged 4 at a time) become one: a keyword
        query then reads each word's postings from one place (at 100K chunks, 17 segments
        cost 10-20% more keyword CPU than one; the merge took 0.5 s). Counted are the files
        written or removed, not those read: touched files whose content is unchanged add no segment."""
        written = self._files_written
        yield
        if self._files_written - written >= MERGE_FROM_FILES:
            with self.connection:
                self.connection.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")

    def commit_batch(self) -> None:
        """Nothing to commit: each file is its own transaction."""

    def replace_file(
        self,
        record: FileRecord,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        *,
        indexed_at_ns: int,
        keep_before: int | None = None,
    ) -> None:
        """Replace everything stored for one file, in one transaction; with ``keep_before``,
        its chunks that start before that line stay (a transcript that only grew)."""
        with self.connection:
            self._delete_rows(record.path, from_line=keep_before)
            kept = 0 if keep_before is None else self._chunks_of(record.path)  # a grown transcript's earlier chunks
            self.connection.execute(
                "INSERT INTO files(path, kind, date, size, mtime_ns, ctime_ns, inode, hash, frontmatter, "
                "indexed_at_ns, chunk_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.path, record.kind, record.date, record.stamp.size, record.stamp.mtime_ns,
                    record.stamp.ctime_ns, record.stamp.inode, record.hash, json.dumps(record.frontmatter, default=str, ensure_ascii=False),
                    indexed_at_ns, kept + len(chunks),
                ),
            )  # fmt: skip
            for chunk, vector in zip(chunks, vectors):
                (chunk_id,) = self.connection.execute(
                    "INSERT INTO chunks(path, start_line, end_line, heading, text, hash, oversized, date) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (record.path, chunk.start_line, chunk.end_line, chunk.heading, chunk.text,
                     chunk.hash, int(chunk.oversized), chunk.date),
                ).fetchone()  # fmt: skip
                self.connection.execute(
                    "INSERT INTO chunks_fts(rowid, text, heading, title) VALUES (?, ?, ?, ?)",
                    (chunk_id, fts_text(chunk.text), fts_text(chunk.heading), fts_text(record.title)),
                )
                if self.vec_enabled:
                    self.connection.execute(
                        "INSERT INTO chunks_vec(rowid, embedding) VALUES (?, ?)",
                        (chunk_id, _blob(vector)),
                    )
        self._files_written += 1

    def invalidate_files(self, paths: Sequence[str]) -> None:
        """Make the next sync read these files again (their stat and hash no longer match)."""
        with self.connection:
            for batch in _batches(list(paths)):
                marks = ",".join("?" * len(batch))
                self.connection.execute(f"UPDATE files SET size = -1, hash = '' WHERE path IN ({marks})", batch)

    def remove_file(self, path: str) -> None:
        with self.connection:
            self._delete_rows(path)
        self._files_written += 1  # its delete markers are a segment too

    def last_chunk_start(self, path: str) -> int | None:
        """The first line of a file's last chunk, or None when it has none."""
        (line,) = self.connection.execute("SELECT max(start_line) FROM chunks WHERE path = ?", (path,)).fetchone()
        return line

    def _chunks_of(self, path: str) -> int:
        return int(self.connection.execute("SELECT count(*) FROM chunks WHERE path = ?", (path,)).fetchone()[0])

    def _delete_rows(self, path: str, *, from_line: int | None = None) -> None:
        first = 0 if from_line is None else from_line
        ids = [row[0] for row in self.connection.execute(
            "SELECT id FROM chunks WHERE path = ? AND start_line >= ?", (path, first))]  # fmt: skip
        for batch in _batches(ids):
            marks = ",".join("?" * len(batch))
            self.connection.execute(f"DELETE FROM chunks_fts WHERE rowid IN ({marks})", batch)
            if self.vec_enabled:
                self.connection.execute(f"DELETE FROM chunks_vec WHERE rowid IN ({marks})", batch)
        self.connection.execute("DELETE FROM chunks WHERE path = ? AND start_line >= ?", (path, first))
        self.connection.execute("DELETE FROM files WHERE path = ?", (path,))
        self.connection.execute("DELETE FROM skipped WHERE path = ?", (path,))

    def clear(self) -> None:
        """Forget every file and chunk (before a full re-embed).

        Without sqlite-vec loaded the vec0 table cannot even be dropped; it is
        left as it is and rebuilt from the cache once sqlite-vec is back.
        """
        with self.connection:
            for table in ("chunks_fts", "chunks", "files", "skipped"):
                self.connection.execute(f"DELETE FROM {table}")
            if self.vec_enabled:
                self.connection.execute("DROP TABLE IF EXISTS chunks_vec")

    # -- vectors ----------------------------------------------------------
    def rebuild_vectors(self, dimensions: int, vectors_by_hash: dict[str, np.ndarray]) -> None:
        """Recreate ``chunks_vec`` for ``dimensions`` and fill it, in one transaction."""
        with self.connection:
            self.connection.execute("DROP TABLE IF EXISTS chunks_vec")
            self.connection.execute(
                f"CREATE VIRTUAL TABLE chunks_vec USING "
                f"vec0(embedding float[{int(dimensions)}] distance_metric=cosine)"
            )
            self.connection.executemany(
                "INSERT INTO chunks_vec(rowid, embedding) VALUES (?, ?)",
                ((cid, _blob(vectors_by_hash[digest])) for cid, digest in self.chunk_hashes()),
            )

    def vec_dimensions(self) -> int | None:
        """Dimensions of the existing ``chunks_vec`` table, from its declaration."""
        row = self.connection.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'chunks_vec'"
        ).fetchone()
        match = re.search(r"float\[(\d+)\]", row[0]) if row else None
        return int(match[1]) if match else None

    def search_chunk_hashes(self, since: Any = None) -> SearchedHashes:
        return SearchedHashes(self.chunk_hashes())  # one index: every chunk is searched

    def chunk_hashes(self) -> list[tuple[int, str]]:
        return list(self.connection.execute("SELECT id, hash FROM chunks ORDER BY id"))

    # -- search -----------------------------------------------------------
    def keyword_candidates(
        self, terms: Sequence[str], limit: int, *, filters: SearchFilters | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, bm25 score where higher is better) of the chunks matching any of
        the query ``terms``, among the chunks ``filters`` allows."""
        pieces = [piece for term in terms for piece in query_pieces(term)]
        if not pieces:
            return []
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        where, params = filter_clause(filters)
        if where:
            sql = (
                f"SELECT t.rowid, bm25(chunks_fts, {weights}) AS rank FROM chunks_fts t "
                "JOIN chunks c ON c.id = t.rowid JOIN files f ON f.path = c.path "
                f"WHERE chunks_fts MATCH ? AND {where} ORDER BY rank LIMIT ?"
            )
        else:
            sql = (
                f"SELECT rowid, bm25(chunks_fts, {weights}) AS rank FROM chunks_fts "
                "WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?"
            )

        def run(match: str, count: int) -> list[tuple[int, float]]:
            return [(chunk_id, -rank) for chunk_id, rank in self.connection.execute(sql, (match, *params, count))]

        tokens = [stems(piece, query=True) for piece in pieces]
        if where:
            return top_bm25(pieces, tokens, limit, run=run, counts=self.term_document_counts)

        def whole(count: int, found: dict[str, int]) -> list[tuple[int, float]] | None:  # phrases.py
            total = self.chunk_count()
            return self._phrases.top(pieces, tokens, count, total=total, found=found, version=self._chunk_count)

        return top_bm25(pieces, tokens, limit, run=run, counts=self.term_document_counts, whole=whole)

    def filtered_chunk_ids(self, filters: SearchFilters) -> list[int]:
        """Ids of the chunks ``filters`` allows (for vector search's ``only``)."""
        where, params = filter_clause(filters)
        if not where:
            return [row[0] for row in self.connection.execute("SELECT id FROM chunks ORDER BY id")]
        return [
            row[0]
            for row in self.connection.execute(
                f"SELECT c.id FROM chunks c JOIN files f ON f.path = c.path WHERE {where} ORDER BY c.id", params
            )
        ]

    def term_document_counts(self, terms: Sequence[str]) -> tuple[int, dict[str, int]]:
        """(number of chunks, chunks containing each stemmed term: the terms in none left out).
        Each term is counted once per state of the index: fts5vocab walks the term's whole
        posting list (~1 ms for a word in a third of 100K chunks), and a hybrid search asks
        for the same terms three times (IDFs, keyword pruning, confidence)."""
        total = self.chunk_count()
        assert self._chunk_count is not None
        if self._term_counts[0] != self._chunk_count[0] or len(self._term_counts[1]) > MAX_COUNTED_TERMS:
            self._term_counts = (self._chunk_count[0], {})
        known = self._term_counts[1]
        missing = [term for term in dict.fromkeys(terms) if term not in known]
        found: dict[str, int] = {}
        for batch in _batches(missing):
            marks = ",".join("?" * len(batch))
            found.update(self.connection.execute(
                f"SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})", batch
            ))  # fmt: skip
        known.update((term, found.get(term, 0)) for term in missing)
        counts = {term: known[term] for term in terms if known[term]}
        return max(total, *counts.values(), 0), counts  # never fewer chunks than one term is in

    def chunk_count(self) -> int:
        """How many chunks the index has; counted once per state of the index (a count
        walks the whole table: ~1 ms per 100K chunks, twice a search)."""
        version = self.data_version()
        if self._chunk_count is None or self._chunk_count[0] != version:
            self._chunk_count = (version, self.connection.execute("SELECT count(*) FROM chunks").fetchone()[0])
        return self._chunk_count[1]

    def forget_counts(self) -> None:
        """After the whole database was copied in (``SqliteEngine.rebuild``): SQLite's backup
        API changes neither this connection's ``data_version`` nor its change count."""
        self._chunk_count = None
        self._term_counts = (None, {})
        self._phrases.forget()

    def stem(self, text: str) -> list[str]:
        """The terms FTS5 looks up for ``text`` (same tokenizer as ``chunks_fts``)."""
        return stems(text, query=True)

    def vector_candidates(
        self, vector: np.ndarray, limit: int, *, only: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the nearest chunks, via vec0; with
        ``only``, the nearest among those chunk ids."""
        if only is None:
            rows = self.connection.execute(
                "SELECT rowid, distance FROM chunks_vec WHERE embedding MATCH ? AND k = ? ORDER BY distance",
                (_blob(vector), limit),
            )
        elif not only:
            return []
        else:
            rows = self.connection.execute(
                "SELECT rowid, distance FROM chunks_vec WHERE embedding MATCH ? AND k = ? "
                "AND rowid IN (SELECT value FROM json_each(?)) ORDER BY distance",
                (_blob(vector), limit, json.dumps([int(i) for i in only])),
            )
        return [(chunk_id, 1.0 - distance) for chunk_id, distance in rows]

    def data_version(self) -> tuple[int, int]:
        """Changes whenever this connection or another one commits a change to the index."""
        (version,) = self.connection.execute("PRAGMA data_version").fetchone()
        return version, self.connection.total_changes()

    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        found: dict[int, ChunkRow] = {}
        for batch in _batches(list(ids)):
            marks = ",".join("?" * len(batch))
            rows = self.connection.execute(
                "SELECT c.id, c.path, c.start_line, c.end_line, c.heading, c.text, f.kind, coalesce(c.date, f.date) "
                f"FROM chunks c JOIN files f ON f.path = c.path WHERE c.id IN ({marks})",
                batch,
            )
            for row in rows:
                found[row[0]] = ChunkRow(*row)
        return found
