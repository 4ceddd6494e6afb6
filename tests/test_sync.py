"""What only the SQLite engine does on a sync: sqlite-vec and its NumPy fallback, and an
index file from a newer memdex refused and left alone; and which local model folders are different models.

Change detection, stability and "equal to a fresh rebuild" on every engine are the
engine contract (test_engine_contract.py)."""

from __future__ import annotations

import apsw
import pytest
from conftest import RecordingEmbedder, write

from indexer import make_settings, open_index
from indexer.errors import NewerIndex

SECTIONED = "\n".join(
    f"## Topic {n}\n\n" + "\n".join(f"- fact {n}.{i}: the value is {n * 10 + i}" for i in range(8)) + "\n"
    for n in range(10)
)


def test_vec_fallback_gives_the_same_vector_results(root, tmp_path, do_sync, embedder):
    write(root, "MEMORY.md", SECTIONED)
    do_sync()
    with_vec = make_settings(root)
    without = make_settings(root, use_sqlite_vec=False)
    with open_index(with_vec, embedder=embedder) as index:
        assert index.status()["vector_search"] == "sqlite-vec"
        expected = [(h.path, h.start_line) for h in index.search("fact 4.2", mode="vector")]
    with open_index(without, embedder=embedder) as index:
        assert index.status()["vector_search"] == "numpy"
        got = [(h.path, h.start_line) for h in index.search("fact 4.2", mode="vector")]
        assert index.search("fact 4.2", mode="keyword")
    assert got == expected


def test_sqlite_vec_load_failure_warns_and_keeps_working(root, do_sync, embedder, monkeypatch, caplog):
    import sqlite_vec

    write(root, "MEMORY.md", SECTIONED)
    monkeypatch.setattr(sqlite_vec, "loadable_path", lambda: "/nonexistent/vec0")
    settings = make_settings(root)
    report = do_sync(settings=settings)
    assert report.reindexed == 1
    assert any("sqlite-vec could not be loaded" in r.getMessage() for r in caplog.records)
    with open_index(settings, embedder=embedder) as index:
        assert index.search("fact 4.2", mode="vector")
        assert index.search("fact 4.2", mode="hybrid")
    monkeypatch.undo()
    embedder.reset()
    report = do_sync(settings=settings)  # vec0 is back: the table is refilled from the cache
    assert report.full_reembed_reason is None and report.reindexed == 0 and embedder.embedded == []
    with open_index(settings, embedder=embedder) as index:
        assert index.status()["vector_search"] == "sqlite-vec"
        assert index.store.snapshot()["vec_rows"] == index.status()["chunks"]


def test_index_newer_than_code_is_refused_and_left_as_it_is(root, settings, do_sync, embedder):
    """A future schema is never written to, moved or rebuilt on the way (two versions used
    in turn would rebuild each other's index): a clear error for readers and writers alike,
    with or without recovery. Only an explicit rebuild replaces it (test_newer_index.py)."""
    write(root, "MEMORY.md", "x\n")
    do_sync()
    connection = apsw.Connection(str(settings.index_path))
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    before = settings.index_path.read_bytes()
    for options in ({"write": True, "recover": False}, {"write": True}, {}):
        with pytest.raises(NewerIndex, match="newer than this memdex understands"):
            with open_index(settings, embedder=embedder, **options):
                pass
    assert settings.index_path.read_bytes() == before
    assert not list(settings.index_dir.glob("index.db.*-*"))


def test_model_change_while_sqlite_vec_is_missing(root, do_sync, monkeypatch):
    import sqlite_vec

    write(root, "MEMORY.md", SECTIONED)
    do_sync(embedder=RecordingEmbedder(model_id="test/one"))
    monkeypatch.setattr(sqlite_vec, "loadable_path", lambda: "/nonexistent/vec0")
    settings = make_settings(root)
    report = do_sync(settings=settings, embedder=RecordingEmbedder(model_id="test/two", dimensions=24))
    assert report.full_reembed_reason and report.reindexed == 1
    monkeypatch.undo()
    back = RecordingEmbedder(model_id="test/two", dimensions=24)
    assert do_sync(settings=settings, embedder=back).full_reembed_reason is None
    assert back.embedded == []
    with open_index(settings, embedder=back) as index:
        assert index.store.vec_dimensions() == 24
        assert len(index.search("fact 4.2", mode="vector")) > 0


def test_local_models_with_the_same_folder_name_are_different_models(tmp_path):
    from indexer.embedding.resolve import resolve_model

    for name in ("a", "b"):
        write(tmp_path, f"{name}/model/config.json", '{"model_type": "bert", "v": "%s"}' % name)
    first, _ = resolve_model(str(tmp_path / "a" / "model"))
    second, _ = resolve_model(str(tmp_path / "b" / "model"))
    assert first != second and first.startswith("local:model@")


def test_a_chunker_upgrade_says_vectors_come_from_the_cache_and_embeds_nothing(root, settings, do_sync, embedder):
    """An upgrade that only changes how text is cut (chunker_version) indexes every file
    again, but the unchanged chunk texts keep their cached vectors: the message must not
    claim that every chunk is re-embedded, and nothing is."""
    write(root, "MEMORY.md", SECTIONED)
    do_sync()
    with open_index(settings, write=True, embedder=embedder) as index:
        index.store.set_meta(chunker_version="2")
    embedder.reset()
    with open_index(settings, write=True, embedder=embedder) as index:
        report = index.sync()
    assert embedder.embedded == []
    message = report.warnings[0]
    assert message.startswith("indexing every file again: chunker_version 2 -> ") and "embedding cache" in message
    assert not any("re-embedding every chunk" in w for w in report.warnings)
