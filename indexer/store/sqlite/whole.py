"""The SQLite store's reads of the whole index: every vector for the in-memory matrix,
and what ``status``, ``check`` and the comparison with a rebuild read (``Store``
inherits them; store.py has the rest)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import apsw
import numpy as np

from indexer.store.records import SQL_VARIABLES_PER_QUERY
from indexer.store.records import batches as _batches


class WholeIndexReads:
    """Mixed into ``Store``, which provides these:"""

    connection: apsw.Connection
    vec_enabled: bool
    meta: Callable[[], dict[str, str]]
    vec_dimensions: Callable[[], int | None]

    def vectors_by_pairs(self, pairs: Sequence[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray]:
        return self.vectors_of([chunk_id for chunk_id, _ in pairs])

    def vectors_of(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, their vectors as matrix rows) from ``chunks_vec``, for those of ``ids`` it has."""
        if len(ids) > SQL_VARIABLES_PER_QUERY * 20:  # most of the table: one scan
            rows: Iterable[tuple[int, bytes]] = self.connection.execute("SELECT rowid, embedding FROM chunks_vec")
        else:
            rows = (
                row for batch in _batches(list(ids)) for row in self.connection.execute(
                    f"SELECT rowid, embedding FROM chunks_vec WHERE rowid IN ({','.join('?' * len(batch))})", batch
                )
            )  # fmt: skip
        # Each vector goes straight into one preallocated matrix: no list of blobs, no joined
        # copy, no filtered copy (at 100K x 384 the load peaked at 3.3x the matrix's 147 MB).
        wanted = set(ids) if len(ids) > SQL_VARIABLES_PER_QUERY * 20 else None
        found = np.empty(len(ids), dtype=np.int64)
        matrix: np.ndarray | None = None
        count = 0
        for chunk_id, blob in rows:
            if wanted is not None and chunk_id not in wanted:
                continue
            if matrix is None:
                matrix = np.empty((len(ids), len(blob) // 4), dtype=np.float32)
            if len(blob) != 4 * matrix.shape[1]:
                raise ValueError("chunks_vec holds vectors of different sizes")
            matrix[count] = np.frombuffer(blob, dtype=np.float32)
            found[count] = chunk_id
            count += 1
        if matrix is None:
            return found[:0], np.zeros((0, 0), dtype=np.float32)
        if count < len(ids):  # a few ids without a vector: give the unused rows back
            return found[:count].copy(), matrix[:count].copy()
        return found, matrix

    def counts_by_kind(self) -> dict[str, dict[str, int]]:
        """Files and chunks by kind, from each file's kept chunk count (an index on
        (kind, chunk_count)): status reads the files, not every chunk."""
        rows = self.connection.execute("SELECT kind, count(*), sum(chunk_count) FROM files GROUP BY kind")
        return {kind: {"files": files, "chunks": chunks} for kind, files, chunks in rows}

    def consistency_counts(self) -> dict[str, int]:
        """Row totals ("files", "chunks") and counts of rows that should not exist."""
        sql = {
            "files": "SELECT count(*) FROM files",
            "chunks": "SELECT count(*) FROM chunks",
            "chunks without a full-text row": "SELECT count(*) FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_fts)",
            "full-text rows without a chunk": "SELECT count(*) FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks)",
            "chunks of files that are not indexed": "SELECT count(*) FROM chunks WHERE path NOT IN (SELECT path FROM files)",
            "files whose kept chunk count is off": "SELECT count(*) FROM files f "
            "WHERE chunk_count <> (SELECT count(*) FROM chunks c WHERE c.path = f.path)",
        }
        if self.vec_enabled and self.vec_dimensions() is not None and self.meta().get("vec_stale") != "1":
            sql["chunks without a vector"] = "SELECT count(*) FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_vec)"
            sql["vectors without a chunk"] = "SELECT count(*) FROM chunks_vec WHERE rowid NOT IN (SELECT id FROM chunks)"
        return {name: self.connection.execute(query).fetchone()[0] for name, query in sql.items()}

    def chunk_texts(self) -> Iterator[tuple[str, int, str, str, str]]:
        """(path, start_line, heading, text, hash) of every chunk."""
        yield from self.connection.execute("SELECT path, start_line, heading, text, hash FROM chunks")

    def file_descriptions(self) -> dict[str, tuple[str, str | None, dict[str, Any]]]:
        """path -> (kind, date, frontmatter) of every indexed file."""
        rows = self.connection.execute("SELECT path, kind, date, frontmatter FROM files")
        return {path: (kind, day, json.loads(front)) for path, kind, day, front in rows}

    def chunks_with_fts(self) -> dict[str, list[tuple[int, int, str, str, tuple[str, str, str]]]]:
        """path -> [(start, end, heading, text, (FTS text, FTS heading, FTS title))] in line order
        (the FTS columns hold tokenizer.fts_text of the chunk's text, heading and title)."""
        rows = self.connection.execute(
            "SELECT c.path, c.start_line, c.end_line, c.heading, c.text, f.text, f.heading, f.title "
            "FROM chunks c JOIN chunks_fts f ON f.rowid = c.id ORDER BY c.path, c.start_line"
        )
        found: dict[str, list[tuple[int, int, str, str, tuple[str, str, str]]]] = {}
        for path, start, end, heading, text, *fts in rows:
            found.setdefault(path, []).append((start, end, heading, text, tuple(fts)))  # type: ignore[arg-type]
        return found

    def vectors_by_chunk(self) -> dict[int, bytes]:
        return {chunk_id: bytes(blob) for chunk_id, blob in self.connection.execute("SELECT rowid, embedding FROM chunks_vec")}

    def snapshot(self) -> dict[str, Any]:
        """The index content independent of row ids (for comparing with a rebuild)."""
        files = sorted(self.connection.execute("SELECT path, kind, date, hash, frontmatter FROM files"))
        chunks = sorted(
            self.connection.execute("SELECT path, start_line, end_line, heading, text, hash, date FROM chunks")
        )
        fts = sorted(
            self.connection.execute(
                "SELECT c.path, c.start_line, t.text, t.heading, t.title "
                "FROM chunks_fts t JOIN chunks c ON c.id = t.rowid"
            )
        )
        fts_rows = self.connection.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
        skipped = sorted(self.connection.execute("SELECT path, reason FROM skipped"))
        snapshot: dict[str, Any] = {"files": files, "chunks": chunks, "fts": fts, "fts_rows": fts_rows, "skipped": skipped}
        if self.vec_enabled and self.vec_dimensions() is not None:
            vec = self.connection.execute(
                "SELECT c.path, c.start_line, v.embedding FROM chunks_vec v JOIN chunks c ON c.id = v.rowid"
            )
            snapshot["vec"] = sorted((p, s, bytes(e)) for p, s, e in vec)
            snapshot["vec_rows"] = self.connection.execute("SELECT count(*) FROM chunks_vec").fetchone()[0]
        return snapshot
