"""PostgreSQL's hybrid search path: from a process's second hybrid search on, its vector
half scans the in-memory matrix (tests/test_pg_matrix.py) or, while the searched namespaces
are over ``MATRIX_MAX_CHUNKS`` (``hnsw_always`` here), the HNSW index on a second connection,
in parallel with the keyword half, inside the search's own read snapshot
(store/postgres/parallel.py); it sends few statements."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import RecordingEmbedder, fill

from indexer import make_settings, open_index
from indexer.errors import ModelError
from indexer.retrieval import warm
from indexer.store.postgres import nowait
from indexer.store.postgres import search as pg_search

pytestmark = pytest.mark.postgres


@pytest.fixture
def hnsw_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every namespace is over the in-memory matrix's bound: warm searches scan HNSW too."""
    monkeypatch.setattr(warm, "MATRIX_MAX_CHUNKS", 0)


class FixedQuery(RecordingEmbedder):
    """Embeds chunks like RecordingEmbedder; a query gets ``vector``."""

    def __init__(self, vector: np.ndarray) -> None:
        super().__init__()
        self.vector = vector

    def embed_query(self, text: str) -> np.ndarray:
        return self.vector


def _indexed(root: Path, url: str) -> Any:
    fill(root)
    settings = make_settings(root, url, namespace=f"test-{uuid.uuid4().hex[:10]}")
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as memory:
        memory.sync()
    return settings


def _soul_vector(url: str, namespace: str) -> np.ndarray:
    with psycopg.connect(url) as conn:
        (text,) = conn.execute(
            "SELECT v.embedding::text FROM memdex.chunk_vectors_16 v JOIN memdex.chunks c ON c.id = v.chunk_id "
            "JOIN memdex.namespaces n ON n.id = c.ns WHERE n.name = %s AND c.path = 'SOUL.md'",
            (namespace,),
        ).fetchone()
    return np.asarray([float(x) for x in text.strip("[]").split(",")], dtype=np.float32)


def test_the_vector_half_reads_the_searchs_snapshot_not_a_later_one(
    root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
, hnsw_always: None) -> None:
    """A file deleted by another writer after the search began is still found by the
    vector half (on the second connection) and read back: both halves see one snapshot."""
    settings = _indexed(root, pg_url)
    namespace = settings.namespace_name
    original = pg_search.PgSearch.nearest_job
    jobs = []

    def delete_meanwhile(self: Any, vector: np.ndarray, limit: int) -> Any:
        job = original(self, vector, limit)
        jobs.append(job)
        with psycopg.connect(pg_url, autocommit=True) as other:  # committed before the scan starts
            other.execute(
                "DELETE FROM memdex.files WHERE path = 'SOUL.md' AND ns = (SELECT id FROM memdex.namespaces WHERE name = %s)",
                (namespace,),
            )
        return job

    monkeypatch.setattr(pg_search.PgSearch, "nearest_job", delete_meanwhile)
    # No word of the query is indexed: only the vector half can find SOUL.md.
    with open_index(settings, embedder=FixedQuery(_soul_vector(pg_url, namespace))) as memory:
        memory.search("qwzx", mode="hybrid")  # the first scans on its own connection
        assert jobs == []
        results = memory.search("qwzx", mode="hybrid")
        assert len(jobs) == 1 and jobs[0] is not None
        assert results and results[0].path == "SOUL.md"
        assert "SOUL.md" not in {r.path for r in memory.search("qwzx", mode="hybrid")}  # gone since


def test_a_dropped_vector_connection_is_replaced_on_the_retry(root: Path, pg_url: str, hnsw_always: None) -> None:
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        first = memory.search("penicillin allergy", mode="hybrid")
        pid = memory.engine.vector_side._conn.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:  # the server drops it (as on a restart)
            killed = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchall()
        assert killed == [(True,)]
        assert memory.search("penicillin allergy", mode="hybrid") == first


def test_a_hybrid_search_sends_four_statements_on_its_connection(root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, hnsw_always: None) -> None:
    """BEGIN with meta, the totals and the snapshot's export; bm25; the rows read back;
    COMMIT. The HNSW scan is one more, sent on the second connection. Meta and the terms'
    counts were read by the last search: the index has not changed since (a sync's time
    stamp in meta changes nothing a search reads)."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        memory.search("penicillin allergy", mode="hybrid")
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute(
                "UPDATE memdex.meta SET value = '99' FROM memdex.namespaces n "
                "WHERE meta.ns = n.id AND n.name = %s AND meta.key = 'last_sync'", (settings.namespace_name,),
            )  # fmt: skip
        sent = _record_statements(monkeypatch)
        assert memory.search("penicillin allergy", mode="hybrid")
    scans = [s for s in sent if s.startswith("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT")]
    assert len(scans) == 1 and len(sent) == 5, sent
    assert sent[0].startswith("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT") and sent[-1] == "COMMIT"
    assert "pg_export_snapshot()" in sent[0] and "FROM meta" in sent[0]
    assert not [s for s in sent if "FROM postings WHERE term = ANY" in s], sent


def test_a_search_served_meta_that_changed_since_runs_again_with_the_new(root: Path, pg_url: str) -> None:
    """A search is served meta as the last search read it; its snapshot reads meta again,
    and when what the search depends on changed (another model), it runs again on that."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        expected = memory.search("penicillin allergy", mode="hybrid")
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute(
                "UPDATE memdex.meta SET value = 'test/other' FROM memdex.namespaces n "
                "WHERE meta.ns = n.id AND n.name = %s AND meta.key = 'model'", (settings.namespace_name,),
            )  # fmt: skip
            other.execute(
                "UPDATE memdex.meta SET value = '99' FROM memdex.namespaces n "
                "WHERE meta.ns = n.id AND n.name = %s AND meta.key = 'last_sync'", (settings.namespace_name,),
            )  # fmt: skip
        with pytest.raises(ModelError, match="test/other"):  # served the old meta, run again on the new
            memory.search("penicillin allergy", mode="hybrid")
        assert memory.search("penicillin allergy", mode="keyword")  # its snapshot keeps the new meta
        with pytest.raises(ModelError, match="test/other"):  # served it: the check fails before the snapshot
            memory.search("penicillin allergy", mode="hybrid")
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute(
                "UPDATE memdex.meta SET value = 'test/recording' FROM memdex.namespaces n "
                "WHERE meta.ns = n.id AND n.name = %s AND meta.key = 'model'", (settings.namespace_name,),
            )  # fmt: skip
        # Not served what a model check failed on: meta read again.
        assert memory.search("penicillin allergy", mode="hybrid") == expected
        assert memory.search("penicillin allergy", mode="hybrid") == expected


def test_term_counts_are_read_again_after_a_write_to_a_searched_namespace(root: Path, pg_url: str) -> None:
    """The counts a search keeps are for one state of the namespaces it searches: another
    writer's change is counted by the next search, which scores as a fresh process does."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        before = memory.search("penicillin zebra", mode="keyword", budget_lines=None)
        (root / "notes" / "zoo.md").write_text("# Zoo\n\n" + "".join(f"zebra number {i} grazes\n\n" for i in range(12)))
        with open_index(settings, write=True, embedder=RecordingEmbedder()) as writer:
            writer.sync()
        after = memory.search("penicillin zebra", mode="keyword", budget_lines=None)
        with open_index(settings, embedder=RecordingEmbedder()) as fresh:
            expected = fresh.search("penicillin zebra", mode="keyword", budget_lines=None)
    assert after == expected
    penicillin = [r.score for r in before if "enicillin" in r.snippet]
    assert penicillin and penicillin != [r.score for r in after if "enicillin" in r.snippet]  # its IDF changed


def test_term_counts_are_read_again_after_an_edit_that_keeps_the_chunk_and_token_counts(root: Path, pg_url: str) -> None:
    """A word swapped for another changes postings, not the namespace's chunk or token
    counts: the write still bumps the namespace's generation, which the counts kept follow."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        assert not memory.search("penicillin dog", mode="keyword", budget_lines=None)[1:]  # counted: no chunk has "dog"
        memory_md = root / "MEMORY.md"
        memory_md.write_text(memory_md.read_text().replace("Pangur the cat.", "Pangur the dog."))
        with open_index(settings, write=True, embedder=RecordingEmbedder()) as writer:
            assert writer.sync().reindexed == 1
        after = memory.search("penicillin dog", mode="keyword", budget_lines=None)
        with open_index(settings, embedder=RecordingEmbedder()) as fresh:
            assert after == fresh.search("penicillin dog", mode="keyword", budget_lines=None)


def _set_model(url: str, namespace: str, model: str) -> None:
    with psycopg.connect(url, autocommit=True) as other:
        other.execute(
            "UPDATE memdex.meta SET value = %s FROM memdex.namespaces n "
            "WHERE meta.ns = n.id AND n.name = %s AND meta.key = 'model'", (model, namespace),
        )  # fmt: skip


def test_a_bulk_batch_that_keeps_the_counts_still_moves_the_generation(root: Path, pg_url: str) -> None:
    """Review: a bulk load's batch bumped the generation only when its net chunk or token
    count changed, so a batch that only rewrote a file with as many chunks and tokens left a
    searcher's kept term counts (and matrix) on the old state."""
    from indexer.sources.base import Chunk, text_hash
    from indexer.sources.discover import FileStamp
    from indexer.store.records import FileRecord

    def write(store: Any, path: str, text: str, seed: int) -> None:
        record = FileRecord(path=path, kind="note", date=None, stamp=FileStamp(len(text), 1, 1, 1),
                            hash=text_hash(text), frontmatter={}, title="note")  # fmt: skip
        chunk = Chunk(start_line=1, end_line=1, heading="", text=text, embed_text=text, hash=text_hash(text))
        vector = np.random.default_rng(seed).standard_normal((1, 16)).astype(np.float32)
        store.replace_file(record, [chunk], vector / np.linalg.norm(vector), indexed_at_ns=seed)

    settings = make_settings(root, pg_url, namespace=f"test-{uuid.uuid4().hex[:10]}")
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as writer:
        store = writer.store
        store.rebuild_vectors(16, {})
        with store.bulk_load(files=60):
            assert store._batch is not None  # a bulk load's batches
            for i in range(60):
                write(store, f"f{i}.md", f"alpha beta cat {i}" if i < 3 else f"alpha beta filler{i} word", i)
            store._batch.commit()
            with open_index(settings, embedder=RecordingEmbedder()) as reader:
                reader.search("cat dog", mode="keyword", budget_lines=None)  # counts "dog": no chunk
                write(store, "f5.md", "alpha beta dog word", 99)  # as many chunks and tokens as before
                store._batch.commit()
                after = reader.search("cat dog", mode="keyword", budget_lines=None)
        with open_index(settings, embedder=RecordingEmbedder()) as fresh:
            expected = fresh.search("cat dog", mode="keyword", budget_lines=None)
    assert [(r.path, r.score) for r in after] == [(r.path, r.score) for r in expected]
    assert "f5.md" in [r.path for r in after]


def test_a_search_served_meta_without_a_model_reads_it_again(root: Path, pg_url: str) -> None:
    """Review: a reader whose last search ran before the first sync was served meta with no
    model, so its next vector search found nothing without asking the server."""
    settings = make_settings(root, pg_url, namespace=f"test-{uuid.uuid4().hex[:10]}")
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as writer:
        with open_index(settings, embedder=RecordingEmbedder()) as reader:
            assert reader.search("penicillin allergy", mode="hybrid") == []  # nothing indexed yet
            fill(root)
            writer.sync()
            found = reader.search("penicillin allergy", mode="vector")
        with open_index(settings, embedder=RecordingEmbedder()) as fresh:
            assert found and found == fresh.search("penicillin allergy", mode="vector")


def test_a_search_served_another_model_reads_meta_again_before_refusing(root: Path, pg_url: str) -> None:
    """Review: after the index was rebuilt with the configured model, the next search was
    served the old model (kept by a keyword search) and refused: a spurious ModelError."""
    settings = _indexed(root, pg_url)
    _set_model(pg_url, settings.namespace_name, "test/other")
    with open_index(settings, embedder=RecordingEmbedder()) as reader:
        with pytest.raises(ModelError, match="test/other"):
            reader.search("penicillin allergy", mode="hybrid")
        assert reader.search("penicillin allergy", mode="keyword")  # its snapshot keeps test/other
        _set_model(pg_url, settings.namespace_name, "test/recording")  # as a rebuild with it would
        assert reader.search("penicillin allergy", mode="hybrid")


def _record_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements sent from now on, on either connection."""
    sent: list[str] = []
    original, send = psycopg.Cursor.execute, nowait.send

    def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return original(self, query, *args, **kwargs)

    def sent_raw(pgconn: Any, text: bytes) -> None:
        sent.append(text.decode())
        send(pgconn, text)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    monkeypatch.setattr(nowait, "send", sent_raw)
    return sent


def test_a_first_search_opens_no_second_connection_and_exports_no_snapshot(
    root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
, hnsw_always: None) -> None:
    """A one-shot ``memdex search`` (a process's first hybrid search) scans on its own
    connection: no second handshake, no exported snapshot; nor does a keyword search."""
    settings = _indexed(root, pg_url)
    sent = _record_statements(monkeypatch)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        keyword = memory.search("penicillin allergy", mode="keyword")
        hybrid = memory.search("penicillin allergy", mode="hybrid")
        assert keyword and hybrid
        assert memory.engine.vector_side._conn is None
        assert not [s for s in sent if "pg_export_snapshot" in s or "SET TRANSACTION SNAPSHOT" in s], sent
        assert len([s for s in sent if s.startswith("BEGIN")]) == 2  # one read snapshot per search, folded
        assert memory.search("penicillin allergy", mode="hybrid") == hybrid  # the second: in parallel
        assert memory.engine.vector_side._conn is not None


def test_a_scan_nobody_read_leaves_the_second_connection_usable(root: Path, pg_url: str, hnsw_always: None) -> None:
    """A search that fails after its scan was sent never reads the scan's rows: the next
    search reads and drops them first, and gets its own."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        expected = memory.search("penicillin allergy", mode="hybrid")
        vector = memory.embedder.embed(["penicillin allergy"])[0]
        with pytest.raises(RuntimeError), memory.engine.search_snapshot():
            assert memory.engine.start_nearest(None, vector, 200) is not None
            raise RuntimeError("the keyword half failed")
        assert memory.engine.vector_side._pending is not None
        conn = memory.engine.vector_side._conn
        assert memory.search("penicillin allergy", mode="hybrid") == expected
        assert memory.engine.vector_side._conn is conn and conn.info.transaction_status == 0


def test_a_hybrid_search_answers_after_the_server_dropped_both_connections(
    root: Path, pg_url: str, pg_server_alive: Any
, hnsw_always: None) -> None:
    """A restart (or an idle-session timeout) closes the search's connection and the vector
    scan's: the retry replaces the first, and the scan falls back to it (review: it failed)."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        first = [r.path for r in memory.search("penicillin allergy", mode="hybrid")]
        assert memory.engine.vector_side._conn is not None
        pg_server_alive.restart()
        assert [r.path for r in memory.search("penicillin allergy", mode="hybrid")] == first
        assert [r.path for r in memory.search("penicillin allergy", mode="hybrid")] == first


def test_a_role_limited_to_one_connection_still_gets_hybrid_results(root: Path, pg_url: str, pg_server: Any, hnsw_always: None) -> None:
    """The second connection only speeds a search up: where it cannot be opened, the scan
    runs on the search's own connection (review: the search failed)."""
    from click.testing import CliRunner

    from indexer.cli.app import cli

    settings = _indexed(root, pg_url)
    role, password = f"one_{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:12]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' CONNECTION LIMIT 1")
    granted = CliRunner().invoke(cli, ["--db", pg_url, "--namespace", settings.namespace_name, "grant", role])
    assert granted.exit_code == 0, granted.output
    url = f"postgresql://{role}:{password}@{pg_server.host}:{pg_server.port}/memdex"
    with open_index(make_settings(root, url, namespace=settings.namespace_name), embedder=RecordingEmbedder()) as memory:
        keyword = [r.path for r in memory.search("penicillin allergy", mode="keyword")]
        hybrid = [r.path for r in memory.search("penicillin allergy", mode="hybrid")]
        assert keyword and hybrid and not memory.engine.vector_side.unavailable()  # the first: no second connection
        assert [r.path for r in memory.search("penicillin allergy", mode="hybrid")] == hybrid
        assert memory.engine.vector_side.unavailable()  # and the next searches do not try again at once
        assert [r.path for r in memory.search("penicillin allergy", mode="hybrid")] == hybrid


def _state_of(url: str, pid: int) -> str:
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row[0] if row else "gone"


def test_a_searchs_commit_is_not_waited_for_yet_ends_its_snapshot(root: Path, pg_url: str) -> None:
    """The read snapshot's COMMIT is sent without waiting for its answer: the server ends
    the transaction at once (no session left idle in transaction, holding back vacuum), and
    the answer is read at the connection's next use, by a search or a sync alike."""
    settings = _indexed(root, pg_url)
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as memory:
        before = memory.search("penicillin allergy", mode="hybrid")
        conn = memory.store._unsettled
        assert conn is not None and conn.pgconn.transaction_status == 1  # its answer is still to be read
        deadline = time.monotonic() + 10
        while _state_of(pg_url, conn.info.backend_pid) != "idle":
            assert time.monotonic() < deadline, "the server still holds the search's transaction"
            time.sleep(0.01)
        (root / "MEMORY.md").write_text("# Memory\n\nThe penicillin allergy note moved to notes/health.md.\n")
        assert memory.sync().reindexed == 1  # the connection's next use reads the answer first
        assert memory.store._unsettled is None and conn.info.transaction_status == 0
        assert memory.search("penicillin allergy", mode="hybrid") != before


def test_a_search_after_the_server_dropped_its_connection_mid_commit(root: Path, pg_url: str) -> None:
    """A connection the server dropped before the COMMIT's answer was read is replaced
    quietly: the next search answers (its snapshot had ended with the connection)."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        first = memory.search("penicillin allergy", mode="hybrid")
        pid = memory.store._unsettled.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchall() == [(True,)]
        assert memory.search("penicillin allergy", mode="hybrid") == first
        assert memory.store.connection.info.backend_pid != pid


def _whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the searched namespace held every chunk on the server (the shared test server has
    many), and enough of them for HNSW's first pass alone."""
    monkeypatch.setattr(pg_search.PgSearch, "_first_pass_alone", lambda self, limit: True)


def test_a_search_of_every_namespace_scans_hnsws_first_pass_alone(
    root: Path, own_pg_database: str, monkeypatch: pytest.MonkeyPatch
, hnsw_always: None) -> None:
    """When no other namespace's vectors can take places, the parallel scan is the HNSW
    search's first pass without the iterative scan's bookkeeping: the same rows. (In its own
    database: other tests' leftovers in the shared vector table would make the pass short.)"""
    settings = _indexed(root, own_pg_database)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")  # the second connection opens at the second
        vector = memory.embedder.embed(["penicillin allergy"])[0]
        with memory.engine.search_snapshot():
            expected = memory.store.vector_candidates(vector, 3)  # the iterative scan, on its own connection
        assert memory.store.search_ids() and len(expected) == 3
        _whole(monkeypatch)
        sent = _record_statements(monkeypatch)
        with memory.engine.search_snapshot():
            scan = memory.engine.start_nearest(None, vector, 3)
            assert scan.nearest(vector, 3) == expected  # None as the fallback source: it is not asked
    assert ["off" in s for s in sent if "hnsw.iterative_scan" in s] == [True], sent


def test_a_first_pass_that_comes_short_is_scanned_again_iteratively(
    root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
, hnsw_always: None) -> None:
    """Fewer rows than asked (here: a namespace smaller than the 200 candidates, as dead rows
    can make it) and the first pass alone is not exact: the iterative scan runs again."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        memory.search("penicillin allergy", mode="hybrid")
        expected = memory.search("penicillin allergy", mode="hybrid")
        _whole(monkeypatch)
        sent = _record_statements(monkeypatch)
        assert memory.search("penicillin allergy", mode="hybrid") == expected
    assert ["off" in s for s in sent if "hnsw.iterative_scan" in s] == [True, False], sent


def test_the_first_pass_alone_needs_every_namespace_and_twice_the_candidates(root: Path, pg_url: str) -> None:
    """Only where no other namespace's vectors can take places (the owner searching every
    chunk on the server) and the index holds twice the candidates, so that a small index
    is not scanned twice (its first pass always comes short)."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        store = memory.store
        with memory.engine.search_snapshot():
            chunks = store._totals()[0]
            assert chunks >= 4 and not store._snapshot.whole  # the shared test server has other namespaces
            store._snapshot.whole = True
            assert store._first_pass_alone(chunks // 2) and not store._first_pass_alone(chunks // 2 + 1)


def test_ctrl_c_right_after_the_snapshots_commit_is_sent_leaves_searches_working(
    root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The COMMIT handed to libpq, then Ctrl-C before the store notes it is unanswered: the
    connection is closed and the next search opens another (review: libpq stayed busy unknown
    to psycopg, and every later search failed with 'another command is already in progress')."""
    settings = _indexed(root, pg_url)
    send = nowait.send

    def interrupted(pgconn: Any, text: bytes) -> None:
        send(pgconn, text)
        if text == b"COMMIT":
            raise KeyboardInterrupt

    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        expected = memory.search("penicillin allergy", mode="keyword")
        monkeypatch.setattr(nowait, "send", interrupted)
        with pytest.raises(KeyboardInterrupt):
            memory.search("penicillin allergy", mode="keyword")
        monkeypatch.setattr(nowait, "send", send)
        assert memory.search("penicillin allergy", mode="keyword") == expected
        assert memory.search("penicillin allergy", mode="hybrid")


def test_the_read_snapshot_refuses_writes(root: Path, pg_url: str) -> None:
    """The snapshot's COMMIT is not waited for, so nothing may be written inside it: the
    transaction is READ ONLY, and a write fails at once rather than losing its commit error."""
    settings = _indexed(root, pg_url)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            with memory.engine.search_snapshot():
                memory.store.connection.execute("UPDATE memdex.meta SET value = value WHERE false")
        assert memory.search("penicillin allergy", mode="keyword")
