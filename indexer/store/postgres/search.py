"""Search on PostgreSQL, mixed into ``PgStore``: exact bm25 over the query terms'
postings, vector search on the HNSW index (or an exact scan of filtered chunks),
and reading chunks back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.retrieval.filters import SearchFilters
from indexer.store.records import BM25_B, BM25_K1, ChunkRow, SearchedHashes, bm25_idf
from indexer.store.tokenizer import stems

from .first import MATRIX_META, PgFirstStatement  # noqa: F401 - MATRIX_META re-exported
from .text import ALL, MAX_EF_SEARCH, MAX_TERM_BYTES, filter_clause, vector_text

LOAD_BLOCK = 10_000  # vectors read per statement when the in-memory matrix loads


class PgSearch(PgFirstStatement):
    """The search half of ``PgStore`` (which provides ``connection``, ``ns``, ``unknown_namespace``
    and ``_vec_table``); its read snapshots: ``snapshot.py``, and their first statement: ``first.py``."""

    namespace: str  # this store's namespace (its id: ``ns``)
    access: Any  # access.Access: the role, and whether it owns the schema
    ns: int
    unknown_namespace: Any  # name -> the error for a namespace this role cannot see
    _search_names: tuple[str, ...]  # the namespaces searched by name ("*": all); empty: this one
    _names: dict[int, str] | None = None  # namespace_names()

    def search_ids(self) -> list[int]:
        """Namespace ids a search covers: this one, the named ones, or every one ("*")."""
        if not self._search_names:
            return [self.ns]
        memo = self._snapshot
        if memo is not None and memo.ids is not None:  # read once per read snapshot
            return list(memo.ids)
        if ALL in self._search_names:
            ids = [row[0] for row in self.connection.execute("SELECT id FROM namespaces ORDER BY id")]
        else:
            rows = self.connection.execute(
                "SELECT id, name FROM namespaces WHERE name = ANY(%s) ORDER BY id", (list(self._search_names),)
            ).fetchall()
            missing = sorted(set(self._search_names) - {name for _, name in rows})
            if missing:
                raise self.unknown_namespace(missing[0])
            ids = [row[0] for row in rows]
        if memo is not None:
            memo.ids = ids
        return list(ids)

    def vector_candidates(
        self, vector: np.ndarray, limit: int, *, only: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the nearest chunks in the searched namespaces: HNSW with
        ``ef_search`` a quarter above ``limit``; with ``only``, an exact scan of those chunks."""
        if (only is not None and not only) or limit < 1:
            return []
        query = vector_text(vector)
        with self.read_snapshot():
            table = self._totals()[2]
            if table is None:
                return []
            conn = self.connection
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
                rows = self._hnsw_nearest(table, query, limit)
        return [(int(cid), float(cosine)) for cid, cosine in rows]

    def _hnsw_nearest(self, table: str, query: str, limit: int) -> list[tuple[int, float]]:
        """The HNSW index scan with its two settings: one round trip (``hnsw_sql``)."""
        cursor = self.connection.execute(hnsw_sql(table, query, self.search_ids(), limit))
        cursor.nextset()  # past the two SETs' results
        cursor.nextset()
        return cursor.fetchall()

    def nearest_job(self, vector: np.ndarray, limit: int) -> tuple[str, str, bool] | None:
        """Inside a read snapshot: (this snapshot's id, the SQL of its HNSW scan, whether it is
        ``hnsw_sql``'s first pass alone) for a second connection to run in parallel
        (parallel.py), or None when there is nothing to scan.
        The snapshot is exported by the statement that begins it and reads the totals, when
        this is the search's first statement (it is: ``api`` starts the scan first)."""
        memo = self._snapshot
        if memo is None or limit < 1:
            return None
        table = self._totals(export=True)[2]
        if table is None:
            return None
        first_pass = self._first_pass_alone(limit)
        return str(memo.exported), hnsw_sql(table, vector_text(vector), self.search_ids(), limit, iterative=not first_pass), first_pass

    def _first_pass_alone(self, limit: int) -> bool:
        """Whether HNSW's first pass alone is likely to fill ``limit`` (``hnsw_sql``): no other
        namespace's vectors can take places in its list, and the namespaces hold at least
        twice ``limit`` chunks (a smaller index would come short, and be scanned twice)."""
        memo = self._snapshot
        return memo is not None and memo.whole and memo.totals is not None and memo.totals[0] >= 2 * limit

    def vectors_by_pairs(self, pairs: Sequence[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of the searched namespaces' chunks ``pairs`` names (the in-memory
        matrix's rows: ``retrieval/vectors.py``), read through this connection (a role reads
        only its granted namespaces' rows)."""
        return self._binary_vectors([chunk_id for chunk_id, _ in pairs], self.search_ids())

    def vectors_of(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        return self._binary_vectors(ids, None)

    def _binary_vectors(self, ids: Sequence[int], namespaces: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids found, their vectors) in binary: pgvector's send format is two int16
        (dimensions, unused) then big-endian float4s, so the rows joined are one big-endian
        float32 matrix with one leading column to drop (no text to parse). Read ``LOAD_BLOCK``
        ids at a time, so that the rows in flight stay small beside the matrix (review)."""
        table = self._vec_table()
        wanted = sorted(int(i) for i in ids)
        if table is None or not wanted:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        where = " AND ns = ANY(%s)" if namespaces is not None else ""
        cursor = self.connection.cursor(binary=True)
        found, blocks = [], []
        for start in range(0, len(wanted), LOAD_BLOCK):
            block = wanted[start : start + LOAD_BLOCK]
            rows = cursor.execute(
                f"SELECT chunk_id, embedding FROM {table} WHERE chunk_id = ANY(%s){where} ORDER BY chunk_id",
                (block, *(() if namespaces is None else (namespaces,))),
            ).fetchall()
            if rows:
                found.append(np.fromiter((cid for cid, _ in rows), dtype=np.int64, count=len(rows)))
                packed = np.frombuffer(b"".join(bytes(blob) for _, blob in rows), dtype=">f4").reshape(len(rows), -1)
                blocks.append(packed[:, 1:].astype(np.float32))
            del rows
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        if len(blocks) == 1:
            return found[0], blocks[0]
        return np.concatenate(found), np.concatenate(blocks)

    def search_chunk_hashes(self, since: Any = None) -> SearchedHashes:
        """(chunk id, text hash) of the searched namespaces' chunks with a vector in this
        namespace's vector table (``chunk_hashes``: this namespace's), through this connection:
        row-level security hides ungranted ones. A namespace of another model keeps its
        vectors in another table: its chunks are not asked for again at every refresh (review).
        ``since``: a ``data_version`` of this model: only the namespaces whose generation
        changed since (or that came or went) are read (a write changes one namespace's chunks:
        the others' are not read again)."""
        table = self.search_vector_table()
        ids = self.search_ids()
        changed = None
        version = self.data_version()
        if since is not None and tuple(since[2:]) == tuple(version[2:]):
            before, now = dict(zip(since[0], since[1])), dict(zip(version[0], version[1]))
            changed = frozenset(ns for ns in before.keys() | now.keys() if before.get(ns) != now.get(ns))
            ids = [ns for ns in ids if ns in changed]
        if table is None or not ids:
            return SearchedHashes([], [], changed)
        rows = self.connection.execute(
            f"SELECT c.id, c.hash, c.ns FROM chunks c JOIN {table} v ON v.chunk_id = c.id WHERE c.ns = ANY(%s) ORDER BY c.id",
            (ids,),
        ).fetchall()
        return SearchedHashes([(cid, digest) for cid, digest, _ in rows], [ns for _, _, ns in rows], changed)

    # -- keyword search ------------------------------------------------------------
    def stem(self, text: str) -> list[str]:
        return stems(text, query=True)

    def keyword_candidates(
        self, terms: Sequence[str], limit: int, *, filters: SearchFilters | None = None
    ) -> list[tuple[int, float]]:
        """FTS5's bm25 (higher is better) of the chunks holding any of the terms."""
        lexemes = [s for term in terms for s in self.stem(term) if len(s.encode("utf-8")) <= MAX_TERM_BYTES]
        if not lexemes:
            return []
        ids = self.search_ids()
        total, tokens, _ = self._totals()
        if not total:
            return []
        _, counts = self.term_document_counts(lexemes)
        idfs = [bm25_idf(total, counts.get(t, 0)) for t in lexemes]
        where, params = filter_clause(filters)
        joins = " JOIN chunks c ON c.id = p.chunk_id JOIN files f ON f.ns = c.ns AND f.path = c.path" if where else ""
        rows = self.with_first_statement(  # a warm search sends its snapshot's first statement with it
            "SELECT p.chunk_id, sum(q.idf * (p.freq * %(k1)s::float8 + p.freq) / "
            "(p.freq + %(k1)s::float8 * (1 - %(b)s::float8 + %(b)s::float8 * p.length / %(avgdl)s::float8))) AS score "
            "FROM unnest(%(terms)s::text[], %(idfs)s::float8[]) AS q(term, idf) "
            f"JOIN postings p ON p.term = q.term AND p.ns = ANY(%(ns)s){joins} "
            f"{'WHERE ' + where if where else ''} "
            "GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT %(limit)s",
            {"k1": BM25_K1, "b": BM25_B, "avgdl": tokens / total, "terms": lexemes, "idfs": idfs, "ns": ids,
             "limit": limit, **params},
        )  # fmt: skip
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
        """The chunks' rows, with their namespace's name (from ``namespace_names``: a join
        with ``namespaces`` cost the server more to plan than to run). Each chunk's file is
        looked up by its key (a lateral subquery the planner keeps): a plain join hashed
        every file of the server to read a hundred chunks."""
        rows = self.connection.execute(
            "SELECT c.id, c.path, c.start_line, c.end_line, c.heading, c.text, f.kind, coalesce(c.date, f.date), c.ns "
            "FROM chunks c JOIN LATERAL (SELECT kind, date FROM files WHERE files.ns = c.ns AND files.path = c.path LIMIT 1) f "
            "ON true WHERE c.id = ANY(%s)",
            ([int(i) for i in ids],),
        ).fetchall()
        names = self.namespace_names({row[8] for row in rows})
        return {row[0]: ChunkRow(*row[:8], names[row[8]]) for row in rows if row[8] in names}

    def namespace_names(self, ids: set[int]) -> dict[int, str]:
        """id -> name of namespaces, kept for the store's life (a namespace's name and id never
        change; ids are not reused): read from the server only for ids not seen before."""
        if self._names is None:
            self._names = {self.ns: self.namespace}
        known = self._names
        missing = [i for i in ids if i not in known]
        if missing:
            known.update(self.connection.execute("SELECT id, name FROM namespaces WHERE id = ANY(%s)", (missing,)))
        return known

    def stored_lines(self, namespace: str, path: str) -> list[tuple[int, int, str]] | None:
        """(start, end, text) of a file's chunks in another namespace, or None if it has no such file."""
        found = self.connection.execute("SELECT id FROM namespaces WHERE name = %s", (namespace,)).fetchone()
        if found is None:  # not there, or not granted to this role (row-level security hides it)
            raise self.unknown_namespace(namespace)
        if self.connection.execute("SELECT 1 FROM files WHERE ns = %s AND path = %s", (found[0], path)).fetchone() is None:
            return None
        return self.connection.execute(
            "SELECT start_line, end_line, text FROM chunks WHERE ns = %s AND path = %s ORDER BY start_line",
            (found[0], path),
        ).fetchall()


def hnsw_sql(table: str, query: str, ids: Sequence[int], limit: int, *, iterative: bool = True) -> str:
    """Two SETs and the HNSW index scan as one simple-protocol string: one round trip, its
    rows the third result. Only numbers are spliced in (``vector_text`` writes digits, signs,
    dots, exponents and commas; the ids and sizes are ints).

    ``ef_search`` is a quarter above ``limit``: other namespaces' vectors and dead ones (rows
    replaced since the last VACUUM) take places in the candidate list, and refilling it with
    the iterative scan cost more than the wider first search (bench/bench_pg_search.py).

    ``iterative=False``: the first pass alone. pgvector's strict-order iterative scan returns
    that same pass's candidates in the same order before it resumes (hnswscan.c: the search
    layer's list does not depend on the discarded heap it keeps for resuming), so when the
    first pass returns ``limit`` rows they are the iterative scan's rows, without the cost of
    keeping every discarded candidate (about a tenth of the scan); when it returns fewer, the
    caller scans again with ``iterative=True``."""
    ef = max(40, min(limit + limit // 4, MAX_EF_SEARCH))
    namespaces = ",".join(str(int(i)) for i in ids)
    return (
        f"SET LOCAL hnsw.ef_search = {ef}; SET LOCAL hnsw.iterative_scan = {'strict_order' if iterative else 'off'}; "
        f"SELECT chunk_id, 1 - (embedding <=> '{query}'::vector) FROM {table} WHERE ns = ANY('{{{namespaces}}}') "
        f"ORDER BY embedding <=> '{query}'::vector LIMIT {int(limit)}"
    )


class FilteredChunks(Sequence[int]):
    """The ids of the chunks a filter allows, read from the server only when iterated."""

    def __init__(self, store: PgSearch, filters: SearchFilters) -> None:
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
