"""Change detection, stability and the 'index is a function of the Markdown' invariant."""

from __future__ import annotations

import os

import apsw
import pytest
from conftest import RecordingEmbedder, age_files, snapshot, write

from indexer import make_settings, open_index
from indexer.errors import LockedError, PathError, SchemaError

SECTIONED = "\n".join(
    f"## Topic {n}\n\n" + "\n".join(f"- fact {n}.{i}: the value is {n * 10 + i}" for i in range(8)) + "\n"
    for n in range(10)
)


def test_first_sync_embeds_each_chunk_exactly_once(root, do_sync, embedder):
    write(root, "MEMORY.md", SECTIONED)
    write(root, "daily/2026-11-20.md", "- walked the dog\n- called Ines\n")
    report = do_sync()
    assert report.reindexed == 2
    assert len(embedder.embedded) == len(set(embedder.embedded)) == report.chunks_embedded
    assert report.chunks_from_cache == 0


def test_nothing_is_read_when_nothing_changed(root, do_sync, embedder, monkeypatch):
    write(root, "MEMORY.md", SECTIONED)
    do_sync()
    age_files(root)
    do_sync()  # re-hash once after ageing (mtime changed), then trust the stat
    opened = []
    real_open = open

    def tracking_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", tracking_open)
    embedder.reset()
    report = do_sync()
    assert report.skipped_unchanged_stat == 1
    assert not [p for p in opened if p.endswith(".md")]
    assert embedder.embedded == []


def test_touched_file_is_rehashed_not_reembedded(root, do_sync, embedder):
    path = write(root, "MEMORY.md", SECTIONED)
    do_sync()
    age_files(root)
    os.utime(path)  # same bytes, new mtime
    embedder.reset()
    report = do_sync()
    assert report.unchanged_hash == 1 and report.reindexed == 0
    assert embedder.embedded == []


def test_one_line_edit_in_a_300_line_file_reembeds_exactly_one_chunk(root, do_sync, embedder):
    sections = [
        f"## Day {n}\n\n- woke at {n % 9 + 5}\n- read chapter {n}\n- walked {n % 7} km\n" for n in range(50)
    ]
    path = write(root, "MEMORY.md", "\n".join(sections))
    assert len(path.read_text().split("\n")) == 300
    do_sync()
    embedder.reset()
    lines = path.read_text().split("\n")
    assert lines[152].startswith("- woke")
    lines[152] += " (corrected)"  # a list item in the middle of the file
    path.write_text("\n".join(lines))
    report = do_sync()
    assert report.reindexed == 1
    assert len(embedder.embedded) == 1 and "(corrected)" in embedder.embedded[0]


def test_inserting_a_line_shifts_numbers_without_reembedding(root, do_sync, embedder, settings):
    path = write(root, "MEMORY.md", "# Top\n\nintro\n\n" + SECTIONED)
    do_sync()

    def spans_of_fact() -> list[tuple[int, int]]:
        with open_index(settings, embedder=embedder) as index:
            return [(h.start_line, h.end_line) for h in index.search("fact 9.7", mode="keyword", limit=1)]

    before = spans_of_fact()
    embedder.reset()
    path.write_text("# Top\n\nintro\nsecond intro line\n\n" + SECTIONED)
    do_sync()
    assert len(embedder.embedded) == 1  # only the intro chunk changed
    assert spans_of_fact() == [(start + 1, end + 1) for start, end in before]


def test_deleted_file_loses_its_rows(root, do_sync, settings, embedder):
    write(root, "notes/a.md", "# A\n\nalpha bravo\n")
    write(root, "notes/b.md", "# B\n\ncharlie delta\n")
    do_sync()
    (root / "notes/a.md").unlink()
    report = do_sync()
    assert report.removed == 1
    with open_index(settings, embedder=embedder) as index:
        assert index.search("alpha", mode="keyword") == []
        assert index.store.snapshot()["vec_rows"] == 1


def test_rename_reuses_cached_vectors(root, do_sync, settings, embedder):
    write(root, "notes/old.md", "# Garden\n\nThe tomatoes need staking.\n")
    do_sync()
    embedder.reset()
    (root / "notes/old.md").rename(root / "notes/new.md")
    report = do_sync()
    assert report.removed == 1 and report.reindexed == 1
    assert embedder.embedded == [] and report.chunks_from_cache == 1
    with open_index(settings, embedder=embedder) as index:
        [hit] = index.search("tomatoes", mode="keyword")
    assert hit.path == "notes/new.md"


def test_kinds_and_dates(root, do_sync, settings, embedder):
    write(root, "SOUL.md", "I am a helpful assistant named Pim.\n")
    write(root, "MEMORY.md", "The user likes oolong tea.\n")
    write(root, "daily/2026-11-20.md", "Bought oolong tea.\n")
    write(root, "daily/not-a-date.md", "Misc oolong.\n")
    write(root, "projects/x/plan.md", "oolong plan\n")
    do_sync()
    with open_index(settings, embedder=embedder) as index:
        hits = {h.path: (h.kind, h.date) for h in index.search("oolong", mode="keyword")}
        kinds = index.status()["by_kind"]
    assert hits == {
        "MEMORY.md": ("memory", None),
        "daily/2026-11-20.md": ("daily", "2026-11-20"),
        "daily/not-a-date.md": ("note", None),
        "projects/x/plan.md": ("note", None),
    }
    assert kinds["soul"] == {"files": 1, "chunks": 1}


def test_model_change_triggers_announced_full_reembed(root, do_sync, settings):
    write(root, "MEMORY.md", SECTIONED)
    first = RecordingEmbedder(model_id="test/one")
    do_sync(embedder=first)
    second = RecordingEmbedder(model_id="test/two", dimensions=24)
    report = do_sync(embedder=second)
    assert report.full_reembed_reason and "test/one" in report.full_reembed_reason
    assert any("re-embedding every chunk" in w for w in report.warnings)
    assert len(second.embedded) == report.chunks_embedded > 0
    again = RecordingEmbedder(model_id="test/two", dimensions=24)
    assert do_sync(embedder=again).full_reembed_reason is None


def test_incremental_syncs_equal_a_fresh_rebuild(root, tmp_path, do_sync, embedder):
    write(root, "MEMORY.md", SECTIONED)
    write(root, "daily/2026-11-19.md", "---\nmood: ok\n---\n- ran 5 km\n")
    write(root, "notes/a.md", "# A\n\none\n\n## B\n\ntwo\n")
    do_sync()
    (root / "notes/a.md").write_text("# A\n\none changed\n\n## B\n\ntwo\n\n## C\n\nthree\n")
    (root / "daily/2026-11-19.md").rename(root / "daily/2026-11-18.md")
    write(root, "notes/new.md", "brand new note\n")
    do_sync()
    (root / "notes/new.md").unlink()
    (root / "MEMORY.md").write_text(SECTIONED.replace("fact 3.3", "fact three"))
    do_sync()
    fresh = make_settings(root, tmp_path / "fresh" / "index.db")
    do_sync(settings=fresh, embedder=RecordingEmbedder())
    incremental = snapshot(make_settings(root), embedder)
    rebuilt = snapshot(fresh, embedder)
    assert incremental == rebuilt


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


def test_second_writer_is_refused(root, settings, embedder):
    write(root, "MEMORY.md", "x\n")
    with open_index(settings, write=True, embedder=embedder):
        with pytest.raises(LockedError):
            with open_index(settings, write=True, embedder=embedder):
                pass


def test_index_newer_than_code_is_moved_aside_and_rebuilt(root, settings, do_sync, embedder):
    """A future schema is never written to: without recovery it is a clear error,
    with recovery (the default) it is kept aside and the index rebuilt."""
    write(root, "MEMORY.md", "x\n")
    do_sync()
    before = snapshot(settings, embedder)
    connection = apsw.Connection(str(settings.index_path))
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(SchemaError, match="newer"):
        with open_index(settings, write=True, embedder=embedder, recover=False):
            pass
    with open_index(settings, embedder=embedder) as index:
        assert index.recovered_from and "newer" in index.recovered_from
        assert index.store.snapshot() == before
    (quarantined,) = settings.index_dir.glob("index.db.corrupt-*")
    check = apsw.Connection(str(quarantined))
    assert check.pragma("user_version") == 99


def test_search_before_index_is_a_clear_error(settings):
    with pytest.raises(SchemaError, match="memdex index"):
        with open_index(settings):
            pass


def test_frontmatter_is_stored_and_title_words_are_searchable(root, do_sync, settings, embedder):
    write(root, "projects/greenhouse-sensor.md", "---\ntitle: Soil probe\ntags: [esp32]\n---\nWiring notes.\n")
    do_sync()
    with open_index(settings, embedder=embedder) as index:
        [hit] = index.search("greenhouse esp32", mode="keyword")
        (frontmatter,) = index.store.connection.execute("SELECT frontmatter FROM files").fetchone()
    assert (hit.start_line, hit.end_line) == (5, 5)
    assert '"tags": ["esp32"]' in frontmatter


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


def test_racy_rewrite_after_read_is_not_trusted(root, do_sync, settings):
    """A same-size rewrite keeping the mtime, during a slow embed, must not be stat-skipped later."""
    path = write(root, "notes/a.md", "# A\n\nalpha beta\n")

    class RewriteWhileEmbedding(RecordingEmbedder):
        def embed(self, texts):
            stat = path.stat()
            path.write_text("# A\n\nalpha GAMA\n")
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
            return super().embed(texts)

    do_sync(embedder=RewriteWhileEmbedding())
    do_sync()
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        assert index.search("gama", mode="keyword")


def test_frontmatter_with_date_keys_is_stored_as_json(root, do_sync, settings, embedder):
    write(root, "MEMORY.md", "---\n2024-05-01: dentist\nwhen: 2024-05-02\n---\n# N\n\nx\n")
    write(root, "notes/b.md", "other\n")
    assert do_sync().reindexed == 2
    with open_index(settings, embedder=embedder) as index:
        (frontmatter,) = index.store.connection.execute(
            "SELECT frontmatter FROM files WHERE path = 'MEMORY.md'"
        ).fetchone()
    assert frontmatter == '{"2024-05-01": "dentist", "when": "2024-05-02"}'


def test_local_models_with_the_same_folder_name_are_different_models(tmp_path):
    from indexer.embedding.resolve import resolve_model

    for name in ("a", "b"):
        write(tmp_path, f"{name}/model/config.json", '{"model_type": "bert", "v": "%s"}' % name)
    first, _ = resolve_model(str(tmp_path / "a" / "model"))
    second, _ = resolve_model(str(tmp_path / "b" / "model"))
    assert first != second and first.startswith("local:model@")


def test_a_root_that_is_gone_changes_nothing(root, tmp_path, do_sync, embedder):
    """A memory root that is renamed or unmounted under a running writer (index kept
    elsewhere) is an error, never "every file was deleted"."""
    write(root, "MEMORY.md", "# Facts\n\nkeep me\n")
    outside = make_settings(root, tmp_path / "index" / "index.db")
    do_sync(settings=outside)
    before = snapshot(outside, embedder)
    root.rename(tmp_path / "elsewhere")
    with pytest.raises(PathError, match="cannot list the memory root"):
        do_sync(settings=outside)
    (tmp_path / "elsewhere").rename(root)
    assert snapshot(outside, embedder) == before
