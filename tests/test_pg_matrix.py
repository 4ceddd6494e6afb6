"""A warm PostgreSQL process scans the searched namespaces' vectors in memory (retrieval/warm.py,
retrieval/vectors.py), as SQLite's does: exact, no HNSW scan and no second connection, kept
current from the namespaces' generations (read by the snapshot's first statement), bounded by
``MATRIX_MAX_CHUNKS``, and read through the search's own connection (row-level security)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import RecordingEmbedder, fill, write
from test_pg_access import Server, db, grant, memdex, two_agents  # noqa: F401 - fixtures
from test_pg_search import FixedQuery, _record_statements

from indexer import make_settings, open_index
from indexer.embedding.http_client import EndpointError
from indexer.errors import UsageError
from indexer.retrieval import warm
from indexer.retrieval.filters import make_filters
from indexer.retrieval.matrix import NumpyVectors
from indexer.store.postgres import search as pg_search

pytestmark = pytest.mark.postgres


def _indexed(root: Path, url: str) -> Any:
    fill(root)
    settings = make_settings(root, url, namespace=f"test-{uuid.uuid4().hex[:10]}")
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as memory:
        memory.sync()
    return settings


def _server_vectors(memory: Any) -> dict[int, bytes]:
    """chunk id -> vector bytes of the searched namespaces, as the server holds them now."""
    with memory.engine.search_snapshot():
        ids = [cid for cid, _ in memory.store.search_chunk_hashes().pairs]
        found, rows = memory.store.vectors_of(ids)
    return {int(cid): row.astype(np.float32).tobytes() for cid, row in zip(found, rows)}


def _matrix(memory: Any) -> dict[int, bytes]:
    vectors = memory._vectors.matrix.vectors
    return {int(cid): row.tobytes() for cid, row in zip(vectors.ids, vectors.matrix)}


def test_a_warm_search_scans_the_matrix_and_follows_another_writer(root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the second search: no HNSW scan, no second connection; another writer's new chunk
    is found by the vector half alone, and only its row is fetched."""
    settings = _indexed(root, pg_url)
    query = FixedQuery(RecordingEmbedder().embed(["penicillin allergy"])[0])
    with open_index(settings, embedder=query) as memory:
        assert memory.search("penicillin allergy", mode="hybrid")  # the first: HNSW, on its own connection
        assert memory._vectors.matrix is None
        second = memory.search("penicillin allergy", mode="hybrid")
        assert memory._vectors.matrix is not None and _matrix(memory) == _server_vectors(memory)
        sent = _record_statements(monkeypatch)
        assert memory.search("penicillin allergy", mode="hybrid") == second
        assert not [s for s in sent if "hnsw" in s or "<=>" in s or "pg_export_snapshot" in s], sent
        # BEGIN with the totals, generations and meta, and bm25 in the same string (store/postgres/first.py);
        # the rows read back; COMMIT.
        assert len(sent) == 3 and sent[0].startswith("BEGIN") and sent[-1] == "COMMIT", sent
        assert "FROM namespaces" in sent[0] and "FROM unnest(" in sent[0], sent
        assert memory.engine.vector_side._conn is None
        sent.clear()

        write(root, "notes/new.md", "# Zebra\n\nThe zebra crossing on Elm street.\n")
        with open_index(settings, write=True, embedder=RecordingEmbedder()) as writer:  # its own connection
            assert writer.sync().reindexed == 1
        fetched: list[int] = []
        original = pg_search.PgSearch.vectors_by_pairs

        def counting(self: Any, pairs: Any) -> Any:
            fetched.append(len(pairs))
            return original(self, pairs)

        monkeypatch.setattr(pg_search.PgSearch, "vectors_by_pairs", counting)
        refreshes = memory._vectors.matrix.refreshes
        query.vector = _server_vector_of(pg_url, settings.namespace_name, "notes/new.md")
        hits = memory.search("qwzx", mode="hybrid")  # no word of it is indexed: only vectors find it
        assert hits and hits[0].path == "notes/new.md", [h.path for h in hits]
        assert fetched == [1] and memory._vectors.matrix.refreshes == refreshes + 1
        assert _matrix(memory) == _server_vectors(memory)


def _server_vector_of(url: str, namespace: str, path: str) -> np.ndarray:
    with psycopg.connect(url) as conn:
        (text,) = conn.execute(
            "SELECT v.embedding::text FROM memdex.chunk_vectors_16 v JOIN memdex.chunks c ON c.id = v.chunk_id "
            "JOIN memdex.namespaces n ON n.id = c.ns WHERE n.name = %s AND c.path = %s",
            (namespace, path),
        ).fetchone()
    return np.asarray([float(x) for x in text.strip("[]").split(",")], dtype=np.float32)


def test_namespaces_over_the_bound_keep_the_hnsw_scan(root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the bound the matrix is used; one chunk over it, warm searches scan HNSW in parallel
    and a matrix already loaded is dropped (memory stays bounded)."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        with memory.engine.search_snapshot():
            chunks = memory.store.searched_chunks()
        monkeypatch.setattr(warm, "MATRIX_MAX_CHUNKS", chunks)
        memory.search("penicillin allergy", mode="hybrid")
        exact = memory.search("penicillin allergy", mode="hybrid")
        assert memory._vectors.matrix is not None and memory.engine.vector_side._conn is None
        monkeypatch.setattr(warm, "MATRIX_MAX_CHUNKS", chunks - 1)
        sent = _record_statements(monkeypatch)
        assert [r.path for r in memory.search("penicillin allergy", mode="hybrid")] == [r.path for r in exact]
        assert memory._vectors.matrix is None and memory.engine.vector_side._conn is not None
        assert [s for s in sent if "hnsw.ef_search" in s], sent
        sent.clear()
        memory.search("penicillin allergy", mode="hybrid")  # still over: the first statement exports the snapshot
        assert "pg_export_snapshot()" in sent[0] and not [s for s in sent if s.startswith("SELECT pg_export")], sent


def test_a_role_s_matrix_holds_only_its_granted_namespaces(db: Server, two_agents: dict[str, Any]) -> None:  # noqa: F811
    """bob searches every namespace he may read: his matrix never holds ns-a's vectors until
    ns-a is granted to him, and loses them when it is revoked."""
    ids = two_agents["ids"]
    across = replace(two_agents["b"], search_namespaces=("*",))

    def namespaces_in_matrix(memory: Any) -> set[int]:
        held = set(_matrix(memory))
        rows = db.owner_sql("SELECT id, ns FROM memdex.chunks")
        return {ns for cid, ns in rows if cid in held}

    with open_index(across, embedder=RecordingEmbedder()) as memory:
        memory.search("kayak", mode="hybrid")
        memory.search("kayak", mode="hybrid")
        assert namespaces_in_matrix(memory) == {ids["ns-b"]}
        grant(db, "ns-a", two_agents["bob"], "--read-only")
        hits = memory.search("kayak", mode="hybrid")
        assert namespaces_in_matrix(memory) == {ids["ns-a"], ids["ns-b"]}
        assert {h.namespace for h in hits} == {"ns-a", "ns-b"}
        assert _matrix(memory) == _server_vectors(memory)
        revoked = memdex("--db", db.owner_url, "--namespace", "ns-a", "revoke", two_agents["bob"])
        assert revoked.exit_code == 0, revoked.output
        hits = memory.search("kayak", mode="hybrid")
        assert namespaces_in_matrix(memory) == {ids["ns-b"]}
        assert {h.namespace for h in hits} == {"ns-b"}


class Switchable(RecordingEmbedder):
    """A model that can become another of the same size (``other``): same texts, other vectors."""

    def other(self, dimensions: int = 16) -> Switchable:
        self.model_id, self.sign, self.dimensions = "test/other", -1, dimensions
        return self

    sign = 1

    def embed(self, texts: Any) -> np.ndarray:
        return self.sign * super().embed(texts)


@pytest.mark.parametrize("dimensions", [16, 8])
def test_a_model_change_reloads_the_matrix(root: Path, pg_url: str, dimensions: int) -> None:
    """Re-indexed with another model (same texts; the same size, or another): every row is
    the new model's, though no chunk's text changed."""
    settings = _indexed(root, pg_url)
    model = Switchable()
    with open_index(settings, embedder=model) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        memory.search("penicillin allergy", mode="hybrid")
        before = _matrix(memory)
        with open_index(settings, write=True, embedder=Switchable().other(dimensions)) as writer:
            writer.sync()
        model.other(dimensions)  # this process is configured with the new model too
        memory.vector_matrix()  # as a warm search's snapshot finds it
        after = _matrix(memory)
        assert after == _server_vectors(memory)
        assert len(after) == len(before) and not set(after.values()) & set(before.values())
        assert memory._vectors.matrix.vectors.matrix.shape == (len(before), dimensions)
        assert isinstance(memory._vectors.matrix.vectors, NumpyVectors)
        assert memory.search("allergy", mode="hybrid", limit=1)[0].path == "MEMORY.md"


def test_a_lost_connection_reloads_the_matrix(root: Path, pg_url: str) -> None:
    """The server dropped the search's connection (a restart: maybe restored from a backup):
    the retried search loads the matrix again from the new connection."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        expected = memory.search("penicillin allergy", mode="hybrid")
        loaded = memory._vectors.matrix
        pid = memory.store.connection.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchall() == [(True,)]
        assert memory.search("penicillin allergy", mode="hybrid") == expected
        assert memory._vectors.matrix is not None and memory._vectors.matrix is not loaded
        assert memory.store.connection.info.backend_pid != pid


def test_warm_searches_find_what_sqlites_warm_searches_find(root: Path, pg_url: str) -> None:
    """Both engines' warm processes scan the same vectors exactly, and bm25 is FTS5's on both:
    the same hits, lines and scores."""
    settings = _indexed(root, pg_url)
    local = make_settings(root)
    with open_index(local, write=True, embedder=RecordingEmbedder()) as memory:
        memory.sync()
    queries = ["penicillin allergy", "bike to the lake", "tomatoes basil", "qwzx"]
    found = []
    for engine in (local, settings):
        with open_index(engine, embedder=RecordingEmbedder()) as memory:
            memory.search("warm up", mode="hybrid")
            found.append([
                [(h.path, h.start_line, h.end_line, round(h.score, 6)) for h in memory.search(q, mode=mode, filters=f)]
                for q in queries
                for mode, f in (("hybrid", None), ("vector", None), ("hybrid", make_filters(path_prefix="daily")))
            ])  # fmt: skip
            assert memory._vectors.matrix is not None
    assert found[0] == found[1] and sum(map(bool, found[0])) >= 10


def _counting_fetches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(pairs asked, rows found) of each fetch of matrix rows from now on."""
    fetched: list[tuple[int, int]] = []
    real = pg_search.PgSearch.vectors_by_pairs

    def counting(self: Any, pairs: Any) -> Any:
        found = real(self, pairs)
        fetched.append((len(pairs), len(found[0])))
        return found

    monkeypatch.setattr(pg_search.PgSearch, "vectors_by_pairs", counting)
    return fetched


def test_a_meta_change_searches_do_not_use_keeps_the_matrix(root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: a meta key that searches do not read (a writer's record, refreshed daily) made
    the search run again, and the retry dropped the whole matrix, to load every vector again."""
    settings = _indexed(root, pg_url)
    fetched = _counting_fetches(monkeypatch)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        for _ in range(3):
            memory.search("penicillin allergy", mode="hybrid")
        loaded = memory._vectors.matrix
        assert loaded is not None and len(fetched) == 1
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute(
                "INSERT INTO memdex.meta(ns, key, value) SELECT id, 'session_max_file_bytes@other:/r', '1:1:1' "
                "FROM memdex.namespaces WHERE name = %s", (settings.namespace_name,),
            )  # fmt: skip
        assert memory.search("penicillin allergy", mode="hybrid")
        assert memory._vectors.matrix is loaded and len(fetched) == 1


def test_a_searched_namespace_of_another_model_is_not_asked_for_again(root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: a searched namespace whose vectors are in another model's table was asked for
    again at every refresh (and warned about as chunks without vectors)."""
    settings = _indexed(root / "a", pg_url)
    fill(root / "b", {f"notes/n{i}.md": f"# N{i}\n\nbike lake note {i}\n" for i in range(30)})
    other = make_settings(root / "b", pg_url, namespace=f"test-{uuid.uuid4().hex[:10]}")
    with open_index(other, write=True, embedder=RecordingEmbedder(dimensions=8, model_id="test/small")) as writer:
        writer.sync()
    fetched = _counting_fetches(monkeypatch)
    reader = replace(settings, search_namespaces=(settings.namespace_name, other.namespace_name))
    with open_index(reader, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        memory.search("penicillin allergy", mode="hybrid")
        write(settings.root, "notes/new.md", "# New\n\nzebra crossing\n")
        with open_index(settings, write=True, embedder=RecordingEmbedder()) as writer:
            writer.sync()
        memory.search("zebra", mode="hybrid")
    assert len(fetched) == 2 and fetched[1] == (1, 1), fetched  # the new chunk alone
    assert all(asked == found for asked, found in fetched)


def test_the_bound_is_smaller_for_a_larger_model() -> None:
    """Review: the bound counted chunks, so a model of 1,024 dimensions could keep 1 GB."""
    assert warm.matrix_bound(16) == warm.matrix_bound(384) == warm.MATRIX_MAX_CHUNKS
    assert warm.matrix_bound(1024) * 1024 <= warm.MATRIX_MAX_CHUNKS * 384


def test_the_matrix_loads_in_blocks(root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: the load held every row of the server's answer beside the matrix; it reads
    LOAD_BLOCK ids at a time, and the matrix is the same."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        memory.search("penicillin allergy", mode="hybrid")
        whole = _matrix(memory)
    monkeypatch.setattr(pg_search, "LOAD_BLOCK", 3)
    sent = _record_statements(monkeypatch)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        memory.search("penicillin allergy", mode="hybrid")
        assert _matrix(memory) == whole and len(whole) > 3
    loads = [s for s in sent if s.startswith("SELECT chunk_id, embedding FROM")]
    assert len(loads) == -(-len(whole) // 3)


def _sync(settings: Any) -> None:
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as writer:
        writer.sync()


def _chunks(url: str, namespace: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM memdex.chunks c JOIN memdex.namespaces n ON n.id = c.ns WHERE n.name = %s", (namespace,)
        ).fetchone()[0]


def test_a_write_to_one_namespace_reads_again_only_its_chunks(root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A matrix of two namespaces, after a write to one (a new file, an edit, a delete): the
    refresh reads that namespace's (id, hash) pairs alone, and the matrix is the server's."""
    a = _indexed(root / "a", pg_url)
    fill(root / "b", {f"notes/n{i}.md": f"# N{i}\n\nbike lake note {i}\n" for i in range(12)})
    b = make_settings(root / "b", pg_url, namespace=f"test-{uuid.uuid4().hex[:10]}")
    _sync(b)
    read: list[Any] = []
    real = pg_search.PgSearch.search_chunk_hashes

    def recording(self: Any, since: Any = None) -> Any:
        found = real(self, since)
        read.append(found)
        return found

    monkeypatch.setattr(pg_search.PgSearch, "search_chunk_hashes", recording)
    reader = replace(a, search_namespaces=(a.namespace_name, b.namespace_name))
    with open_index(reader, embedder=RecordingEmbedder()) as memory:
        memory.search("bike lake", mode="hybrid")
        memory.search("bike lake", mode="hybrid")
        assert len(read) == 1 and read[0].changed is None and len(read[0].pairs) == len(_matrix(memory))
        write(root / "b", "notes/n0.md", "# N0\n\nzebra crossing\n")
        write(root / "b", "notes/new.md", "# New\n\nzebra lake\n")
        (root / "b" / "notes" / "n1.md").unlink()
        _sync(b)
        assert {h.path for h in memory.search("zebra", mode="hybrid")} >= {"notes/n0.md", "notes/new.md"}
        assert len(read) == 2 and len(read[1].changed) == 1, read
        assert len(read[1].pairs) == _chunks(pg_url, b.namespace_name) < len(_matrix(memory))
        assert _matrix(memory) == _server_vectors(memory)


def test_a_refresh_sends_no_meta_statement_of_its_own(root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The refresh after a write reads meta from the snapshot's first statement (no round trip)."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        memory.search("penicillin allergy", mode="hybrid")
        write(root, "notes/new.md", "# Zebra\n\nThe zebra crossing on Elm street.\n")
        _sync(settings)
        refreshes = memory._vectors.matrix.refreshes
        sent = _record_statements(monkeypatch)
        assert memory.search("zebra", mode="hybrid")[0].path == "notes/new.md"
        assert memory._vectors.matrix.refreshes == refreshes + 1
    assert not [s for s in sent if "FROM meta WHERE ns = %s" in s], sent
    assert _matrix(memory) == _server_vectors(memory)


def test_a_search_that_sends_nothing_still_checks_what_it_assumed(root: Path, pg_url: str) -> None:
    """A warm search assumes the last snapshot's state until it sends a statement. A vector
    search of an empty namespace sends none (no candidates, no rows to read back): its
    snapshot still checks the state at its end, and a write since is found."""
    settings = _indexed(root, pg_url)
    for path in list(root.rglob("*.md")):
        path.unlink()
    _sync(settings)
    query = FixedQuery(RecordingEmbedder().embed(["zebra crossing"])[0])
    with open_index(settings, embedder=query) as memory:
        assert memory.search("zebra", mode="vector") == []
        assert memory.search("zebra", mode="vector") == [] and memory._vectors.matrix is not None
        write(root, "notes/new.md", "# Zebra\n\nzebra crossing\n")
        _sync(settings)
        assert [h.path for h in memory.search("zebra", mode="vector")] == ["notes/new.md"]


def test_a_same_size_model_change_that_keeps_every_chunk_reloads_the_matrix(root: Path, pg_url: str) -> None:
    """Another model of the same size whose vectors replace the old ones with every chunk's id,
    text and the namespace's generation unchanged: only meta says so (MATRIX_META in the
    version), and every row is read again (no hash changed)."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        memory.search("penicillin allergy", mode="hybrid")
        before = _matrix(memory)
        with psycopg.connect(pg_url, autocommit=True) as other:
            ns = other.execute("SELECT id FROM memdex.namespaces WHERE name = %s", (settings.namespace_name,)).fetchone()[0]
            with other.transaction():
                other.execute("UPDATE memdex.chunk_vectors_16 SET embedding = (SELECT array_agg(-x)::vector FROM unnest(embedding::real[]) x) WHERE ns = %s", (ns,))
                other.execute("UPDATE memdex.meta SET value = 'test/other' WHERE ns = %s AND key = 'model'", (ns,))
        after = memory.vector_matrix()
        assert _matrix(memory) == _server_vectors(memory) and len(after.ids) == len(before)
        assert not set(_matrix(memory).values()) & set(before.values())


def test_a_loaded_matrix_is_dropped_only_a_tenth_over_the_bound(root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hysteresis: a loaded matrix is kept up to a tenth over the bound; once dropped, it is
    loaded again only at the bound (a set hovering at it would load and drop every vector)."""
    fill(root, {f"notes/n{i}.md": f"# N{i}\n\nbike lake note {i}\n" for i in range(30)})
    settings = make_settings(root, pg_url, namespace=f"test-{uuid.uuid4().hex[:10]}")
    _sync(settings)
    bound = _chunks(pg_url, settings.namespace_name)
    monkeypatch.setattr(warm, "MATRIX_MAX_CHUNKS", bound)

    def grow_to(total: int) -> None:
        for i in range(total - _chunks(pg_url, settings.namespace_name)):
            write(root, f"extra/e{uuid.uuid4().hex[:8]}.md", f"# E\n\nextra note {i}\n")
        for path in sorted((root / "extra").glob("*.md"))[: max(0, _chunks(pg_url, settings.namespace_name) - total)]:
            path.unlink()
        _sync(settings)
        assert _chunks(pg_url, settings.namespace_name) == total

    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("bike lake", mode="hybrid")
        memory.search("bike lake", mode="hybrid")
        assert memory._vectors.warm
        grow_to(bound + bound // 10)
        memory.search("bike lake", mode="hybrid")
        assert memory._vectors.warm  # a tenth over: kept
        grow_to(bound + bound // 10 + 1)
        memory.search("bike lake", mode="hybrid")
        assert not memory._vectors.warm  # dropped
        grow_to(bound + 1)
        memory.search("bike lake", mode="hybrid")
        assert not memory._vectors.warm  # not loaded again above the bound
        grow_to(bound)
        memory.search("bike lake", mode="hybrid")
        assert memory._vectors.warm


def test_vector_matrix_over_the_bound_is_a_clear_error(root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _indexed(root, pg_url)
    monkeypatch.setattr(warm, "MATRIX_MAX_CHUNKS", 1)
    with open_index(settings, embedder=RecordingEmbedder()) as memory, pytest.raises(UsageError, match="not kept in memory"):
        memory.vector_matrix()


def test_a_search_after_this_process_wrote_does_not_assume_the_state_before(
    root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer's own sync changes the state its next search would assume: that search reads
    its first statement first instead of finding the change and running again."""
    settings = _indexed(root, pg_url)
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        memory.search("penicillin allergy", mode="hybrid")
        write(root, "notes/new.md", "# Zebra\n\nThe zebra crossing on Elm street.\n")
        memory.sync()
        sent = _record_statements(monkeypatch)
        assert memory.search("zebra", mode="hybrid")[0].path == "notes/new.md"
        assert "ROLLBACK" not in sent and sent[0].startswith("BEGIN") and "FROM unnest(" not in sent[0], sent
        sent.clear()
        assert memory.search("zebra", mode="hybrid")[0].path == "notes/new.md"
    assert len(sent) == 3 and "FROM unnest(" in sent[0], sent  # the next one assumes again


def test_a_read_between_searches_keeps_the_assumed_first_statement(
    root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MCP server asks search_info (meta) after each search, and get reads meta too: a
    read is not a write, so the next search still sends its first statement with bm25
    (review: any use of the connection outside a snapshot dropped it, one round trip more)."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        memory.search("penicillin allergy", mode="hybrid")
        assert memory.search_info()["model"]
        sent = _record_statements(monkeypatch)
        memory.search("penicillin allergy", mode="hybrid")
    assert len(sent) == 3 and "FROM unnest(" in sent[0], sent


class CountingQueries(RecordingEmbedder):
    """A local model's query embedding, counted; ``down``: a remote endpoint that fails."""

    def __init__(self, *, remote: bool = False) -> None:
        super().__init__()
        self.remote, self.queries, self.down = remote, 0, False

    def embed_query(self, text: str) -> np.ndarray:
        self.queries += 1
        if self.down:
            raise EndpointError("the embedding endpoint timed out after 10 s")
        return self.embed([text])[0]


@pytest.mark.parametrize("remote", [False, True], ids=["local", "remote down"])
def test_a_search_that_runs_again_embeds_its_query_once(root: Path, pg_url: str, remote: bool) -> None:
    """Another writer's sync changes the state a warm search assumed: it runs again, with the
    query's vector of its first run (review: it embedded again; a remote endpoint that was down
    was asked twice, two timeouts before the keyword results)."""
    settings = _indexed(root, pg_url)
    embedder = CountingQueries(remote=remote)
    with open_index(settings, embedder=embedder) as memory:
        for _ in range(3):
            memory.search("penicillin allergy", mode="hybrid")
        with open_index(settings, write=True, embedder=RecordingEmbedder()) as other:
            write(root, "notes/new.md", "# Zebra\n\nThe zebra crossing on Elm street.\n")
            other.sync()
        embedder.queries, embedder.down = 0, remote
        hits = memory.search("zebra crossing", mode="hybrid")
        assert embedder.queries == 1
        assert hits[0].path == "notes/new.md"
        assert (memory.degraded is not None) == remote
