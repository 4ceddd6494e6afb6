"""The engine contract: what every storage engine does, checked on each of them.

Every test runs twice, through ``engine_settings``: on SQLite (an index file) and on
PostgreSQL (a namespace of the session's server; marked ``postgres``, so it fails
rather than skips under CI / ``MEMDEX_REQUIRE_PG=1``). The tests use only the public
API (``make_settings``, ``open_index``, ``sync``, ``search``, ``rebuild``, ``status``,
``check_index``), the engine-neutral ``store.snapshot()`` to compare an index with a
fresh rebuild, and the ``Engine`` protocol itself. The deterministic
``RecordingEmbedder`` makes "embedded exactly once" an assertion.

What only one engine does stays with it: SQLite's quarantine files, sqlite-vec and
schema versions in the file (test_sync.py, test_recovery.py); PostgreSQL's namespaces,
shared cache across hosts, server restarts, statement timeout, libpq environment and
row ids kept across edits (test_postgres.py). The invariant property (random edit
sequences) runs on both engines in test_invariants.py.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import uuid
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pytest
from conftest import NOTES, EngineKind, RecordingEmbedder, age_files, fill, write

from indexer import make_settings, open_index
from indexer.config.settings import Settings
from indexer.errors import LockedError, PathError, SchemaError, UsageError
from indexer.indexing.check import DRIFT, HEALTHY, CheckReport, check_index
from indexer.indexing.report import SyncReport
from indexer.store.protocols import Engine, IndexStore, VectorCache

SECTIONED = "\n".join(
    f"## Topic {n}\n\n" + "\n".join(f"- fact {n}.{i}: the value is {n * 10 + i}" for i in range(8)) + "\n"
    for n in range(10)
)


@pytest.fixture
def engine_settings(engine_kind: EngineKind, root: Path) -> Settings:
    """A new, empty index of ``root`` on each engine: SQLite, then PostgreSQL.

    Its ``model`` is this test's own (``recorder``): PostgreSQL's embedding cache is the
    server's, shared by every namespace, so only a model id no other test uses keeps
    "embedded exactly once" about this test's texts."""
    return engine_kind.settings(root, model=f"test/recording-{uuid.uuid4().hex[:10]}")


# -- helpers -----------------------------------------------------------------------------------


def recorder(settings: Settings, **options: Any) -> RecordingEmbedder:
    """A deterministic embedder of ``settings.model`` (each test's own model id)."""
    return RecordingEmbedder(model_id=settings.model, **options)


def sync(settings: Settings, embedder: RecordingEmbedder | None = None, **options: Any) -> SyncReport:
    with open_index(settings, write=True, embedder=embedder or recorder(settings)) as index:
        return index.sync(**options)


def snap(settings: Settings) -> dict[str, Any]:
    with open_index(settings, embedder=recorder(settings)) as index:
        return index.store.snapshot()


def search(settings: Settings, query: str, **options: Any) -> list[Any]:
    with open_index(settings, embedder=recorder(settings)) as index:
        return index.search(query, **options)


def check(settings: Settings) -> CheckReport:
    with open_index(settings, embedder=recorder(settings)) as index:
        return check_index(settings, index.engine, model_id=settings.model)


def fresh_rebuild(engine_kind: EngineKind, settings: Settings) -> dict[str, Any]:
    """The snapshot of a brand-new index of the same folder on the same engine."""
    fresh = engine_kind.fresh(settings)
    sync(fresh)
    return snap(fresh)


def assert_equals_fresh_rebuild(engine_kind: EngineKind, settings: Settings) -> None:
    incremental, rebuilt = snap(settings), fresh_rebuild(engine_kind, settings)
    assert incremental["files"] == rebuilt["files"]
    assert incremental["chunks"] == rebuilt["chunks"]
    assert incremental == rebuilt


def members(protocol: type) -> dict[str, Any]:
    """A protocol's public members: its annotated attributes (None) and its methods."""
    found: dict[str, Any] = {name: None for name in getattr(protocol, "__annotations__", {})}
    found.update({name: value for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")})
    return found


def parameters(function: Any) -> list[tuple[str, Any]]:
    """(name, kind) of each parameter, without ``self``."""
    return [(p.name, p.kind) for p in inspect.signature(function).parameters.values() if p.name != "self"]


@runtime_checkable
class CheckedEngine(Engine, Protocol):
    """``Engine`` with ``isinstance`` (runtime_checkable: every member must be present)."""


@runtime_checkable
class CheckedStore(IndexStore, Protocol):
    pass


@runtime_checkable
class CheckedCache(VectorCache, Protocol):
    pass


# -- the Engine protocol -----------------------------------------------------------------------


def test_the_engine_has_every_member_of_the_engine_protocol(root, engine_kind, engine_settings) -> None:
    fill(root)
    sync(engine_settings)
    with open_index(engine_settings, embedder=recorder(engine_settings)) as index:
        engine = index.engine
        assert isinstance(engine, CheckedEngine) and engine.name == engine_kind.name
        assert isinstance(index.store, CheckedStore) and index.store is engine.store
        assert isinstance(index.cache, CheckedCache)
        wanted = members(Engine)
        assert {"name", "store", "keeps_vectors_in_memory", "rebuild", "repair", "storage_checks", "status"} <= set(wanted)
        assert [name for name in wanted if not hasattr(engine, name)] == []
        for name, method in wanted.items():
            if method is not None:  # the engine's method takes the protocol's parameters, by the same names
                assert callable(getattr(engine, name)), name
                assert parameters(getattr(engine, name)) == parameters(method), name
        assert isinstance(engine.name, str) and isinstance(engine.keeps_vectors_in_memory, bool)
        for protocol, implementation in ((IndexStore, index.store), (VectorCache, index.cache)):
            assert [name for name in members(protocol) if not hasattr(implementation, name)] == [], protocol


def test_a_healthy_index_has_no_engine_findings_and_ordinary_errors_are_not_the_engines(root, engine_settings) -> None:
    fill(root)
    sync(engine_settings)
    with open_index(engine_settings, write=True, embedder=recorder(engine_settings)) as index:
        engine = index.engine
        assert engine.storage_checks() == []
        assert engine.user_error(ValueError()) is None
        assert engine.is_damage(ValueError()) is False
        assert engine.reconnected(ValueError()) is False
        assert engine.replaced_on_disk() is False
        assert engine.uses_vector_index() is True
        assert isinstance(engine.vector_search_name(), str) and engine.vector_search_name()


def test_status_carries_the_size_schema_version_and_counts(root, engine_settings) -> None:
    fill(root)
    report = sync(engine_settings)
    with open_index(engine_settings, embedder=recorder(engine_settings)) as index:
        status = index.status()
        engine_status = index.engine.status()
        snapshot = index.store.snapshot()
        vector_search = index.engine.vector_search_name()
    assert isinstance(status["index_bytes"], int) and status["index_bytes"] > 0
    assert isinstance(status["schema_version"], int) and status["schema_version"] >= 1
    assert {"engine", "index_bytes", "schema_version"} <= set(engine_status)
    assert status["engine"] == engine_status["engine"] == index.engine.name
    assert status["schema_version"] == engine_status["schema_version"]
    assert status["files"] == len(NOTES) == len(snapshot["files"])
    assert status["chunks"] == len(snapshot["chunks"]) == report.chunks_embedded
    assert status["model"] == engine_settings.model and status["dimensions"] == recorder(engine_settings).dimensions
    assert status["vector_search"] == vector_search
    assert status["last_sync"] is not None and status["skipped"] == []


# -- sync: what is read and what is embedded ---------------------------------------------------


def test_first_sync_embeds_each_chunk_exactly_once(root, engine_settings) -> None:
    write(root, "MEMORY.md", SECTIONED)
    write(root, "daily/2026-11-20.md", "- walked the dog\n- called Ines\n")
    embedder = recorder(engine_settings)
    report = sync(engine_settings, embedder)
    assert report.reindexed == 2
    assert len(embedder.embedded) == len(set(embedder.embedded)) == report.chunks_embedded
    assert report.chunks_from_cache == 0


class DiesAfter(RecordingEmbedder):
    """Stands for a writer killed while the model runs: its ``calls``-th model call never returns."""

    def __init__(self, calls: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls_left = calls

    def embed(self, texts: Any) -> Any:
        self.calls_left -= 1
        if self.calls_left == 0:
            raise KeyboardInterrupt
        return super().embed(texts)


def test_a_writer_killed_mid_group_keeps_the_batches_it_embedded(root, engine_settings) -> None:
    """The cache is written after every model call (BATCHES_PER_CALL batches): a writer
    killed on the second call of a group keeps the first call's vectors."""
    from indexer.indexing.writer import BATCHES_PER_CALL

    settings = dataclasses.replace(engine_settings, embed_batch_size=1)
    per_call = BATCHES_PER_CALL
    for n in range(6):
        write(root, f"notes/n{n}.md", "".join(f"# Part {k}\n\nnote {n} part {k} says {n * 7 + k}\n\n" for k in range(3)))
    # The first group is one call's worth of texts (pipeline.py): n0 and n1, 6 texts in two
    # calls, written; the second group (12 texts) dies on its second call, after its first.
    dying = DiesAfter(4, model_id=settings.model)
    with pytest.raises(KeyboardInterrupt):
        sync(settings, dying)
    assert len(dying.embedded) == 6 + per_call
    embedder = recorder(settings)
    report = sync(settings, embedder)
    assert report.reindexed == 4 and report.unchanged_hash == 2
    assert report.chunks_from_cache == per_call and set(dying.embedded).isdisjoint(embedder.embedded)
    assert report.chunks_embedded == len(embedder.embedded) == 12 - per_call


def test_index_search_and_resync_skip_unchanged_files(root, engine_settings) -> None:
    fill(root)
    embedder = recorder(engine_settings)
    first = sync(engine_settings, embedder)
    assert first.reindexed == len(NOTES) and len(embedder.embedded) > 0
    embedder.reset()
    again = sync(engine_settings, embedder)
    assert again.reindexed == 0 and again.skipped_unchanged_stat == len(NOTES) and embedder.embedded == []
    hits = search(engine_settings, "penicillin allergy", mode="keyword", budget_lines=None)
    assert hits[0].path == "MEMORY.md" and hits[0].start_line == 1
    # Each hit names its namespace on a server (PostgreSQL); an index file has none.
    assert hits[0].namespace == (engine_settings.namespace_name if engine_settings.database_url else None)


def test_nothing_is_read_when_nothing_changed(root, engine_settings, monkeypatch) -> None:
    write(root, "MEMORY.md", SECTIONED)
    sync(engine_settings)
    age_files(root)
    sync(engine_settings)  # re-hash once after ageing (mtime changed), then trust the stat
    opened = []
    real_open = open

    def tracking_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", tracking_open)
    embedder = recorder(engine_settings)
    report = sync(engine_settings, embedder)
    assert report.skipped_unchanged_stat == 1
    assert not [p for p in opened if p.endswith(".md")]
    assert embedder.embedded == []


def test_touched_file_is_rehashed_not_reembedded(root, engine_settings) -> None:
    path = write(root, "MEMORY.md", SECTIONED)
    sync(engine_settings)
    age_files(root)
    os.utime(path)  # same bytes, new mtime
    embedder = recorder(engine_settings)
    report = sync(engine_settings, embedder)
    assert report.unchanged_hash == 1 and report.reindexed == 0
    assert embedder.embedded == []


def test_one_line_edit_in_a_300_line_file_reembeds_exactly_one_chunk(root, engine_settings) -> None:
    sections = [f"## Day {n}\n\n- woke at {n % 9 + 5}\n- read chapter {n}\n- walked {n % 7} km\n" for n in range(50)]
    path = write(root, "MEMORY.md", "\n".join(sections))
    assert len(path.read_text().split("\n")) == 300
    sync(engine_settings)
    before = snap(engine_settings)["chunks"]
    lines = path.read_text().split("\n")
    assert lines[152].startswith("- woke")
    lines[152] += " (corrected)"  # a list item in the middle of the file
    path.write_text("\n".join(lines))
    embedder = recorder(engine_settings)
    report = sync(engine_settings, embedder)
    assert report.reindexed == 1
    assert len(embedder.embedded) == 1 and "(corrected)" in embedder.embedded[0]
    after = snap(engine_settings)["chunks"]
    assert len(after) == len(before) and len(set(after) - set(before)) == 1


def test_one_line_edit_reembeds_one_chunk_and_keeps_the_others(root, engine_settings) -> None:
    fill(root)
    sync(engine_settings)
    before = snap(engine_settings)["chunks"]
    write(root, "MEMORY.md", NOTES["MEMORY.md"].replace("Pangur the cat.", "Pangur the grey cat."))
    age_files(root)
    embedder = recorder(engine_settings)
    sync(engine_settings, embedder)
    assert embedder.embedded == ["Facts > Pets\n## Pets\n\nPangur the grey cat."]
    after = snap(engine_settings)["chunks"]
    assert len(after) == len(before)
    assert [row for row in before if row not in after] == [
        row for row in before if row[0] == "MEMORY.md" and "Pangur" in row[4]
    ]


def test_inserting_a_line_shifts_numbers_without_reembedding(root, engine_settings) -> None:
    path = write(root, "MEMORY.md", "# Top\n\nintro\n\n" + SECTIONED)
    sync(engine_settings)

    def spans_of_fact() -> list[tuple[int, int]]:
        return [(h.start_line, h.end_line) for h in search(engine_settings, "fact 9.7", mode="keyword", limit=1)]

    before = spans_of_fact()
    path.write_text("# Top\n\nintro\nsecond intro line\n\n" + SECTIONED)
    embedder = recorder(engine_settings)
    sync(engine_settings, embedder)
    assert len(embedder.embedded) == 1  # only the intro chunk changed
    assert spans_of_fact() == [(start + 1, end + 1) for start, end in before]


def test_deleted_file_loses_its_rows(root, engine_kind, engine_settings) -> None:
    write(root, "notes/a.md", "# A\n\nalpha bravo\n")
    write(root, "notes/b.md", "# B\n\ncharlie delta\n")
    sync(engine_settings)
    (root / "notes/a.md").unlink()
    report = sync(engine_settings)
    assert report.removed == 1
    assert search(engine_settings, "alpha", mode="keyword") == []
    snapshot = snap(engine_settings)
    assert len(snapshot["vec"]) == 1 and snapshot.get("vec_rows", 1) == 1  # no vector left behind
    assert snapshot == fresh_rebuild(engine_kind, engine_settings)


def test_rename_reuses_cached_vectors(root, engine_settings) -> None:
    write(root, "notes/old.md", "# Garden\n\nThe tomatoes need staking.\n")
    sync(engine_settings)
    (root / "notes/old.md").rename(root / "notes/new.md")
    embedder = recorder(engine_settings)
    report = sync(engine_settings, embedder)
    assert report.removed == 1 and report.reindexed == 1
    assert embedder.embedded == [] and report.chunks_from_cache == 1
    [hit] = search(engine_settings, "tomatoes", mode="keyword")
    assert hit.path == "notes/new.md"


def test_kinds_and_dates(root, engine_settings) -> None:
    write(root, "SOUL.md", "I am a helpful assistant named Pim.\n")
    write(root, "MEMORY.md", "The user likes oolong tea.\n")
    write(root, "daily/2026-11-20.md", "Bought oolong tea.\n")
    write(root, "daily/not-a-date.md", "Misc oolong.\n")
    write(root, "projects/x/plan.md", "oolong plan\n")
    sync(engine_settings)
    with open_index(engine_settings, embedder=recorder(engine_settings)) as index:
        hits = {h.path: (h.kind, h.date) for h in index.search("oolong", mode="keyword")}
        kinds = index.status()["by_kind"]
    assert hits == {
        "MEMORY.md": ("memory", None),
        "daily/2026-11-20.md": ("daily", "2026-11-20"),
        "daily/not-a-date.md": ("note", None),
        "projects/x/plan.md": ("note", None),
    }
    assert kinds["soul"] == {"files": 1, "chunks": 1}


def test_frontmatter_is_stored_and_title_words_are_searchable(root, engine_settings) -> None:
    write(root, "projects/greenhouse-sensor.md", "---\ntitle: Soil probe\ntags: [esp32]\n---\nWiring notes.\n")
    sync(engine_settings)
    [hit] = search(engine_settings, "greenhouse esp32", mode="keyword")
    assert (hit.start_line, hit.end_line) == (5, 5)
    [(path, _kind, _date, _hash, frontmatter)] = snap(engine_settings)["files"]
    assert path == "projects/greenhouse-sensor.md" and '"tags": ["esp32"]' in frontmatter


def test_frontmatter_with_date_keys_is_stored_as_json(root, engine_settings) -> None:
    write(root, "MEMORY.md", "---\n2024-05-01: dentist\nwhen: 2024-05-02\n---\n# N\n\nx\n")
    write(root, "notes/b.md", "other\n")
    assert sync(engine_settings).reindexed == 2
    frontmatter = {row[0]: row[4] for row in snap(engine_settings)["files"]}
    assert frontmatter["MEMORY.md"] == '{"2024-05-01": "dentist", "when": "2024-05-02"}'


def test_model_change_triggers_announced_full_reembed(root, engine_settings) -> None:
    write(root, "MEMORY.md", SECTIONED)
    one, two = f"{engine_settings.model}/one", f"{engine_settings.model}/two"
    sync(engine_settings, RecordingEmbedder(model_id=one))
    second = RecordingEmbedder(model_id=two, dimensions=24)
    report = sync(engine_settings, second)
    assert report.full_reembed_reason and one in report.full_reembed_reason
    assert any("re-embedding every chunk" in w for w in report.warnings)
    assert len(second.embedded) == report.chunks_embedded > 0
    again = RecordingEmbedder(model_id=two, dimensions=24)
    assert sync(engine_settings, again).full_reembed_reason is None and again.embedded == []
    with open_index(engine_settings, embedder=again) as index:
        assert index.store.vec_dimensions() == 24
        assert index.search("fact 4.2", mode="vector")


def test_racy_rewrite_after_read_is_not_trusted(root, engine_settings) -> None:
    """A same-size rewrite keeping the mtime, during a slow embed, must not be stat-skipped later."""
    path = write(root, "notes/a.md", "# A\n\nalpha beta\n")

    class RewriteWhileEmbedding(RecordingEmbedder):
        def embed(self, texts):
            stat = path.stat()
            path.write_text("# A\n\nalpha GAMA\n")
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
            return super().embed(texts)

    sync(engine_settings, RewriteWhileEmbedding(model_id=engine_settings.model))
    sync(engine_settings)
    assert search(engine_settings, "gama", mode="keyword")


# -- equal to a fresh rebuild ------------------------------------------------------------------


def test_incremental_syncs_equal_a_fresh_rebuild(root, engine_kind, engine_settings) -> None:
    """Edits, a rename, a note added then deleted, frontmatter: three syncs end equal to a fresh index."""
    write(root, "MEMORY.md", SECTIONED)
    write(root, "daily/2026-11-19.md", "---\nmood: ok\n---\n- ran 5 km\n")
    write(root, "notes/a.md", "# A\n\none\n\n## B\n\ntwo\n")
    sync(engine_settings)
    (root / "notes/a.md").write_text("# A\n\none changed\n\n## B\n\ntwo\n\n## C\n\nthree\n")
    (root / "daily/2026-11-19.md").rename(root / "daily/2026-11-18.md")
    write(root, "notes/new.md", "brand new note\n")
    sync(engine_settings)
    (root / "notes/new.md").unlink()
    (root / "MEMORY.md").write_text(SECTIONED.replace("fact 3.3", "fact three"))
    sync(engine_settings)
    assert_equals_fresh_rebuild(engine_kind, engine_settings)


def test_syncs_of_some_paths_and_a_title_change_equal_a_fresh_rebuild(root, engine_kind, engine_settings) -> None:
    """A title change (its words are in every chunk's keyword row), a rename, a delete and a
    new note synced by path, then a section added by a full sync: equal to a fresh index."""
    fill(root)
    sync(engine_settings)
    write(root, "notes/garden.md", NOTES["notes/garden.md"].replace("Greenhouse", "Glasshouse"))
    (root / "daily/2024-05-02.md").rename(root / "daily/2024-05-03.md")
    (root / "SOUL.md").unlink()
    write(root, "notes/new.md", "# New\n\nA brand new note about kayaks.\n")
    write(root, "MEMORY.md", NOTES["MEMORY.md"] + "\n## Work\n\nStarted at the library.\n")
    sync(engine_settings, paths=["notes/garden.md", "daily", "SOUL.md", "notes/new.md"])
    sync(engine_settings)
    assert_equals_fresh_rebuild(engine_kind, engine_settings)
    assert [h.path for h in search(engine_settings, "glasshouse", mode="keyword")] == ["notes/garden.md"]


def test_rebuild_replaces_the_index_and_reuses_the_cache(root, engine_kind, engine_settings) -> None:
    fill(root)
    sync(engine_settings)
    before = snap(engine_settings)
    embedder = recorder(engine_settings)
    with open_index(engine_settings, write=True, embedder=embedder) as index:
        report = index.rebuild()
        assert index.search("penicillin", mode="keyword")  # the same open index reads the new one
    assert embedder.embedded == [] and report.reindexed == len(NOTES)
    assert snap(engine_settings) == before == fresh_rebuild(engine_kind, engine_settings)


# -- check and repair --------------------------------------------------------------------------


def test_check_is_healthy_finds_hidden_drift_and_repair_ends_healthy(root, engine_kind, engine_settings) -> None:
    """A same-size edit that keeps the mtime hides from a sync's stat check, not from
    ``check``; what ``check --repair`` does (a re-hashing sync; replacing the index when
    it is corrupt) ends healthy, equal to a fresh index, without embedding old texts again."""
    fill(root)
    sync(engine_settings)
    found = check(engine_settings)
    assert found.exit_code == HEALTHY and found.problems == []
    assert (found.files, found.chunks) == (len(NOTES), len(snap(engine_settings)["chunks"]))

    garden = root / "notes/garden.md"
    stat = garden.stat()
    garden.write_text(garden.read_text().replace("June", "July"))
    os.utime(garden, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    found = check(engine_settings)
    assert found.exit_code == DRIFT and "notes/garden.md" in json.dumps(found.as_dict())

    embedder = recorder(engine_settings)
    with open_index(engine_settings, write=True, embedder=embedder) as index:
        assert index.sync(rehash=True).reindexed == 1
    assert check(engine_settings).exit_code == HEALTHY
    assert embedder.embedded == ["Plan\n# Plan\n\nTomatoes in May, basil in July."]
    with open_index(engine_settings, write=True, embedder=embedder) as index:
        index.replace_damaged("check found it corrupt")  # what check --repair does to a corrupt index
    assert check(engine_settings).exit_code == HEALTHY and len(embedder.embedded) == 1
    assert_equals_fresh_rebuild(engine_kind, engine_settings)


def test_a_chunk_of_one_overlong_word_is_consistent(root, engine_settings) -> None:
    """A 3000-character word (PostgreSQL does not post terms over MAX_TERM_BYTES): the
    chunk is still consistent, found by vector search, and checks healthy."""
    fill(root, {"MEMORY.md": "# Facts\n\nshort words\n", "blob.md": "x" * 3000 + "\n"})
    sync(engine_settings)
    assert check(engine_settings).exit_code == HEALTHY
    assert "blob.md" in {r.path for r in search(engine_settings, "x" * 3000, mode="vector", budget_lines=None)}
    search(engine_settings, "x" * 3000, mode="keyword")  # no error


# -- queries, writers and errors ---------------------------------------------------------------


def test_queries_with_operators_quotes_and_emoji_are_safe(root, engine_settings) -> None:
    fill(root)
    sync(engine_settings)
    with open_index(engine_settings, embedder=recorder(engine_settings)) as index:
        for query in ['"unbalanced', "a OR b AND NOT", "NEAR(x y)", "🙂 emoji", "'; DROP TABLE chunks; --",
                      "x" * 3000, "bike*", "-bike", "col:bike", "^bike", "\\", "%_", "a\0b"]:  # fmt: skip
            for mode in ("keyword", "vector", "hybrid"):
                index.search(query, mode=mode)  # no error of any kind
        for empty in ("", "   "):  # a usage error (exit 64 in the CLI), never arbitrary hits
            with pytest.raises(UsageError):
                index.search(empty)
        assert index.search("bike", mode="keyword")  # and the index still answers


def test_second_writer_is_refused(root, engine_settings) -> None:
    write(root, "MEMORY.md", "x\n")
    with (
        open_index(engine_settings, write=True, embedder=recorder(engine_settings)),
        pytest.raises(LockedError),
        open_index(engine_settings, write=True, embedder=recorder(engine_settings)),
    ):
        pass


def test_search_before_index_is_a_clear_error(root, engine_settings) -> None:
    fill(root)
    with (
        pytest.raises(SchemaError, match="run 'memdex index' first"),
        open_index(engine_settings, embedder=recorder(engine_settings)) as index,
    ):
        index.search("anything")


def test_a_root_that_is_gone_changes_nothing(root, tmp_path, engine_kind) -> None:
    """A memory root that is renamed or unmounted under a running writer (index kept
    elsewhere: a SQLite file outside the root, or a server) is an error, never
    "every file was deleted"."""
    write(root, "MEMORY.md", "# Facts\n\nkeep me\n")
    settings = engine_kind.settings(root, elsewhere=tmp_path / "index" / "index.db", model="test/recording-gone")
    sync(settings)
    before = snap(settings)
    root.rename(tmp_path / "elsewhere")
    try:
        with pytest.raises(PathError, match="cannot list the memory root"):
            sync(settings)
        assert not root.exists()
    finally:
        if root.exists():  # made again by the failed sync: put the real one back
            for path in sorted(root.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
            root.rmdir()
        (tmp_path / "elsewhere").rename(root)
    assert snap(settings) == before


def test_the_same_folder_gives_the_same_chunks_on_every_engine(root, tmp_path, engine_settings) -> None:
    """The chunks are a function of the Markdown, not of the engine: equal to an SQLite index's."""
    fill(root)
    sync(engine_settings)
    reference = make_settings(root, tmp_path / "reference" / "index.db")
    sync(reference)
    assert snap(engine_settings)["chunks"] == snap(reference)["chunks"]
    assert snap(engine_settings)["files"] == snap(reference)["files"]
