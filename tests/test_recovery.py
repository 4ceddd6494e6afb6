"""Rebuild, check and recovery: the index survives damage, crashes and failures.

What a user sees: ``memdex rebuild`` swaps in a complete new index (readers
see the old one or the new one, never a mix) and costs no model calls with a
warm cache; a rebuild that fails keeps the old index. ``memdex check`` exits
0 (healthy), 1 (drift: behind the Markdown) or 2 (corrupt) and ``--repair``
fixes both. A damaged index is moved aside as ``index.db.corrupt-*`` (newest
three kept) by the next command, with one warning line, and rebuilt from the
Markdown, which is never written. A writer killed with SIGKILL at any moment
leaves an index that ``check`` does not call corrupt and that the next
``memdex index`` brings up to date.

Every index here is a real SQLite file under ``tmp_path``; only the embedding
model is replaced by ``RecordingEmbedder``. "Equal to a fresh rebuild" means
``store.snapshot()`` (files, chunks with line ranges and text, full-text rows,
vectors) equals that of the same folder indexed from scratch into another
database. The kill tests run ``tests/index_process.py`` as a real process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import apsw
import numpy as np
import pytest
import sqlite_vec
from click.testing import CliRunner, Result
from conftest import RecordingEmbedder, write
from test_cli import assert_one_line_error, ok_json, run, runner  # noqa: F401

import indexer.api
import indexer.embedding.configured
import indexer.indexing.lock
import indexer.indexing.sync
import indexer.indexing.writer
import indexer.store.sqlite.connection
import indexer.store.sqlite.recovery
from indexer import make_settings, open_index
from indexer.config.settings import DEFAULT_MODEL, Settings
from indexer.embedding.resolve import resolve_model
from indexer.errors import UnusableIndex
from indexer.sources.base import embedded_text
from indexer.store.sqlite.recovery import temporary_path

TESTS = Path(__file__).resolve().parent
HELPER = TESTS / "index_process.py"
TIMEOUT = 30.0
PAGE = 4096
CONFIGURED_MODEL = resolve_model(DEFAULT_MODEL)[0]
KILL_TRIALS = int(os.environ.get("MEMDEX_KILL_TRIALS", "5"))
FLIP_TRIALS = int(os.environ.get("MEMDEX_FLIP_TRIALS", "8"))
SEED = int(os.environ.get("MEMDEX_RECOVERY_SEED", "20261121"))

MEMORY = """---
title: Long-term facts
tags: [facts]
---
# Tools

- I edit everything in Helix.
- The laptop is a ThinkPad X1.

# People

Ada is my sister; she lives in Lisbon.
"""


def sectioned(name: str, sections: int) -> str:
    return f"# {name}\n\n" + "\n".join(
        f"## {name} part {n}\n\n- {name} fact {n}.1: the value is {n * 7}\n- {name} fact {n}.2 about the garden\n"
        for n in range(sections)
    )


NOTES = {
    "MEMORY.md": MEMORY,
    "SOUL.md": "# Tone\n\nBe brief and kind.\n",
    "daily/2024-05-01.md": "# Wednesday\n\nWent bouldering with Ada.\n\n## Later\n\nFixed the thermostat script.\n",
    "daily/2024-05-02.md": "- dentist at 9\n- bought sourdough flour\n",
    "notes/garden.md": "---\ntitle: Garden\n---\n# Garden\n\nThe tomatoes need staking in June.\n",
    "notes/recipes/bread.md": sectioned("Bread", 4),
    "projects/greenhouse.md": sectioned("Greenhouse", 6),
    "projects/sensor.md": sectioned("Sensor", 3),
}


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> list[RecordingEmbedder]:
    """Every embedder the CLI builds is a RecordingEmbedder that records the
    configured model's id (as the real one would, so ``check`` sees no model
    drift); returns the ones built."""
    built: list[RecordingEmbedder] = []

    def factory(name: str, *args: Any, **kwargs: Any) -> RecordingEmbedder:
        embedder = RecordingEmbedder(model_id=resolve_model(name)[0])
        built.append(embedder)
        return embedder

    monkeypatch.setattr(indexer.embedding.configured, "LazyEmbedder", factory)
    return built


@pytest.fixture
def memory(root: Path) -> Path:
    for rel, text in NOTES.items():
        write(root, rel, text)
    return root


def model(**kwargs: Any) -> RecordingEmbedder:
    """The test embedder under the configured model's name."""
    return RecordingEmbedder(model_id=CONFIGURED_MODEL, **kwargs)


class HookedEmbedder(RecordingEmbedder):
    """Calls ``hook(call_number, texts)`` at the start of each embed call (numbered from 1)."""

    def __init__(self, hook: Callable[[int, Sequence[str]], None], **kwargs: Any) -> None:
        kwargs.setdefault("model_id", CONFIGURED_MODEL)
        super().__init__(**kwargs)
        self.hook = hook
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.hook(self.calls, texts)
        return super().embed(texts)


def sync(settings: Settings, embedder: RecordingEmbedder | None = None) -> Any:
    with open_index(settings, write=True, embedder=embedder or model()) as index:
        return index.sync()


def current(settings: Settings) -> dict[str, Any]:
    """The index's content, read without any recovery."""
    with open_index(settings, embedder=model(), recover=False) as index:
        return index.store.snapshot()


def fresh_rebuild(root: Path, embedder: RecordingEmbedder | None = None) -> dict[str, Any]:
    """The content of a fresh index of ``root`` built into another database."""
    with tempfile.TemporaryDirectory(prefix="memdex-fresh-") as tmp:
        settings = make_settings(root, Path(tmp) / "index.db")
        sync(settings, embedder or model())
        return current(settings)


def markdown(root: Path) -> dict[str, bytes]:
    """Every file of the memory folder (the index folder aside), byte for byte."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".memdex" not in p.relative_to(root).parts
    }


def quarantined(settings: Settings, name: str | None = None) -> list[Path]:
    name = name or settings.index_path.name
    found = [p for p in settings.index_dir.glob(f"{name}.corrupt-*") if not p.name.endswith("-wal")]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns)


def leftovers(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.index_dir.glob(temporary_path(settings.index_path).name + "*"))


def differing(got: dict[str, Any], expected: dict[str, Any]) -> dict[str, list[Any]]:
    """The snapshot rows only one side has, per table (for failure messages)."""
    return {
        key: [row for row in got[key] if row not in expected[key]][:3]
        for key in expected
        if got.get(key) != expected[key] and isinstance(expected[key], list)
    }


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def check(runner: CliRunner, root: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = run(runner, "--root", root, "check", "--json", *extra)
    assert "Traceback" not in result.output, result.output
    try:
        return result.exit_code, json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"check printed no JSON (exit {result.exit_code}): {result.stdout!r} {result.stderr!r}")


@contextmanager
def raw_connection(path: Path) -> Iterator[apsw.Connection]:
    """A plain SQLite connection to an index, outside memdex, with sqlite-vec loaded."""
    connection = apsw.Connection(str(path))
    connection.enable_load_extension(True)
    connection.load_extension(sqlite_vec.loadable_path())
    try:
        yield connection
    finally:
        connection.close()


def root_page(settings: Settings, table: str) -> int:
    with raw_connection(settings.index_path) as connection:
        (page,) = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    return page


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.005)


# -- corruptions: each damages a closed index -----------------------------------------


def garbage_header(settings: Settings) -> None:
    with open(settings.index_path, "r+b") as handle:
        handle.write(b"memdex test: this is not a database header " * 3)


def truncate_to_half(settings: Settings) -> None:
    with open(settings.index_path, "r+b") as handle:
        handle.truncate(settings.index_path.stat().st_size // 2)


def damaged_fts_page(settings: Settings) -> None:
    """One page of the full-text index overwritten: the file opens, searches and writes fail."""
    page = root_page(settings, "chunks_fts_data")
    with open(settings.index_path, "r+b") as handle:
        handle.seek((page - 1) * PAGE)
        handle.write(b"\xa5" * PAGE)


def damaged_vec_page(settings: Settings) -> None:
    page = root_page(settings, "chunks_vec_vector_chunks00")
    with open(settings.index_path, "r+b") as handle:
        handle.seek((page - 1) * PAGE)
        handle.write(b"\xa5" * PAGE)


def sql_damage(statement: str) -> Callable[[Settings], None]:
    def damage(settings: Settings) -> None:
        with raw_connection(settings.index_path) as connection:
            connection.execute(statement)

    damage.__name__ = statement
    return damage


deleted_fts_row = sql_damage("DELETE FROM chunks_fts WHERE rowid = (SELECT min(id) FROM chunks)")
deleted_vec_row = sql_damage("DELETE FROM chunks_vec WHERE rowid = (SELECT max(id) FROM chunks)")
changed_chunk_text = sql_damage(
    "UPDATE chunks SET text = text || ' (tampered)' WHERE id = (SELECT id FROM chunks ORDER BY id LIMIT 1 OFFSET 3)"
)

SEARCH = ("search", "staking", "--mode", "keyword", "--json")
REPAIR = ("check", "--repair", "--json")
INDEX = ("index", "--json")


# -- rebuild ---------------------------------------------------------------------------------


def test_rebuild_command_equals_a_fresh_index_and_reuses_the_cache(runner, memory, fake_model, settings) -> None:
    """`memdex rebuild` gives exactly a fresh index, embeds nothing when the cache
    is warm, picks up edits not yet indexed, and leaves no temporary file."""
    first = ok_json(run(runner, "--root", memory, "index", "--json"))
    chunks = first["chunks_embedded"]
    assert chunks >= 20

    report = ok_json(run(runner, "--root", memory, "rebuild", "--json"))
    assert report["chunks_embedded"] == 0
    assert report["chunks_from_cache"] == chunks
    assert report["reindexed"] == len(NOTES)
    assert leftovers(settings) == []
    assert current(settings) == fresh_rebuild(memory)

    path = memory / "projects/greenhouse.md"
    path.write_text(path.read_text().replace("fact 3.1: the value is 21", "fact 3.1: the value is 22"))
    fake_model.clear()
    report = ok_json(run(runner, "--root", memory, "rebuild", "--json"))
    assert report["chunks_embedded"] == 1
    [embedder] = fake_model
    assert len(embedder.embedded) == 1 and "the value is 22" in embedder.embedded[0]
    assert leftovers(settings) == []
    assert current(settings) == fresh_rebuild(memory)
    assert check(runner, memory)[0] == 0


@pytest.mark.parametrize("how", ["rebuild", "model change"])
def test_a_rebuild_that_fails_part_way_keeps_the_prior_index(memory, settings, monkeypatch, how) -> None:
    """The model fails in the middle of a rebuild (explicit, or the rebuild beside
    that a model change starts): the error reaches the caller, the index keeps
    exactly its prior content, still answers, and no temporary file is left."""
    sync(settings)
    before = current(settings)
    for path in settings.index_dir.glob("embeddings.db*"):
        path.unlink()  # an empty cache: every text needs the model
    monkeypatch.setattr(indexer.indexing.writer, "EMBED_GROUP", 4)

    def fail_on_second_call(call: int, texts: Sequence[str]) -> None:
        if call == 2:
            raise RuntimeError("the model crashed")

    other = {"model_id": "test/other-model", "dimensions": 24} if how == "model change" else {}
    failing = HookedEmbedder(fail_on_second_call, **other)
    with open_index(settings, write=True, embedder=failing) as index:
        with pytest.raises(RuntimeError, match="the model crashed"):
            index.rebuild() if how == "rebuild" else index.sync()
        assert failing.calls == 2
        assert leftovers(settings) == []
        assert index.store.snapshot() == before
        assert [hit.path for hit in index.search("staking", mode="keyword")] == ["notes/garden.md"]
    assert current(settings) == before
    assert leftovers(settings) == []
    sync(settings)  # the next run completes normally
    assert current(settings) == before == fresh_rebuild(memory)


def test_leftover_of_a_crashed_rebuild_is_removed_by_the_next_writer(memory, settings) -> None:
    """A rebuild killed before it finished leaves index.db.rebuild (+ -wal, -shm):
    the next writer removes them and the index itself is untouched."""
    sync(settings)
    before = current(settings)
    temporary = temporary_path(settings.index_path)
    data = settings.index_path.read_bytes()
    temporary.write_bytes(data[: len(data) // 2])
    Path(f"{temporary}-wal").write_bytes(b"\x37\x7f\x06\x82" + os.urandom(5000))
    Path(f"{temporary}-shm").write_bytes(bytes(32768))
    with open_index(settings, write=True, embedder=model()) as index:
        assert leftovers(settings) == []
        index.sync()
    assert current(settings) == before


def test_readers_during_a_rebuild_see_the_old_or_the_new_index_never_a_mix(
    memory, settings, monkeypatch
) -> None:
    """While a rebuild runs, searches keep answering from the complete old index;
    a reader whose transaction spans the swap keeps the old content, and the
    next reader sees the complete new one. A reader polling all along never
    sees anything else."""
    for n in range(24):
        write(memory, f"notes/bulk/n{n:02d}.md", sectioned(f"Bulk{n}", 2))
    sync(settings)
    old = current(settings)
    for n in range(0, 24, 3):
        write(memory, f"notes/bulk/n{n:02d}.md", sectioned(f"Edited{n}", 3))
    for n in (1, 4):
        (memory / f"notes/bulk/n{n:02d}.md").unlink()
    write(memory, "notes/bulk/new.md", sectioned("Brandnew", 2))
    new = fresh_rebuild(memory)
    assert new != old
    monkeypatch.setattr(indexer.indexing.writer, "EMBED_GROUP", 4)

    inside: list[bool] = []

    def read_while_embedding(call: int, texts: Sequence[str]) -> None:
        with open_index(settings, embedder=model()) as reader:
            inside.append(reader.store.snapshot() == old)

    across: list[tuple[bool, bool, bool]] = []
    real_copy = indexer.store.sqlite.connection.copy_into

    def copy_while_reading(destination: apsw.Connection, source: apsw.Connection) -> None:
        with open_index(settings, embedder=model()) as reader:
            with reader.store.connection:  # one read transaction across the swap
                before_copy = reader.store.snapshot() == old
                real_copy(destination, source)
                held = reader.store.snapshot() == old
            across.append((before_copy, held, reader.store.snapshot() == new))

    monkeypatch.setattr(indexer.store.sqlite.connection, "copy_into", copy_while_reading)

    seen: list[str] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def poll() -> None:
        try:
            with open_index(settings, embedder=model()) as reader:
                while not done.is_set():
                    with reader.store.connection:  # the snapshot's queries in one read transaction
                        state = reader.store.snapshot()
                    seen.append("old" if state == old else "new" if state == new else "MIXED")
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
            raise

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        wait_until(lambda: len(seen) > 0 or bool(errors), TIMEOUT, "the polling reader")
        embedder = HookedEmbedder(read_while_embedding)
        with open_index(settings, write=True, embedder=embedder) as index:
            index.rebuild()
        wait_until(lambda: "new" in seen or bool(errors), TIMEOUT, "the polling reader to see the new index")
    finally:
        done.set()
        poller.join(TIMEOUT)
    assert errors == []
    assert embedder.calls >= 3 and inside == [True] * embedder.calls
    assert across == [(True, True, True)]
    assert "MIXED" not in seen
    assert seen.index("new") > 0 and "old" not in seen[seen.index("new") :]
    assert current(settings) == new


def test_model_change_reembeds_everything_beside_the_old_index(memory, settings) -> None:
    """Another model (other id and dimensions): the next sync announces a full
    re-embed, builds the new index beside the old one (searches keep the old
    content meanwhile) and ends equal to a fresh index built with the new model."""
    first = RecordingEmbedder(model_id="test/one")
    sync(settings, first)
    old = current(settings)
    assert {len(blob) for _, _, blob in old["vec"]} == {16 * 4}
    distinct_texts = len(set(first.embedded))

    views: list[bool] = []

    def read_old(call: int, texts: Sequence[str]) -> None:
        with open_index(settings, embedder=model()) as reader:
            views.append(reader.store.snapshot() == old)

    second = HookedEmbedder(read_old, model_id="test/two", dimensions=24)
    report = sync(settings, second)
    assert report.full_reembed_reason and "test/one" in report.full_reembed_reason
    assert "test/two" in report.full_reembed_reason
    assert any("re-embedding every chunk" in w for w in report.warnings)
    assert views and all(views)
    assert len(second.embedded) == len(set(second.embedded)) == distinct_texts == report.chunks_embedded
    assert leftovers(settings) == []
    new = current(settings)
    assert {len(blob) for _, _, blob in new["vec"]} == {24 * 4}
    assert new == fresh_rebuild(memory, RecordingEmbedder(model_id="test/two", dimensions=24))
    with open_index(settings, embedder=RecordingEmbedder(model_id="test/two", dimensions=24)) as index:
        assert index.store.meta()["model"] == "test/two"
        assert index.search("staking", mode="vector")


# -- files that change under a sync or a rebuild ------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "rebuild"])
def test_file_deleted_while_its_chunks_are_embedded_gets_no_rows(memory, settings, mode) -> None:
    """A new file is read, then deleted while the model embeds it: read again, it is
    found gone and never enters the index; written again later, the next sync indexes it."""
    sync(settings)
    victim = write(memory, "notes/victim.md", "# Victim\n\nthe first ocelot draft\n")

    def delete(call: int, texts: Sequence[str]) -> None:
        if call == 1:
            assert any("ocelot" in text for text in texts), "read before the delete"
            victim.unlink()

    embedder = HookedEmbedder(delete)
    with open_index(settings, write=True, embedder=embedder) as index:
        report = index.rebuild() if mode == "rebuild" else index.sync()
    assert embedder.calls == 1
    assert report.reread == 1 and not any("notes/victim.md" in w for w in report.warnings)
    assert "notes/victim.md" not in {row[0] for row in current(settings)["files"]}
    assert not any("ocelot" in row[4] for row in current(settings)["chunks"])
    assert current(settings) == fresh_rebuild(memory)

    write(memory, "notes/victim.md", "# Victim\n\nthe second ocelot, much longer this time\n")
    sync(settings)
    assert any("second ocelot" in row[4] for row in current(settings)["chunks"])
    assert current(settings) == fresh_rebuild(memory)


def test_indexed_file_deleted_while_its_new_text_is_embedded(memory, settings) -> None:
    """An indexed file is edited, read, then deleted while the edit is embedded:
    the edit is never written; read again, the file is found gone and its rows
    are removed by the same sync."""
    sync(settings)
    garden = memory / "notes/garden.md"
    garden.write_text(garden.read_text() + "\nA new line about courgettes.\n")

    def delete(call: int, texts: Sequence[str]) -> None:
        garden.unlink(missing_ok=True)

    sync(settings, HookedEmbedder(delete))
    assert not any("courgettes" in row[4] for row in current(settings)["chunks"])
    assert "notes/garden.md" not in {row[0] for row in current(settings)["files"]}
    assert current(settings) == fresh_rebuild(memory)


@pytest.mark.parametrize("mode", ["sync", "rebuild"])
def test_file_rewritten_while_its_chunks_are_embedded_is_not_written_stale(memory, settings, mode) -> None:
    """An indexed file is edited; while the edit is embedded it is rewritten
    again: the text that was read is not written (it is already stale); the file
    is read again at once and the same sync indexes what is on disk."""
    sync(settings)
    garden = memory / "notes/garden.md"
    garden.write_text(garden.read_text().replace("staking in June", "staking in July, says the almanac"))

    def rewrite(call: int, texts: Sequence[str]) -> None:
        if call == 1:
            assert any("almanac" in text for text in texts)
            garden.write_text(garden.read_text().replace("almanac", "neighbour, who grows marrows"))

    embedder = HookedEmbedder(rewrite)
    with open_index(settings, write=True, embedder=embedder) as index:
        report = index.rebuild() if mode == "rebuild" else index.sync()
    assert embedder.calls == 2  # the first version, then the new text read again
    assert report.reread == 1 and not any("notes/garden.md" in w for w in report.warnings)
    texts = [row[4] for row in current(settings)["chunks"]]
    assert not any("almanac" in text for text in texts)
    assert any("marrows" in row[4] for row in current(settings)["chunks"])
    assert current(settings) == fresh_rebuild(memory)


# -- check -------------------------------------------------------------------------------------


def test_check_on_a_healthy_index_exits_0(runner, memory, fake_model) -> None:
    """`memdex check` on an up-to-date index: exit 0, state healthy, counts."""
    code, found = check(runner, memory)
    assert code == 1 and "no index" in found["problems"][0]["message"]
    report = ok_json(run(runner, "--root", memory, "index", "--json"))
    code, found = check(runner, memory)
    assert code == 0, found
    assert found["state"] == "healthy" and found["problems"] == []
    assert found["files"] == len(NOTES) and found["chunks"] == report["chunks_embedded"]
    plain = run(runner, "--root", memory, "check")
    assert plain.exit_code == 0 and plain.stdout.startswith("healthy:")


def edit_a_file(root: Path) -> str:
    path = root / "notes/recipes/bread.md"
    path.write_text(path.read_text().replace("the value is 14", "the value is 15"))
    return "notes/recipes/bread.md"


def add_a_file(root: Path) -> str:
    write(root, "notes/new-idea.md", "# Idea\n\nA solar dehydrator for the tomatoes.\n")
    return "notes/new-idea.md"


def delete_a_file(root: Path) -> str:
    (root / "projects/sensor.md").unlink()
    return "projects/sensor.md"


@pytest.mark.parametrize("change", [edit_a_file, add_a_file, delete_a_file], ids=["edited", "added", "deleted"])
def test_check_reports_drift_naming_the_file_and_repair_syncs_it(runner, memory, fake_model, settings, change):
    """A Markdown file edited, added or deleted since the last index: check exits
    1 and names it; --repair syncs it (no quarantine) and ends healthy."""
    ok_json(run(runner, "--root", memory, "index", "--json"))
    path = change(memory)
    code, found = check(runner, memory)
    assert code == 1 and found["state"] == "drift"
    assert any(path in problem["message"] for problem in found["problems"]), found
    plain = run(runner, "--root", memory, "check")
    assert plain.exit_code == 1 and path in plain.stdout

    code, repaired = check(runner, memory, "--repair")
    assert code == 0, repaired
    assert repaired["repaired"] is True and repaired["state"] == "drift"
    assert repaired["after"]["state"] == "healthy"
    assert quarantined(settings) == []
    assert current(settings) == fresh_rebuild(memory)


CORRUPTIONS = [
    pytest.param(garbage_header, INDEX, id="garbage-header-index"),
    pytest.param(garbage_header, SEARCH, id="garbage-header-search"),
    pytest.param(garbage_header, REPAIR, id="garbage-header-check-repair"),
    pytest.param(truncate_to_half, INDEX, id="truncated-index"),
    pytest.param(truncate_to_half, SEARCH, id="truncated-search"),
    pytest.param(truncate_to_half, REPAIR, id="truncated-check-repair"),
    pytest.param(damaged_fts_page, INDEX, id="damaged-page-index"),
    pytest.param(damaged_fts_page, SEARCH, id="damaged-page-search"),
    pytest.param(damaged_fts_page, REPAIR, id="damaged-page-check-repair"),
    pytest.param(deleted_fts_row, REPAIR, id="deleted-fts-row-check-repair"),
    pytest.param(deleted_vec_row, REPAIR, id="deleted-vec-row-check-repair"),
    pytest.param(changed_chunk_text, REPAIR, id="changed-chunk-text-check-repair"),
]


@pytest.mark.parametrize(("damage", "command"), CORRUPTIONS)
def test_corrupt_index_is_reported_then_moved_aside_and_rebuilt(
    runner, memory, fake_model, settings, damage, command
) -> None:
    """check exits 2 on a damaged index and changes nothing; the next command
    recovers it: one warning line, the damaged file kept as index.db.corrupt-*,
    an index equal to a fresh rebuild (including an edit made meanwhile), the
    command's own answer, and the Markdown untouched."""
    ok_json(run(runner, "--root", memory, "index", "--json"))
    good = settings.index_path.read_bytes()
    damage(settings)
    edit_a_file(memory)  # a change since the last index: writers must get to it
    damaged = settings.index_path.read_bytes()
    files = markdown(memory)

    code, found = check(runner, memory)
    assert code == 2 and found["state"] == "corrupt", found
    assert all(problem["kind"] in ("corrupt", "drift") for problem in found["problems"])
    assert settings.index_path.read_bytes() == damaged and quarantined(settings) == []

    result = run(runner, "--root", memory, *command)
    answer = ok_json(result)
    warnings = stderr_lines(result)
    assert len(warnings) == 1 and "moved it to index.db.corrupt-" in warnings[0], result.stderr
    [kept] = quarantined(settings)
    assert kept.name in warnings[0]
    assert_damage_kept(kept.read_bytes(), good, damaged)
    if command is SEARCH:
        assert [hit["path"] for hit in answer] == ["notes/garden.md"]
    elif command is REPAIR:
        assert answer["after"]["state"] == "healthy"
    assert current(settings) == fresh_rebuild(memory)
    assert check(runner, memory)[0] == 0
    assert markdown(memory) == files


def assert_damage_kept(kept: bytes, good: bytes, damaged: bytes) -> None:
    """The quarantined file holds the damage as it was. (A sync may have committed
    other rows before it reached the damaged page; those bytes may differ.)"""
    if kept == damaged:
        return
    assert len(kept) == len(damaged) == len(good), "the damaged file was not kept as it was"
    before, broken, now = (np.frombuffer(data, dtype=np.uint8) for data in (good, damaged, kept))
    changed = before != broken
    assert changed.any() and (now[changed] == broken[changed]).all(), "the damage is no longer in the kept file"


def test_flipped_bytes_are_found_by_check_or_harmless(runner, memory, fake_model, settings) -> None:
    """About 30 random bits flipped in the pages after the first, several times
    (seeded): check exits 2 and --repair rebuilds, or (the flips hit free space
    or values nothing reads) check exits 0/1 and the index still equals a
    fresh rebuild after at most a --repair. The Markdown is never touched.
    (A flip inside a chunk's full-text copy that keeps its tokens is found by
    comparing the rows with the Markdown; see
    test_check_finds_rows_that_do_not_match_the_markdown.)"""
    ok_json(run(runner, "--root", memory, "index", "--json"))
    good = settings.index_path.read_bytes()
    assert len(good) > 8 * PAGE
    files = markdown(memory)
    expected = fresh_rebuild(memory)
    outcomes = []
    for trial in range(FLIP_TRIALS):
        rng = random.Random(SEED + trial)
        for path in settings.index_dir.glob("index.db*"):
            path.unlink()
        data = bytearray(good)
        for _ in range(30):
            data[rng.randrange(PAGE, len(data))] ^= 1 << rng.randrange(8)
        settings.index_path.write_bytes(bytes(data))

        code, found = check(runner, memory)
        outcomes.append(code)
        assert code in (0, 1, 2)
        if code:
            code, repaired = check(runner, memory, "--repair")
            assert code == 0, (trial, found, repaired)
            assert repaired["after"]["state"] == "healthy"
        got = current(settings)
        assert got == expected, f"trial {trial}: check said {found['state']}; differs: {differing(got, expected)}"
    assert outcomes.count(2) >= FLIP_TRIALS // 2, outcomes
    assert markdown(memory) == files


def test_only_the_newest_three_damaged_indexes_are_kept(runner, memory, fake_model, settings) -> None:
    """Five recoveries in a row (by index, search and check --repair): the three
    most recent damaged files are kept, older ones deleted; the index is right."""
    files = markdown(memory)
    ok_json(run(runner, "--root", memory, "index", "--json"))
    commands = [INDEX, SEARCH, REPAIR, INDEX, SEARCH]
    for number, command in enumerate(commands):
        settings.index_path.write_bytes(f"damaged index number {number} ".encode() * 200)
        result = run(runner, "--root", memory, *command)
        ok_json(result)
        assert len(stderr_lines(result)) == 1, result.stderr
    kept = [path.read_bytes()[:22] for path in quarantined(settings)]
    assert kept == [f"damaged index number {n}".encode() for n in (2, 3, 4)]
    assert current(settings) == fresh_rebuild(memory)
    assert markdown(memory) == files


# -- readers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", [garbage_header, damaged_fts_page], ids=["at-open", "mid-search"])
def test_reader_repairs_a_damaged_index_when_no_writer_runs(memory, settings, damage) -> None:
    """A search (read-only open) on a damaged index, with no writer running,
    moves it aside, rebuilds it and answers."""
    sync(settings)
    damage(settings)
    with open_index(settings, embedder=model()) as index:
        hits = index.search("staking", mode="keyword")
        assert [hit.path for hit in hits] == ["notes/garden.md"]
        assert index.recovered_from
    assert len(quarantined(settings)) == 1
    assert current(settings) == fresh_rebuild(memory)


@pytest.mark.parametrize("damage", [garbage_header, damaged_fts_page], ids=["at-open", "mid-search"])
def test_reader_cannot_repair_while_a_writer_holds_the_lock(runner, memory, fake_model, settings, damage) -> None:
    """While another process holds the writer lock, a search on a damaged index
    fails with UnusableIndex (CLI: exit 2, one line) and leaves the file as it
    is; once the writer is gone the next search repairs it."""
    sync(settings)
    damage(settings)
    damaged = settings.index_path.read_bytes()
    lock = indexer.indexing.lock.acquire_lock(settings.lock_path)
    try:
        with pytest.raises(UnusableIndex, match="cannot be repaired now"):
            with open_index(settings, embedder=model()) as index:
                index.search("staking", mode="keyword")
        result = run(runner, "--root", memory, *SEARCH)
        assert result.exit_code == 2
        assert_one_line_error(result, contains="cannot be repaired now")
        assert settings.index_path.read_bytes() == damaged and quarantined(settings) == []
    finally:
        lock.close()
    assert [hit["path"] for hit in ok_json(run(runner, "--root", memory, *SEARCH))] == ["notes/garden.md"]
    assert current(settings) == fresh_rebuild(memory)


# -- the embedding cache ----------------------------------------------------------------------


def test_garbage_embedding_cache_is_moved_aside_and_the_sync_works(runner, memory, fake_model, settings) -> None:
    """embeddings.db overwritten with garbage: the next `memdex index` warns once,
    keeps the damaged cache as embeddings.db.corrupt-*, starts a new one, and
    the index is correct."""
    ok_json(run(runner, "--root", memory, "index", "--json"))
    settings.cache_path.write_bytes(b"not an embedding cache " * 500)
    edit_a_file(memory)
    result = run(runner, "--root", memory, "index", "--json")
    report = ok_json(result)
    warnings = stderr_lines(result)
    assert len(warnings) == 1 and "embedding cache" in warnings[0], result.stderr
    [kept] = quarantined(settings, settings.cache_path.name)
    assert kept.name in warnings[0] and kept.read_bytes().startswith(b"not an embedding cache")
    assert report["reindexed"] == 1 and report["chunks_embedded"] > 0
    assert quarantined(settings) == []
    assert current(settings) == fresh_rebuild(memory)
    assert check(runner, memory)[0] == 0


def non_unit(blob: bytes) -> bytes:
    return (np.frombuffer(blob, dtype=np.float32) * 1.5).astype(np.float32).tobytes()


def not_finite(blob: bytes) -> bytes:
    vector = np.frombuffer(blob, dtype=np.float32).copy()
    vector[3] = np.nan
    return vector.tobytes()


def wrong_length(blob: bytes) -> bytes:
    return blob[:-4]


@pytest.mark.parametrize("spoil", [non_unit, not_finite, wrong_length])
def test_implausible_cached_vector_is_not_trusted(memory, settings, spoil) -> None:
    """One cached vector damaged in place (raw SQL, the file stays a valid
    database): the next rebuild embeds exactly that chunk's text again and the
    index equals a fresh one."""
    sync(settings)
    with raw_connection(settings.index_path) as connection:
        heading, text, digest = connection.execute(
            "SELECT heading, text, hash FROM chunks WHERE path = 'projects/greenhouse.md' "
            "ORDER BY start_line LIMIT 1 OFFSET 2"
        ).fetchone()
    cache = apsw.Connection(str(settings.cache_path))
    try:
        (blob,) = cache.execute("SELECT vector FROM embeddings WHERE hash = ?", (digest,)).fetchone()
        with cache:
            cache.execute("UPDATE embeddings SET vector = ? WHERE hash = ?", (spoil(bytes(blob)), digest))
    finally:
        cache.close()
    embedder = model()
    with open_index(settings, write=True, embedder=embedder) as index:
        index.rebuild()
    assert embedder.embedded == [embedded_text(heading, text)]
    assert current(settings) == fresh_rebuild(memory)
    again = model()
    with open_index(settings, write=True, embedder=again) as index:
        index.rebuild()
    assert again.embedded == []


# -- kill -9 ------------------------------------------------------------------------------------


def bulk(root: Path, count: int, marker: str) -> None:
    for n in range(count):
        write(root, f"bulk/{'abc'[n % 3]}/f{n:03d}.md", bulk_text(n, marker))


def bulk_text(n: int, marker: str) -> str:
    return (
        f"# File {n}\n\n{marker} opening paragraph of file {n}\n\n## Part\n\n- item {n} alpha\n- item {n} bravo\n"
        f"\n## Other\n\nclosing words {n} {marker}\n"
    )


def mutate(root: Path, rng: random.Random, marker: str) -> None:
    """Edit about 60% of the bulk files, delete a few, add and rename some."""
    files = sorted((root / "bulk").rglob("*.md"))
    for path in files:
        if rng.random() < 0.6:
            path.write_text(bulk_text(rng.randrange(10_000), marker))
    for path in rng.sample(files, 4):
        path.unlink(missing_ok=True)
    for path in rng.sample([p for p in files if p.exists()], 3):
        os.replace(path, path.with_name("moved-" + path.name))
    for n in range(4):
        write(root, f"bulk/new/{marker}-{n}.md", bulk_text(rng.randrange(10_000), marker))


def rows_with(db_path: Path, marker: str) -> int:
    """Chunks containing ``marker`` (0 while the database does not exist or is being created)."""
    try:
        connection = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READWRITE)
    except apsw.Error:
        return 0
    try:
        return connection.execute("SELECT count(*) FROM chunks WHERE instr(text, ?) > 0", (marker,)).fetchone()[0]
    except apsw.Error:
        return 0
    finally:
        connection.close()


def start_indexer(root: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HELPER), str(root), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_once_written(process: subprocess.Popen[str], target: Path, marker: str, delay: float) -> bool:
    """Wait until the writer has committed rows with ``marker``, then SIGKILL it
    ``delay`` seconds later. True when it was killed, False when it had finished."""
    try:
        wait_until(
            lambda: rows_with(target, marker) > 0 or process.poll() is not None, TIMEOUT, "the writer's first rows"
        )
        time.sleep(delay)  # the fault-injection moment, drawn by the caller
        os.kill(process.pid, signal.SIGKILL)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode == -signal.SIGKILL:
        return True
    assert process.returncode == 0, stderr
    return False


def test_writer_killed_at_random_moments_leaves_an_index_that_converges(runner, root, fake_model, settings) -> None:
    """A sync or rebuild killed with SIGKILL at a random moment: check never
    reports corruption (only drift), and the next `memdex index` (which also
    removes a killed rebuild's temporary file) makes the index equal to a
    fresh rebuild. Files change between trials."""
    rng = random.Random(SEED)
    bulk(root, 150, "trial0")
    killed = 0
    for trial in range(KILL_TRIALS):
        marker = f"trial{trial}"
        if trial:
            mutate(root, rng, marker)
        rebuild = trial % 3 == 2
        target = temporary_path(settings.index_path) if rebuild else settings.index_path
        process = start_indexer(root, *(["--rebuild"] if rebuild else []), "--embed-delay", "0.03")
        killed += kill_once_written(process, target, marker, rng.uniform(0.0, 0.5))

        code, found = check(runner, root)
        assert code in (0, 1), (trial, found)
        assert all(problem["kind"] == "drift" for problem in found["problems"]), (trial, found)
        result = run(runner, "--root", root, "index", "--json")
        ok_json(result)
        assert stderr_lines(result) == [], result.stderr
        assert leftovers(settings) == [] and quarantined(settings) == []
        assert current(settings) == fresh_rebuild(root), trial
    assert killed >= (KILL_TRIALS + 1) // 2, f"only {killed} of {KILL_TRIALS} writers were still running"


def test_deleting_the_wal_of_a_killed_writer_is_drift_that_index_repairs(runner, root, fake_model, settings) -> None:
    """A writer is killed, then its -wal file is deleted (losing its committed
    but not yet checkpointed files): check reports the files as changed since
    indexed, not corruption, and the next `memdex index` converges."""
    rng = random.Random(SEED + 1)
    bulk(root, 60, "before")
    ok_json(run(runner, "--root", root, "index", "--json"))
    for n in range(0, 60, 3):  # 20 files: their writes stay below the WAL auto-checkpoint
        write(root, f"bulk/{'abc'[n % 3]}/f{n:03d}.md", bulk_text(n + 1000, "after"))
    process = start_indexer(root, "--embed-delay", "0.1")
    assert kill_once_written(process, settings.index_path, "after", rng.uniform(0.0, 0.1)), "the writer finished"
    wal = Path(f"{settings.index_path}-wal")
    assert wal.stat().st_size > 0
    wal.unlink()

    code, found = check(runner, root)
    assert code == 1, found
    assert any("changed since indexed" in problem["message"] for problem in found["problems"]), found
    ok_json(run(runner, "--root", root, "index", "--json"))
    assert current(settings) == fresh_rebuild(root)
    assert check(runner, root)[0] == 0


# -- bugs found while writing these tests ------------------------------------------------------


def test_damaged_vector_table_page_is_recovered_by_the_next_index(runner, memory, fake_model, settings) -> None:
    """One page of the vector table damaged, a file edited: `memdex index` must
    recover (one warning, file moved aside) like it does for any other page."""
    ok_json(run(runner, "--root", memory, "index", "--json"))
    damaged_vec_page(settings)
    edit_a_file(memory)
    assert check(runner, memory)[0] == 2
    result = run(runner, "--root", memory, "index", "--json")
    ok_json(result)
    assert len(stderr_lines(result)) == 1 and "moved it to index.db.corrupt-" in result.stderr
    assert current(settings) == fresh_rebuild(memory)


def test_check_repair_fixes_an_index_file_without_schema(runner, memory, fake_model, settings) -> None:
    """An empty index.db (what is left of a first index killed before any
    checkpoint once its -wal is gone): check reports it, --repair fixes it."""
    settings.index_dir.mkdir()
    settings.index_path.write_bytes(b"")
    code, repaired = check(runner, memory, "--repair")
    assert code == 0 and repaired["after"]["state"] == "healthy"
    assert current(settings) == fresh_rebuild(memory)


def test_check_repair_fixes_drift_that_keeps_size_and_mtime(runner, memory, fake_model, settings) -> None:
    """A same-size edit that keeps the file's mtime (cp -p, touch -r, sync tools):
    check finds it by its hash, so --repair must bring the index up to date."""
    ok_json(run(runner, "--root", memory, "index", "--json"))
    garden = memory / "notes/garden.md"
    past = time.time() - 100
    os.utime(garden, (past, past))
    ok_json(run(runner, "--root", memory, "index", "--json"))  # now trusted by its stat
    garden.write_text(garden.read_text().replace("June", "July"))
    os.utime(garden, (past, past))
    code, found = check(runner, memory)
    assert code == 1 and "notes/garden.md" in found["problems"][0]["message"]
    code, repaired = check(runner, memory, "--repair")
    assert code == 0, repaired["after"]
    assert current(settings) == fresh_rebuild(memory)


CHECK_GAPS = [
    pytest.param(
        "DELETE FROM chunks_fts WHERE rowid = 5; DELETE FROM chunks_vec WHERE rowid = 5; "
        "DELETE FROM chunks WHERE id = 5",
        id="a-chunk-lost-with-all-its-rows",
    ),
    pytest.param("UPDATE chunks_fts SET text = 'unrelated words' WHERE rowid = 5", id="fts-text-differs-from-chunk"),
    pytest.param(
        "UPDATE chunks SET start_line = start_line + 2, end_line = end_line + 2 WHERE id = 5", id="line-range-shifted"
    ),
    pytest.param("UPDATE files SET frontmatter = '{}' WHERE path = 'MEMORY.md'", id="frontmatter-lost"),
]


@pytest.mark.parametrize("statement", CHECK_GAPS)
def test_check_finds_rows_that_do_not_match_the_markdown(runner, memory, fake_model, settings, statement) -> None:
    """An index whose rows no longer say what the Markdown says is not healthy."""
    ok_json(run(runner, "--root", memory, "index", "--json"))
    sql_damage(statement)(settings)
    assert current(settings) != fresh_rebuild(memory)
    code, found = check(runner, memory)
    assert code != 0, found


def test_two_readers_finding_the_same_damage_rebuild_it_once(memory, settings, monkeypatch) -> None:
    """Two searches hit the same damaged index; the first repairs it before the
    second takes the lock: the second must use the repaired index, not move a
    healthy index aside as 'corrupt' (and push real evidence out of the three kept)."""
    sync(settings)
    garbage_header(settings)
    real_lock = indexer.store.sqlite.recovery.lock_for_recovery
    raced: list[bool] = []

    @contextmanager
    def other_reader_first(settings: Settings, reason: str, **kwargs: Any) -> Iterator[bool]:
        if not raced:
            raced.append(True)
            with open_index(settings, embedder=model()) as other:  # repairs it and answers
                assert other.search("staking", mode="keyword")
        with real_lock(settings, reason, **kwargs) as still_damaged:
            yield still_damaged

    monkeypatch.setattr(indexer.store.sqlite.recovery, "lock_for_recovery", other_reader_first)
    with open_index(settings, embedder=model()) as index:
        assert index.search("staking", mode="keyword")
    assert raced
    assert [path.read_bytes()[:12] for path in quarantined(settings)] == [b"memdex test:"]


def test_the_index_just_moved_aside_is_kept(memory, settings) -> None:
    """Three damaged indexes already kept; a fourth one, whose mtime is old (say
    restored from a backup), is damaged: the warning names it, so it is kept."""
    sync(settings)
    for number in range(4):
        settings.index_path.write_bytes(f"damaged index number {number} ".encode() * 200)
        if number == 3:
            past = time.time() - 3600
            os.utime(settings.index_path, (past, past))
        with open_index(settings, write=True, embedder=model()):
            pass
    kept = sorted(path.read_bytes()[:22] for path in quarantined(settings))
    assert b"damaged index number 3" in kept


def test_frontmatter_with_nan_and_sets_checks_healthy(runner, memory, fake_model) -> None:
    """YAML values JSON cannot hold as they are (NaN, sets) are stored canonically, so
    `check` agrees with the index instead of calling it corrupt on every run."""
    write(memory, "notes/odd.md", "---\nconfidence: .nan\ntags: !!set {b: null, a: null, c: null}\n---\n# Odd\n\ntext\n")
    ok_json(run(runner, "--root", memory, "index", "--json"))
    code, found = check(runner, memory)
    assert code == 0, found
