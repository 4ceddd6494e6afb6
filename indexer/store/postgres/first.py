"""A read snapshot's first statement on PostgreSQL, mixed into ``PgStore`` (through ``PgSearch``):
the searched namespaces' totals, ids and generations, and this namespace's meta, in one
statement that also begins the snapshot (``snapshot.py``).

A warm search of this namespace assumes them: until the search must send a statement, its
snapshot answers as the last first statement read them (with the term counts kept for that
state, and the in-memory matrix of that state), and the first statement goes with the first
statement the search sends (bm25's: one string, one round trip; or any other, just before it).
When the snapshot finds another state (a write since the last search), the search runs again
(``MetaChanged``), and that run reads the first statement before anything else. A snapshot
that sent nothing still sends its first statement at its end, so no search returns results
from a state it did not check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import connection as pg
from .snapshot import BEGIN_SNAPSHOT, MetaChanged, PgSnapshot

# This namespace's meta that, changed, makes every vector a new one (the in-memory matrix reloads).
MATRIX_META = ("model", "dimensions", "vec_dimensions")
MAX_COUNTED_TERMS = 50_000  # terms whose chunk counts are kept, per state of the searched namespaces


class PgFirstStatement(PgSnapshot):
    """The first statement of ``PgStore``'s read snapshots (``PgStore`` provides ``access``,
    ``search_ids``, ``_search_names`` and ``_vec_table``)."""

    access: Any
    _search_names: tuple[str, ...]
    _term_counts: tuple[Any, dict[str, int]] | None = None  # (namespaces' ids and generations, term -> chunks)
    _kept_row: tuple[Any, ...] | None = None  # the last first statement's row, searching this namespace alone

    def search_ids(self) -> list[int]:  # pragma: no cover - PgSearch's
        raise NotImplementedError

    def _vec_table(self) -> str | None:  # pragma: no cover - PgStore's
        raise NotImplementedError

    def meta(self) -> dict[str, str]:
        """This namespace's meta; inside a read snapshot, as its first statement read it (the
        snapshot cannot see it change): no round trip of its own (an assumed one is checked)."""
        memo = self._snapshot
        if memo is not None and memo.meta is not None:
            self.connection  # noqa: B018 - an assumed first statement is sent and checked first
            if memo.meta is not None:
                return dict(memo.meta)
        return super().meta()

    def data_version(self) -> Any:
        """The state of what a search reads: the searched namespaces' ids and generations
        (every write of a namespace's chunks bumps its generation) and this namespace's model
        and vector table; inside a read snapshot, read by its first statement (``_totals``)."""
        memo = self._snapshot
        if memo is not None:
            self._totals()
            return memo.version
        ids, generations = self.connection.execute(
            "SELECT array_agg(id ORDER BY id), array_agg(generation ORDER BY id) FROM namespaces WHERE id = ANY(%s)",
            (self.search_ids(),),
        ).fetchone()
        meta = self.meta()
        return (tuple(ids or ()), tuple(generations or ()), *(meta.get(key) for key in MATRIX_META))

    def searched_chunks(self, *, export: bool = False) -> int:
        """Chunks in the searched namespaces (inside a read snapshot: its first statement's;
        ``export``: that statement also exports the snapshot, for an HNSW scan in parallel)."""
        return self._totals(export=export and self._snapshot is not None)[0]

    def search_vector_table(self) -> str | None:
        """The vector table searched (None: no vectors); inside a read snapshot, its first statement's."""
        return self._totals()[2] if self._snapshot is not None else self._vec_table()

    def term_document_counts(self, terms: Sequence[str]) -> tuple[int, dict[str, int]]:
        """(chunks in the searched namespaces, chunks containing each stemmed term); inside a
        read snapshot each term is counted once (counting a common term reads all its postings)."""
        total = self._totals()[0]
        wanted = set(terms)
        memo = self._snapshot.counts if self._snapshot is not None else None
        missing = wanted if memo is None else wanted - memo.keys()
        counts: dict[str, int] = {}
        if missing:
            rows = self.connection.execute(
                "SELECT term, count(*) FROM postings WHERE term = ANY(%s) AND ns = ANY(%s) GROUP BY term",
                (list(missing), self.search_ids()),
            )
            counts = {term: int(count) for term, count in rows}
        if memo is None:
            return total, counts
        memo.update((term, counts.get(term, 0)) for term in missing)
        return total, {term: memo[term] for term in wanted if memo[term]}

    def _totals(self, *, export: bool = False) -> tuple[int, int, str | None]:
        """(chunks, tokens) of the searched namespaces and this namespace's vector table
        (None: no vectors), in one statement with the namespaces' generations (the term
        counts kept: ``_counts_of``) and meta (``search_meta``); read once per read snapshot (``export``: also
        export the snapshot, for ``nearest_job``). As a read snapshot's first statement,
        searching this namespace alone (the usual case), BEGIN goes with it: one
        simple-protocol string, only ints spliced in; and when nothing has been sent yet
        and it needs no export, the last snapshot's row is assumed (see the module)."""
        memo = self._snapshot
        if memo is not None and memo.totals is not None:
            if export and memo.exported is None:
                (memo.exported,) = self.connection.execute("SELECT pg_export_snapshot()").fetchone()
            return memo.totals
        exporting = export and memo is not None
        if memo is not None and memo.conn is None and not self._search_names:
            if self._kept_row is not None and not exporting:
                memo.assumed = True
                return self._fill(self._kept_row, export=False)
            memo.conn = self._live_connection()
            cursor = memo.conn.execute(self._first_statement(exporting))
            cursor.nextset()  # past BEGIN's result
            return self._read_first(cursor.fetchone(), export=exporting)
        row = self.connection.execute(
            "SELECT coalesce(sum(chunk_count), 0)::bigint, coalesce(sum(token_count), 0)::bigint, "
            "(SELECT value FROM meta WHERE ns = %s AND key = 'vec_dimensions'), (SELECT sum(chunk_count) FROM namespaces), "
            "array_agg(id ORDER BY id), array_agg(generation ORDER BY id), (SELECT json_object_agg(key, value) FROM meta "
            f"WHERE ns = %s){', pg_export_snapshot()' if exporting else ''} FROM namespaces WHERE id = ANY(%s)",
            (self.ns, self.ns, self.search_ids()),
        ).fetchone()
        return self._read_first(row, export=exporting)

    def _first_statement(self, exporting: bool) -> str:
        ns = int(self.ns)
        return (
            f"{BEGIN_SNAPSHOT}; SELECT coalesce(sum(chunk_count), 0)::bigint, coalesce(sum(token_count), 0)::bigint, "
            f"(SELECT value FROM meta WHERE ns = {ns} AND key = 'vec_dimensions'), (SELECT sum(chunk_count) FROM namespaces), "
            f"array_agg(id ORDER BY id), array_agg(generation ORDER BY id), (SELECT json_object_agg(key, value) FROM meta "
            f"WHERE ns = {ns}){', pg_export_snapshot()' if exporting else ''} FROM namespaces WHERE id = {ns}"
        )

    def begin_snapshot(self, conn: Any) -> None:
        """Inside a read snapshot not yet begun: BEGIN it on ``conn``; an assumed first
        statement is sent with BEGIN, and checked."""
        memo = self._snapshot
        if memo is not None and memo.conn is None and memo.assumed:
            memo.conn = conn
            cursor = conn.execute(self._first_statement(False))
            cursor.nextset()
            self._read_first(cursor.fetchone(), export=False)
            return
        super().begin_snapshot(conn)

    def with_first_statement(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """The rows of ``sql``, a read snapshot's first statement to send: while its first
        statement is assumed, both go in one string (its parameters bound here, by psycopg's
        quoting), and the first statement's row is checked."""
        memo = self._snapshot
        if memo is None or memo.conn is not None or not memo.assumed:
            return self.connection.execute(sql, params).fetchall()
        conn = memo.conn = self._live_connection()
        bound = pg.bind(conn, sql, params)
        cursor = conn.execute(f"{self._first_statement(False)}; {bound}")
        cursor.nextset()  # past BEGIN's result
        first = cursor.fetchone()
        cursor.nextset()
        rows = cursor.fetchall()
        self._read_first(first, export=False)
        return rows

    def _read_first(self, row: Any, *, export: bool) -> tuple[int, int, str | None]:
        """The first statement's row, as the server sent it: kept for the next snapshot, and
        what this snapshot assumed is checked against it (a search runs again on another state)."""
        memo = self._snapshot
        assumed = (memo.totals, memo.version) if memo is not None and memo.assumed else None
        self._kept_row = None if self._search_names else tuple(row[:7])
        totals = self._fill(row, export=export)
        if memo is not None:
            memo.assumed = False
        try:
            self.remember_meta(dict(row[6] or {}))
        except MetaChanged:
            self._kept_row = None
            raise
        if assumed is not None and assumed != (memo.totals, memo.version):  # type: ignore[union-attr]
            self._kept_row = None  # the search runs again, reading this first: it cannot fail this way twice
            raise MetaChanged("the index changed since the last search; searching again")
        return totals

    def _fill(self, row: Any, *, export: bool) -> tuple[int, int, str | None]:
        chunks, tokens, dims, every, ids, generations = row[:6]
        totals = (int(chunks), int(tokens), f"chunk_vectors_{int(dims)}" if dims and dims.isdigit() else None)
        memo = self._snapshot
        if memo is not None:
            memo.totals = totals
            # The schema's owner sees every namespace (row-level security binds other roles).
            memo.whole = self.access.owner and int(chunks) >= int(every or 0)
            version = (tuple(ids or ()), tuple(generations or ()))
            memo.counts = self._counts_of(version)
            memo.meta = meta = dict(row[6] or {})
            memo.version = (*version, *(meta.get(key) for key in MATRIX_META))
            if export:
                memo.exported = row[7]
        return totals

    def _counts_of(self, version: tuple[tuple[int, ...], tuple[int, ...]]) -> dict[str, int]:
        """The term counts known for this state of the searched namespaces (their ids and
        generations: every write that changes a namespace's postings bumps its generation in
        the same transaction), kept across read snapshots: a term is counted once per state,
        as SQLite counts it (a count reads all the term's postings; an idle process searches
        the same state again and again)."""
        kept = self._term_counts
        if kept is None or kept[0] != version or len(kept[1]) > MAX_COUNTED_TERMS:
            kept = self._term_counts = (version, {})
        return kept[1]
