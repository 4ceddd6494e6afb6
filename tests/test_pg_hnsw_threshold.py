"""A vector table's HNSW index only past ``bulk.HNSW_MIN_ROWS`` rows (store/postgres/bulk.py):
below it the table has none after a bulk load and searches scan exactly; the sync that takes
the table past it builds it (a bulk load's end, or any sync of the schema's owner); once built
there, the index stays when the table shrinks (no flapping).

Each test has its own database, so the vector table starts empty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from conftest import RecordingEmbedder
from test_pg_access import Server, db, grant  # noqa: F401 - db: a fixture
from test_pg_write_path import DIMS, TABLE, folder, index_state, sync, vector_ids

from indexer.api import open_index
from indexer.indexing.check import check_index
from indexer.config.settings import Settings
from indexer.store.postgres import bulk
from indexer.store.postgres.bulk import BULK_MIN_FILES

pytestmark = pytest.mark.postgres


@pytest.fixture
def url(own_pg_database: str) -> str:
    return own_pg_database


def status_index(settings: Settings) -> str | None:
    """What ``status`` tells of the vector table's index."""
    with open_index(settings, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:
        return memory.status()["vector_index"]


def rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT count(*) FROM memdex.{TABLE}").fetchone()[0])


def test_a_bulk_load_below_the_threshold_builds_no_index_and_searches_scan_exactly(tmp_path: Path, url: str) -> None:
    settings = sync(folder(tmp_path / "one", BULK_MIN_FILES + 10, tag="one"), url, "one")
    sync(folder(tmp_path / "two", BULK_MIN_FILES + 10, tag="two"), url, "two")  # another namespace's rows beside
    assert rows(url) == 2 * (BULK_MIN_FILES + 10) <= bulk.HNSW_MIN_ROWS
    assert index_state(url) == "missing"  # the table was made with one: the first load dropped it
    query = "where does the heron wait"
    wanted = RecordingEmbedder(dimensions=DIMS).embed([query])[0]
    with psycopg.connect(url) as conn:
        stored = conn.execute(
            f"SELECT c.path, v.embedding::text FROM memdex.{TABLE} v JOIN memdex.chunks c ON c.id = v.chunk_id "
            "JOIN memdex.namespaces n ON n.id = c.ns WHERE n.name = 'one'"
        ).fetchall()
    vectors = np.array([np.array(text.strip("[]").split(","), dtype=np.float32) for _, text in stored])
    cosines = vectors @ wanted / np.linalg.norm(vectors, axis=1)
    assert vector_ids(settings, query) == [stored[i][0] for i in np.argsort(-cosines)[:5]]


def test_the_sync_that_takes_the_table_past_the_threshold_builds_the_index(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "HNSW_MIN_ROWS", BULK_MIN_FILES + 20)
    root = folder(tmp_path / "one", BULK_MIN_FILES + 10)
    settings = sync(root, url, "one")
    assert index_state(url) == "missing" == status_index(settings)  # status says searches scan exactly
    folder(root, BULK_MIN_FILES + 30)  # 20 files more: a small sync (the namespace is not empty) takes it past
    sync(root, url, "one")
    assert rows(url) == BULK_MIN_FILES + 30 > bulk.HNSW_MIN_ROWS
    assert index_state(url) == "valid" == status_index(settings)


def test_a_bulk_loads_end_past_the_threshold_builds_it_and_a_table_that_shrinks_keeps_it(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "HNSW_MIN_ROWS", 2 * BULK_MIN_FILES)
    one = folder(tmp_path / "one", BULK_MIN_FILES + 10, tag="one")
    sync(one, url, "one")
    assert index_state(url) == "missing"
    two = folder(tmp_path / "two", BULK_MIN_FILES + 10, tag="two")
    sync(two, url, "two")  # its bulk load's end finds the table past the threshold
    assert index_state(url) == "valid"
    for root, namespace in ((one, "one"), (two, "two")):  # the table shrinks to 2 rows
        for path in sorted((root / "notes").iterdir())[1:]:
            path.unlink()
        sync(root, url, namespace)
    sync(folder(tmp_path / "three", BULK_MIN_FILES, tag="three"), url, "three")  # a bulk load: drops it...
    assert rows(url) == BULK_MIN_FILES + 2 <= bulk.HNSW_MIN_ROWS
    assert index_state(url) == "valid"  # ... and builds it again: it was built past the threshold before
    with psycopg.connect(url) as conn:
        assert conn.execute(f"SELECT obj_description('memdex.{TABLE}'::regclass, 'pg_class')").fetchone()[0] == bulk.KEPT


def test_an_agents_sync_past_the_threshold_builds_nothing_and_the_owners_next_sync_does(
    db: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """An agent role may not change the owner's tables: its sync writes past the threshold
    without building (and without an error); the owner's next sync, with nothing to write, builds it."""
    monkeypatch.setattr(bulk, "HNSW_MIN_ROWS", BULK_MIN_FILES + 20)
    mine = folder(tmp_path / "mine", BULK_MIN_FILES + 10, tag="mine")
    owner = sync(mine, db.owner_url, "mine")
    assert index_state(db.owner_url) == "missing"
    alice = db.role("alice")
    grant(db, "ns-a", alice)
    sync(folder(tmp_path / "alice", 20, tag="alice"), db.url(alice), "ns-a")
    assert rows(db.owner_url) == BULK_MIN_FILES + 30 > bulk.HNSW_MIN_ROWS
    assert index_state(db.owner_url) == "missing"
    with open_index(owner, embedder=RecordingEmbedder(dimensions=DIMS)) as memory:  # the owner's check says so
        report = check_index(owner, memory.engine, model_id=RecordingEmbedder(dimensions=DIMS).model_id)
    assert report.exit_code == 0, report.problems
    assert [note for note in report.notes if "but has none" in note and "owner" in note]
    sync(mine, db.owner_url, "mine")
    assert index_state(db.owner_url) == "valid"
