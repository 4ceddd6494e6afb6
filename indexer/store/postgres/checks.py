"""Status, checks and snapshots of a PostgreSQL namespace, mixed into ``PgStore``:
counts by kind, rows that should not exist, postings that do not match their
chunk, and the row-id-free snapshot the invariant tests compare.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from indexer.store.tokenizer import fts_text

from .text import chunk_terms, parse_vector


class PgChecks:
    """The status and check half of ``PgStore`` (which provides ``connection``, ``ns`` and ``_vec_table``)."""

    connection: Any
    ns: int

    # -- status and checks -----------------------------------------------------------
    def counts_by_kind(self) -> dict[str, dict[str, int]]:
        """Files and chunks by kind in one statement: chunks are counted per path from the
        ``chunks_by_path`` index (an index-only scan, no chunk text read), then by kind."""
        rows = self.connection.execute(
            "SELECT f.kind, count(*), coalesce(sum(c.n), 0)::bigint FROM files f LEFT JOIN "
            "(SELECT path, count(*) AS n FROM chunks WHERE ns = %(ns)s GROUP BY path) c ON c.path = f.path "
            "WHERE f.ns = %(ns)s GROUP BY f.kind",
            {"ns": self.ns},
        )
        return {kind: {"files": files, "chunks": chunks} for kind, files, chunks in rows}

    def consistency_counts(self) -> dict[str, int]:
        sql = {
            "files": "SELECT count(*) FROM files WHERE ns = %(ns)s",
            "chunks": "SELECT count(*) FROM chunks WHERE ns = %(ns)s",
            # (each chunk's postings are compared with its text by chunks_with_fts)
            "chunk count recorded for the namespace is off by": "SELECT abs((SELECT count(*) FROM chunks WHERE "
            "ns = %(ns)s) - (SELECT chunk_count FROM namespaces WHERE id = %(ns)s))",
            "token count recorded for the namespace is off by": "SELECT abs((SELECT coalesce(sum(length), 0) "
            "FROM chunks WHERE ns = %(ns)s) - (SELECT token_count FROM namespaces WHERE id = %(ns)s))",
        }
        sql["postings without a chunk"] = (
            "SELECT count(*) FROM postings p WHERE p.ns = %(ns)s AND NOT EXISTS "
            "(SELECT 1 FROM chunks c WHERE c.id = p.chunk_id AND c.ns = p.ns)"
        )
        table = self._vec_table()
        if table:
            sql["chunks without a vector"] = (
                f"SELECT count(*) FROM chunks c WHERE c.ns = %(ns)s AND NOT EXISTS "
                f"(SELECT 1 FROM {table} v WHERE v.chunk_id = c.id)"
            )
        return {name: self.connection.execute(query, {"ns": self.ns}).fetchone()[0] for name, query in sql.items()}

    def chunks_with_fts(self) -> dict[str, list[tuple[int, int, str, str, tuple[str, str, str]]]]:
        """path -> [(start, end, heading, text, tokenizer.fts_text of the (text, heading, title) its
        postings were made from, as SQLite's FTS columns hold them)];
        a chunk whose postings (or the terms on its row) are not those of its text and title gets ("", "", "")."""
        conn, ns = self.connection, {"ns": self.ns}
        stored: dict[int, dict[str, float]] = {}
        for cid, term, freq in conn.execute("SELECT chunk_id, term, freq FROM postings WHERE ns = %(ns)s", ns):
            stored.setdefault(cid, {})[term] = freq
        rows = conn.execute(
            "SELECT c.id, c.path, c.start_line, c.end_line, c.heading, c.text, f.title, c.length, c.terms FROM chunks c "
            "JOIN files f ON f.ns = c.ns AND f.path = c.path WHERE c.ns = %(ns)s ORDER BY c.path, c.start_line",
            ns,
        )
        found: dict[str, list[tuple[int, int, str, str, tuple[str, str, str]]]] = {}
        for cid, path, start, end, heading, text, title, length, terms in rows:
            expected, tokens = chunk_terms(text, heading, title)
            # The row's terms too: its delete finds its postings by them (an extra one would stay behind).
            same = tokens == length and expected == stored.get(cid, {}) and sorted(terms) == sorted(expected)
            columns = (fts_text(text), fts_text(heading), fts_text(title)) if same else ("", "", "")
            found.setdefault(path, []).append((start, end, heading, text, columns))
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
            "SELECT path, start_line, end_line, heading, text, hash, date FROM chunks WHERE ns = %(ns)s", ns
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

    def vectors_by_chunk(self) -> dict[int, bytes]:
        table = self._vec_table()
        if table is None:
            return {}
        rows = self.connection.execute(
            f"SELECT v.chunk_id, v.embedding::text FROM {table} v WHERE v.ns = %s", (self.ns,)
        )
        return {cid: parse_vector(text).tobytes() for cid, text in rows}
