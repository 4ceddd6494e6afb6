"""PostgreSQL's write path. Bulk loads (store/postgres/bulk.py): a big first index of a
namespace writes its vectors without the HNSW index and builds it once at the end;
searches answer meanwhile (an exact scan); an index a dead loader left missing is built by
the next sync, unless another load is still running. Postings (migration 5): triggers, not a
foreign key, delete them with their chunks and refuse ones that name no chunk; an index
made before the migration keeps working after it.

Each test has its own database, so the vector table starts empty and no other test's rows
or loads take part.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import RecordingEmbedder, write

from indexer import make_settings, open_index
from indexer.indexing.check import CORRUPT, HEALTHY, check_index
from indexer.config.settings import Settings
from indexer.store.postgres import bulk
from indexer.store.postgres import connection as pg
from indexer.store.postgres.bulk import BULK_MIN_FILES

pytestmark = pytest.mark.postgres

DIMS = 16
TABLE = f"chunk_vectors_{DIMS}"


@pytest.fixture
def url(own_pg_database: str) -> Iterator[str]:
    """These tests follow the index's drop and build at their few rows: any row is past
    ``HNSW_MIN_ROWS`` here (test_pg_hnsw_threshold.py tests the threshold itself; a
    ``MonkeyPatch`` of its own: a test's ``monkeypatch.undo()`` keeps it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bulk, "HNSW_MIN_ROWS", 0)
        yield own_pg_database


def index_state(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
            (f"{TABLE}_hnsw",),
        ).fetchone()
    return "missing" if row is None else "valid" if row[0] else "invalid"


class WatchingEmbedder(RecordingEmbedder):
    """Looks at the HNSW index (and runs ``probe``) while the sync is under way."""

    def __init__(self, url: str, probe: Any = None) -> None:
        super().__init__(dimensions=DIMS)
        self.url, self.probe = url, probe
        self.states: list[str] = []
        self.probed: list[Any] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.states.append(index_state(self.url))
        if self.probe is not None:
            self.probed.append(self.probe())
        return super().embed(texts)


def folder(root: Path, files: int, *, tag: str = "") -> Path:
    for i in range(files):
        write(root, f"notes/n{i:03d}.md", f"# Note {i} {tag}\n\nThe heron number {i} waits by the {tag} pond.\n")
    return root


def sync(root: Path, url: str, namespace: str, embedder: RecordingEmbedder | None = None) -> Settings:
    settings = make_settings(root, url, namespace=namespace)
    with open_index(settings, write=True, embedder=embedder or RecordingEmbedder(dimensions=DIMS)) as memory:
        memory.sync()
    return settings


def vector_ids(settings: Settings, query: str) -> list[str]:
    with open_index(settings, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:
        return [hit.path for hit in memory.search(query, mode="vector", limit=5, budget_lines=None)]


def test_a_big_first_index_writes_without_the_hnsw_index_and_builds_it_at_the_end(
    tmp_path: Path, url: str
) -> None:
    small = sync(folder(tmp_path / "small", 3, tag="small"), url, "small")
    before = vector_ids(small, "heron small pond 1")
    assert index_state(url) == "valid"
    # While the big load runs, the other namespace's vector search still answers, and the same.
    embedder = WatchingEmbedder(url, probe=lambda: vector_ids(small, "heron small pond 1"))
    big = sync(folder(tmp_path / "big", BULK_MIN_FILES + 10), url, "big", embedder)
    assert embedder.states and set(embedder.states) == {"missing"}
    assert embedder.probed and all(found == before for found in embedder.probed)
    assert index_state(url) == "valid"
    with psycopg.connect(url) as conn:
        (rows,) = conn.execute(f"SELECT count(*) FROM memdex.{TABLE}").fetchone()
    assert rows == 3 + BULK_MIN_FILES + 10
    with psycopg.connect(url) as conn:  # the index built is one a search can use (63 rows: forced)
        conn.execute("SET enable_seqscan = off")
        plan = " ".join(row[0] for row in conn.execute(
            f"EXPLAIN SELECT chunk_id FROM memdex.{TABLE} ORDER BY embedding <=> %s::vector LIMIT 5",
            ("[" + ",".join(["0.25"] * DIMS) + "]",),
        ))  # fmt: skip
    assert f"{TABLE}_hnsw" in plan
    lite = make_settings(big.root, tmp_path / "lite.db")
    with open_index(lite, write=True, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:
        memory.sync()
    assert vector_ids(big, "heron number 7") == vector_ids(lite, "heron number 7")


def test_a_small_first_index_and_a_later_sync_write_through_the_index(tmp_path: Path, url: str) -> None:
    root = folder(tmp_path / "root", BULK_MIN_FILES - 1)
    embedder = WatchingEmbedder(url)
    sync(root, url, "one", embedder)
    assert set(embedder.states) == {"valid"}
    folder(root, BULK_MIN_FILES + 10, tag="again")  # many files, but the namespace is not empty
    embedder = WatchingEmbedder(url)
    sync(root, url, "one", embedder)
    assert set(embedder.states) == {"valid"}


def test_a_big_load_beside_other_namespaces_writes_through_the_index(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounded: with other namespaces' rows in the table, a load of more than
    BULK_MAX_FILES_SHARED files keeps the index (their searches never scan exactly for long);
    into an empty table the same load goes without it."""
    from indexer.store.postgres import bulk

    monkeypatch.setattr(bulk, "BULK_MAX_FILES_SHARED", BULK_MIN_FILES)
    sync(folder(tmp_path / "first", BULK_MIN_FILES + 1, tag="first"), url, "first", embedder := WatchingEmbedder(url))
    assert set(embedder.states) == {"missing"}  # the table was empty: bulk
    embedder = WatchingEmbedder(url)
    sync(folder(tmp_path / "second", BULK_MIN_FILES + 1, tag="second"), url, "second", embedder)
    assert embedder.states and set(embedder.states) == {"valid"}
    embedder = WatchingEmbedder(url)
    sync(folder(tmp_path / "third", BULK_MIN_FILES, tag="third"), url, "third", embedder)
    assert set(embedder.states) == {"missing"}  # within the bound
    assert index_state(url) == "valid"


def test_a_search_never_waits_long_behind_the_bulk_loads_drop_of_the_index(tmp_path: Path, url: str) -> None:
    """The DROP INDEX needs the table alone and every search of the table queues behind it
    while it waits (it waited up to 3 s). A transaction that read the table holds the DROP
    off; a search that arrives meanwhile answers within a short try, and the load, never
    getting the table, writes through the index."""
    import time

    sync(folder(tmp_path / "small", 3, tag="small"), url, "small")
    finished = threading.Event()
    failed: list[BaseException] = []

    def load() -> None:
        try:
            sync(folder(tmp_path / "big", BULK_MIN_FILES + 10), url, "big")
        except BaseException as exc:  # noqa: BLE001 - reported below
            failed.append(exc)
        finally:
            finished.set()

    waiting_drop = (
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE c.relname = %s AND l.mode = 'AccessExclusiveLock' AND NOT l.granted"
    )
    waits: list[float] = []
    with psycopg.connect(url) as blocker, psycopg.connect(url, autocommit=True) as watcher, \
            psycopg.connect(url, autocommit=True) as searcher:  # fmt: skip
        blocker.execute(f"SELECT count(*) FROM memdex.{TABLE}").fetchone()  # holds the table's read lock
        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        while not finished.is_set():
            if watcher.execute(waiting_drop, (TABLE,)).fetchone()[0]:  # a DROP is waiting now
                start = time.monotonic()
                searcher.execute(f"SELECT count(*) FROM memdex.{TABLE}").fetchone()
                waits.append(time.monotonic() - start)
        loader.join(60)
        blocker.rollback()
    assert not failed and waits, (failed, waits)
    assert max(waits) < 1.0, waits
    assert index_state(url) == "valid"


def test_a_bulk_loads_new_files_wait_for_no_answer(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The load is one pipeline: a new file's statements are sent and not waited for (the
    server writes while the sync prepares the next files). Counted: the times the client
    waits for answers while it writes files (a Sync or a fetch in pipeline mode, or a
    statement outside it). They were 3 a file (the upsert, the chunks already there, the
    file's own pipeline); now 2 a batch (its lock, and what the namespace holds)."""
    import traceback

    from psycopg import _pipeline_base

    from indexer.store.postgres import write as pg_write

    trips = [0]
    sync_, fetch = _pipeline_base.BasePipeline._enqueue_sync, _pipeline_base.BasePipeline._fetch_gen
    execute = psycopg.Cursor.execute

    def count(waits: bool) -> None:
        if waits and any(frame.name == "replace_file" for frame in traceback.extract_stack()):
            trips[0] += 1

    def counted_sync(self: Any) -> None:
        count(True)
        sync_(self)

    def counted_fetch(self: Any, *, flush: bool) -> Any:
        count(flush)  # a cursor's fetch in pipeline mode: flush, then wait for its answer
        return fetch(self, flush=flush)

    def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        count(self.connection._pipeline is None)
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(pg_write, "BATCH_FILES", 20)  # several batches, each committed without waiting
    files = 4 * BULK_MIN_FILES
    root = folder(tmp_path / "root", files)
    settings = make_settings(root, url, namespace="one")
    with open_index(settings, write=True, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:
        monkeypatch.setattr(_pipeline_base.BasePipeline, "_enqueue_sync", counted_sync)
        monkeypatch.setattr(_pipeline_base.BasePipeline, "_fetch_gen", counted_fetch)
        monkeypatch.setattr(psycopg.Cursor, "execute", counted_execute)
        report = memory.sync()
        monkeypatch.undo()
    assert report.reindexed == files and index_state(url) == "valid"
    assert 0 < trips[0] <= 3 * (files // 20), trips
    assert check(settings).exit_code == HEALTHY
    assert len(postings_of(url, "one")) == files


def test_an_index_a_dead_loader_left_missing_is_built_unless_a_load_still_runs(tmp_path: Path, url: str) -> None:
    root = folder(tmp_path / "root", 3)
    sync(root, url, "one")
    loader = psycopg.connect(url, autocommit=True)
    try:  # another loader, still writing: it holds the load lock and dropped the index
        key = (pg._LOCK_SPACE, pg.lock_key(f"vector-load:{TABLE}"))
        assert loader.execute("SELECT pg_try_advisory_lock_shared(%s, %s)", key).fetchone()[0]
        loader.execute(f"DROP INDEX memdex.{TABLE}_hnsw")
        sync(root, url, "one")
        assert index_state(url) == "missing"  # its end builds it
    finally:
        loader.close()  # ... but it died
    sync(root, url, "one")
    assert index_state(url) == "valid"


def postings_of(url: str, namespace: str) -> dict[str, int]:
    """path -> postings of its chunks, and "" -> postings of no chunk, in a namespace."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT coalesce(c.path, ''), count(*) FROM memdex.postings p JOIN memdex.namespaces n ON n.id = p.ns "
            "LEFT JOIN memdex.chunks c ON c.id = p.chunk_id WHERE n.name = %s GROUP BY 1",
            (namespace,),
        ).fetchall()
    return dict(rows)


def check(settings: Settings) -> Any:
    with open_index(settings, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:
        return check_index(settings, memory.engine, model_id=RecordingEmbedder(dimensions=DIMS).model_id)


def test_postings_go_with_their_chunks_and_check_finds_a_stray_one(tmp_path: Path, url: str) -> None:
    root = folder(tmp_path / "root", 3)
    settings = sync(root, url, "one")
    before = postings_of(url, "one")
    assert set(before) == {"notes/n000.md", "notes/n001.md", "notes/n002.md"}
    write(root, "notes/n001.md", "# Other\n\nA kingfisher now.\n")
    (root / "notes/n002.md").unlink()
    sync(root, url, "one")
    after = postings_of(url, "one")
    assert set(after) == {"notes/n000.md", "notes/n001.md"} and after["notes/n000.md"] == before["notes/n000.md"]
    assert check(settings).exit_code == HEALTHY
    with psycopg.connect(url, autocommit=True) as conn:  # a posting of no chunk, written past the trigger
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "INSERT INTO memdex.postings SELECT 'stray', id, 999999999, 1, 1 FROM memdex.namespaces WHERE name = 'one'"
        )
    found = check(settings)
    assert found.exit_code == CORRUPT and "1 postings without a chunk" in str(found.as_dict())
    with open_index(settings, write=True, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:
        memory.replace_damaged("check found it corrupt")  # what check --repair does
    assert "" not in postings_of(url, "one") and check(settings).exit_code == HEALTHY


def test_check_finds_a_chunk_whose_terms_are_not_its_postings(tmp_path: Path, url: str) -> None:
    """A chunk's delete finds its postings by the terms on its row: terms that differ would
    leave postings behind, so check compares them too."""
    settings = sync(folder(tmp_path / "root", 2), url, "one")
    assert check(settings).exit_code == HEALTHY
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE memdex.chunks SET terms = terms[2:] WHERE path = 'notes/n000.md'")
    assert check(settings).exit_code == CORRUPT


def test_a_posting_that_names_no_chunk_of_its_namespace_is_refused(tmp_path: Path, url: str) -> None:
    sync(folder(tmp_path / "a", 1), url, "a")
    sync(folder(tmp_path / "b", 1), url, "b")
    with psycopg.connect(url, autocommit=True) as conn:
        (a_ns, a_chunk), (b_ns, _) = conn.execute(
            "SELECT c.ns, c.id FROM memdex.chunks c JOIN memdex.namespaces n ON n.id = c.ns ORDER BY n.name"
        ).fetchall()
        for sql, params in [
            ("INSERT INTO memdex.postings VALUES ('evil', %s, %s, 1, 1)", (b_ns, a_chunk)),  # another namespace's
            ("INSERT INTO memdex.postings VALUES ('evil', %s, 999999999, 1, 1)", (a_ns,)),  # no chunk at all
            ("UPDATE memdex.postings SET chunk_id = %s WHERE ns = %s", (a_chunk, b_ns)),
        ]:
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute(sql, params)


def test_an_index_made_before_the_postings_triggers_migrates_and_keeps_working(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 5 on a schema made at version 4 (with the foreign key); its namespace was
    made then (today's write path needs migration 6's column, so its files come after)."""
    root = tmp_path / "root"
    root.mkdir()
    with monkeypatch.context() as older:
        older.setattr(pg, "MIGRATIONS", pg.MIGRATIONS[:4])
        older.setattr(pg, "SCHEMA_VERSION", 4)
        settings = sync(root, url, "one")
    with psycopg.connect(url) as conn:
        keys = "SELECT count(*) FROM pg_constraint WHERE conrelid = 'memdex.postings'::regclass AND contype = 'f'"
        assert conn.execute(keys).fetchone() == (1,)
    folder(root, 3)
    write(root, "notes/n001.md", "# Other\n\nA kingfisher now.\n")
    sync(root, url, "one")  # migrates, then writes
    with psycopg.connect(url) as conn:
        assert conn.execute(keys).fetchone() == (0,)
        assert conn.execute("SELECT version FROM memdex.schema_version").fetchone() == (pg.SCHEMA_VERSION,)
    assert set(postings_of(url, "one")) == {"notes/n000.md", "notes/n001.md", "notes/n002.md"}
    assert check(settings).exit_code == HEALTHY
    with open_index(settings, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:
        assert [hit.path for hit in memory.search("kingfisher", mode="keyword")] == ["notes/n001.md"]


# What migration 6 changed, undone: an index as memdex left it at schema 5.
SCHEMA_5 = """
ALTER TABLE memdex.chunks DROP COLUMN terms;
CREATE INDEX postings_by_chunk ON memdex.postings(chunk_id);
CREATE OR REPLACE FUNCTION memdex.drop_postings() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM memdex.postings p USING gone g WHERE p.chunk_id = g.id AND p.ns = g.ns;
    RETURN NULL;
END $$;
UPDATE memdex.schema_version SET version = 5;
"""


def test_an_index_made_before_chunks_kept_their_terms_migrates_and_deletes_its_postings(
    tmp_path: Path, url: str
) -> None:
    """Migration 6: the terms of every chunk already there are filled in from its postings,
    so changing or deleting its file later deletes its postings (by the primary key)."""
    root = folder(tmp_path / "root", 3)
    settings = sync(root, url, "one")
    before = postings_of(url, "one")
    with psycopg.connect(url) as conn:
        conn.execute(SCHEMA_5)
    write(root, "notes/n001.md", "# Other\n\nA kingfisher now.\n")
    (root / "notes/n002.md").unlink()
    sync(root, url, "one")  # migrates, then replaces n001's chunk and deletes n002's
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM memdex.schema_version").fetchone() == (pg.SCHEMA_VERSION,)
        assert conn.execute("SELECT to_regclass('memdex.postings_by_chunk')").fetchone() == (None,)
        # n000's chunk was left alone: its terms came from its postings (check compares them too)
        assert conn.execute("SELECT count(*) FROM memdex.chunks WHERE path = 'notes/n000.md' AND terms = '{}'").fetchone() == (0,)
        # A memdex started before the upgrade inserts chunks without terms: refused, not a chunk
        # whose delete would leave its postings behind (review: the column had a default)
        with pytest.raises(psycopg.errors.NotNullViolation):
            conn.execute(
                "INSERT INTO memdex.chunks(ns, path, start_line, end_line, heading, text, hash, oversized, length) "
                "SELECT ns, path, 90, 90, heading, text, hash, oversized, length FROM memdex.chunks LIMIT 1"
            )
    after = postings_of(url, "one")
    assert set(after) == {"notes/n000.md", "notes/n001.md"} and after["notes/n000.md"] == before["notes/n000.md"]
    assert check(settings).exit_code == HEALTHY
    with open_index(settings, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:
        assert [hit.path for hit in memory.search("kingfisher", mode="keyword")] == ["notes/n001.md"]


def test_a_bulk_load_commits_in_batches_and_a_failure_keeps_only_whole_ones(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer.store.postgres import write as pg_write
    from indexer.store.postgres.store import PgStore

    monkeypatch.setattr(pg_write, "BATCH_FILES", 20)
    original, written = PgStore.replace_file, []

    def failing(self: PgStore, *args: Any, **kwargs: Any) -> None:
        if len(written) == 29:
            raise RuntimeError("the disk is gone")
        original(self, *args, **kwargs)
        written.append(args[0].path)

    monkeypatch.setattr(PgStore, "replace_file", failing)
    root = folder(tmp_path / "root", BULK_MIN_FILES + 10)
    with pytest.raises(RuntimeError, match="the disk is gone"):
        sync(root, url, "one")
    with psycopg.connect(url) as conn:  # the first batch of 20 files, counted; not the 9 after it
        files, chunks, counted = conn.execute(
            "SELECT (SELECT count(*) FROM memdex.files f WHERE f.ns = n.id), "
            "(SELECT count(*) FROM memdex.chunks c WHERE c.ns = n.id), n.chunk_count "
            "FROM memdex.namespaces n WHERE n.name = 'one'"
        ).fetchone()
    assert (files, chunks, counted) == (20, 20, 20)
    assert index_state(url) == "valid"  # built although the load failed
    monkeypatch.setattr(PgStore, "replace_file", original)
    settings = sync(root, url, "one")
    assert len(postings_of(url, "one")) == BULK_MIN_FILES + 10
    assert check(settings).exit_code == HEALTHY


def test_a_float32_matrix_goes_to_the_server_as_the_same_vectors(url: str) -> None:
    """Float4Array: rows sent as one binary real[] come back, sliced per row, bit for bit."""
    from indexer.store.postgres import connection as pg
    from indexer.store.postgres.text import parse_vector

    rows = np.random.default_rng(1).standard_normal((3, 7)).astype(np.float32)
    rows[2] = [1e-12, -0.0, 3.4e38, -1.17e-38, 1.0, 0.1, np.float32(1 / 3)]
    conn = pg.connect(url)
    try:
        got = conn.execute(
            "SELECT ((%(m)s::real[])[(i - 1) * 7 + 1 : i * 7]::vector)::text FROM generate_series(1, 3) AS i ORDER BY i",
            {"m": pg.Float4Array(rows)},
        ).fetchall()
    finally:
        conn.close()
    assert np.array_equal(np.stack([parse_vector(text) for (text,) in got]), rows)


def test_no_transaction_stays_open_while_the_model_runs_during_a_bulk_load(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer.indexing import writer

    monkeypatch.setattr(writer, "EMBED_GROUP", 10)  # several groups of texts, in one batch of files

    def open_transactions() -> int:
        with psycopg.connect(url) as conn:
            return int(conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
            ).fetchone()[0])  # fmt: skip  # a pipeline's open transaction shows 'active', not 'idle in transaction' (review)

    # The sync's thread writes files while the model embeds on its own thread (pipeline.py):
    # looked at when that thread waits for the model, no transaction may be left open.
    from indexer.indexing import pipeline

    waiting = threading.Event()
    returned = pipeline.Job.returned

    def noting_the_wait(self: Any, *, wait: bool) -> Any:
        if wait:
            waiting.set()
        yield from returned(self, wait=wait)

    def when_the_sync_waits() -> int | None:
        if not waiting.wait(5):
            return None  # the sync's thread never waited during this call
        waiting.clear()
        return open_transactions()

    monkeypatch.setattr(pipeline.Job, "returned", noting_the_wait)
    embedder = WatchingEmbedder(url, probe=when_the_sync_waits)
    sync(folder(tmp_path / "root", BULK_MIN_FILES + 10), url, "one", embedder)
    assert set(embedder.states) == {"missing"}
    seen = [found for found in embedder.probed if found is not None]
    assert len(seen) > 3 and set(seen) == {0}


class StoppedOnSecondCall(RecordingEmbedder):
    """Ctrl-C arrives while the model embeds the load's second group."""

    def __init__(self) -> None:
        super().__init__(dimensions=DIMS)
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return super().embed(texts)


def test_ctrl_c_during_a_bulk_load_builds_nothing_and_the_next_sync_builds_the_index(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop must stop: building the index on the way out could take minutes (review)."""
    sync(folder(tmp_path / "small", 3, tag="small"), url, "small")
    root = folder(tmp_path / "big", BULK_MIN_FILES + 10)
    sent: list[str] = []
    original = psycopg.Connection.execute

    def spy(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return original(self, query, *args, **kwargs)

    settings = make_settings(root, url, namespace="big", embed_batch_size=8)
    with open_index(settings, write=True, embedder=StoppedOnSecondCall()) as memory:
        monkeypatch.setattr(psycopg.Connection, "execute", spy)
        with pytest.raises(KeyboardInterrupt):
            memory.sync()
        monkeypatch.undo()
        assert memory.store.connection.info.transaction_status == 0  # nothing left open
    assert not [q for q in sent if "CREATE INDEX" in q]
    assert index_state(url) == "missing"
    sync(root, url, "big")
    assert index_state(url) == "valid"


def test_a_bulk_load_does_not_wait_for_an_unrelated_open_snapshot(tmp_path: Path, url: str) -> None:
    """CREATE INDEX CONCURRENTLY waited for every older snapshot in the database (a pg_dump, an
    idle transaction): the sync hung at its end (review). The plain build waits for none."""
    sync(folder(tmp_path / "small", 3, tag="small"), url, "small")
    root = folder(tmp_path / "big", BULK_MIN_FILES + 10)
    done = threading.Event()

    def load() -> None:
        sync(root, url, "big")
        done.set()

    with psycopg.connect(url, autocommit=True) as blocker:
        blocker.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        blocker.execute("SELECT count(*) FROM memdex.files").fetchone()  # takes its snapshot
        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        try:
            finished = done.wait(60)  # seconds when it works; for ever while the snapshot is open when not
        finally:
            blocker.execute("COMMIT")
            loader.join(60)
    assert finished, "the sync waited for an unrelated open snapshot"
    assert index_state(url) == "valid"


def test_a_failed_batch_commit_leaves_the_connection_usable(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed counts statement at a batch's commit left the transaction aborted and the
    connection unusable for every later sync of the process (review)."""
    from indexer.store.postgres import write as pg_write

    sync(folder(tmp_path / "small", 3, tag="small"), url, "small")
    root = folder(tmp_path / "big", BULK_MIN_FILES + 10)
    original = pg_write.PgWrites._count
    failures = [True]

    def failing(self: Any, conn: Any, chunks: int, tokens: int) -> None:
        if failures and self._batch is not None and not self._batch.open:  # the counts at a batch commit
            failures.pop()
            conn.execute("SELECT 1/0")  # any server error: a cancel, a deadlock, a timeout
        original(self, conn, chunks, tokens)

    monkeypatch.setattr(pg_write.PgWrites, "_count", failing)
    with open_index(make_settings(root, url, namespace="big"), write=True, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:
        with pytest.raises(Exception, match="division by zero"):
            memory.sync()
        assert memory.store.connection.info.transaction_status == 0
        again = memory.sync()  # the same process (a watcher) tries again
        assert again.reindexed == BULK_MIN_FILES + 10
    assert index_state(url) == "valid"


def test_ctrl_c_while_the_server_runs_a_batchs_command_stays_an_interrupt(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the model on its own thread, Ctrl-C usually lands while the sync's thread waits
    on the server: the connection is left mid-command and cannot take a ROLLBACK. That failed
    ROLLBACK replaced the interrupt with "the server refused the connection" and the session
    kept the load's advisory lock (review). Simulated: a command sent, then the interrupt."""
    import time

    from indexer.store.postgres import write as pg_write

    sync(folder(tmp_path / "small", 3, tag="small"), url, "small")
    root = folder(tmp_path / "big", BULK_MIN_FILES + 10)
    begin = pg_write.Batch.begin
    calls = [0]

    def interrupted_mid_command(self: Any) -> None:
        calls[0] += 1
        if calls[0] == 5:
            self.conn.pgconn.send_query_params(b"SELECT pg_sleep(0.2)", None)  # the server is at work...
            self.conn.pgconn.flush()
            raise KeyboardInterrupt  # ...when the signal arrives
        begin(self)

    monkeypatch.setattr(pg_write.Batch, "begin", interrupted_mid_command)
    settings = make_settings(root, url, namespace="big")
    with open_index(settings, write=True, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:
        with pytest.raises(KeyboardInterrupt):
            memory.sync()
    monkeypatch.undo()

    def advisory_locks() -> int:
        with psycopg.connect(url) as conn:
            return int(conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0])

    deadline = time.monotonic() + 10
    while advisory_locks() and time.monotonic() < deadline:  # the closed session's locks go with it
        time.sleep(0.05)
    assert advisory_locks() == 0
    assert sync(root, url, "big") and index_state(url) == "valid"
    with psycopg.connect(url) as conn:
        (files,) = conn.execute(
            "SELECT count(*) FROM memdex.files f JOIN memdex.namespaces n ON n.id = f.ns WHERE n.name = 'big'"
        ).fetchone()
    assert files == BULK_MIN_FILES + 10


def test_ctrl_c_between_the_drops_tries_leaves_no_loaders_lock(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the load waits between two tries to drop the index: the loaders' lock of
    the table is released, so a later load can still build the index (review: a process that
    survived the interrupt kept it, and no other loader ever built the index)."""
    from indexer.store.postgres import bulk
    from indexer.store.postgres import connection as pg

    sync(folder(tmp_path / "small", 3, tag="small"), url, "small")

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(bulk, "time", types.SimpleNamespace(sleep=interrupted))  # bulk's own name only
    table = TABLE  # as the store names it: the schema is on the connection's search path
    conn = pg.connect(url)
    try:
        with psycopg.connect(url) as blocker, psycopg.connect(url, autocommit=True) as other:
            blocker.execute(f"SELECT count(*) FROM {pg.SCHEMA}.{table}").fetchone()  # the first DROP try times out
            with pytest.raises(KeyboardInterrupt):
                bulk._begin(conn, table)
            blocker.rollback()
            assert pg.try_session_lock(other, bulk._load_lock(table)), "the interrupted load kept its lock"
    finally:
        conn.close()


def test_a_build_on_this_machine_runs_one_process_a_core_within_the_servers_setting(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader and ``cores - 1`` parallel workers (a third process on two cores only cost CPU);
    never more than the server's own setting (2 here), and a remote server keeps its setting."""
    from indexer.store.postgres import bulk

    original = psycopg.Connection.execute
    workers: list[str] = []

    def spy(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if str(query).startswith("CREATE INDEX IF NOT EXISTS") and "hnsw" in str(query):  # bulk's build
            workers.append(original(self, "SHOW max_parallel_maintenance_workers").fetchone()[0])
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", spy)
    cases = [(2, True, "1"), (1, True, "0"), (8, True, "2"), (2, False, "2")]
    for i, (cores, local, _) in enumerate(cases):
        monkeypatch.setattr(bulk, "_cores", lambda cores=cores: cores)
        monkeypatch.setattr(bulk, "_server_is_local", lambda conn, local=local: local)
        sync(folder(tmp_path / f"ns{i}", BULK_MIN_FILES + 1, tag=f"t{i}"), url, f"ns{i}")  # each one builds
        assert len(workers) == i + 1
    assert workers == [expected for _, _, expected in cases]
    assert index_state(url) == "valid"
    with psycopg.connect(url) as conn:  # the session's setting is back after the build
        assert conn.execute("SHOW max_parallel_maintenance_workers").fetchone()[0] == "2"


def test_a_server_on_this_machine_is_told_apart_from_a_remote_one() -> None:
    from indexer.store.postgres.bulk import _server_is_local

    def conn(host: str) -> Any:
        return types.SimpleNamespace(info=types.SimpleNamespace(host=host))

    assert all(_server_is_local(conn(h)) for h in ("/var/run/postgresql", "/tmp", "127.0.0.1", "localhost", "::1"))
    assert not any(_server_is_local(conn(h)) for h in ("db.example.com", "10.0.0.5", "2001:db8::1", ""))
