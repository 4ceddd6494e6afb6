"""Hardening, data at risk and SQLite errors (issue 12): real files, real SQLite.

- ``--db`` naming a file memdex did not make (a memory file, a text file,
  /dev/null, another program's database, memdex's own cache) is refused with
  one line and never renamed, replaced or deleted, and nothing is created
  beside it;
- recovery moves aside only memdex's own files; pruning deletes only its own
  quarantine copies; indexes from before application_id are still recognised;
- a 0-byte index is recovered and ``check`` calls it corrupt;
- disk full, a read-only index folder and a read-only index file are one-line
  errors, readers still read, and the index stays recoverable;
- readers polling an index being created never see a half-made schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner
from conftest import RecordingEmbedder, write
from test_cli import assert_one_line_error, memory, ok_json, run, runner  # noqa: F401

import indexer.api
import indexer.embedding.configured
from indexer import make_settings, open_index
from indexer.config.settings import DEFAULT_MODEL
from indexer.embedding.resolve import resolve_model
from indexer.errors import ConfigError, IndexerError, NotAnIndex, StorageError
from indexer.indexing.lock import acquire_lock
from indexer.store.sqlite import connection as db
from indexer.watch.state import StatusFile

COMMANDS = [["index", "--json"], ["search", "--mode", "keyword", "tomatoes"], ["status"], ["check"], ["rebuild"]]


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's embedders are RecordingEmbedders under the configured model's id (so check finds no drift)."""
    model_id = resolve_model(DEFAULT_MODEL)[0]
    monkeypatch.setattr(indexer.embedding.configured, "LazyEmbedder", lambda *a, **k: RecordingEmbedder(model_id=model_id))


def application_id(path: Path) -> int:
    connection = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    try:
        return int(connection.pragma("application_id"))
    finally:
        connection.close()


def folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- --db naming something that is not memdex's ----------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_db_naming_a_memory_file_is_refused_and_the_file_untouched(
    runner: CliRunner, memory: Path, fake_model, command: list[str]
) -> None:
    before = (memory / "MEMORY.md").read_bytes()
    listing = folder_listing(memory)
    for _ in range(4):  # the repeated "recoveries" deleted the copy holding the Markdown
        result = run(runner, "--root", memory, "--db", memory / "MEMORY.md", *command)
        assert_one_line_error(result, contains="MEMORY.md")
    assert (memory / "MEMORY.md").read_bytes() == before
    assert folder_listing(memory) == listing  # no lock, cache, journal or .corrupt-* beside it


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_db_naming_a_text_file_is_refused_and_nothing_created_beside_it(
    runner: CliRunner, memory: Path, tmp_path: Path, fake_model, command: list[str]
) -> None:
    folder = tmp_path / "docs"
    important = write(folder, "important.txt", "my tax numbers\n" * 100)
    for _ in range(4):
        result = run(runner, "--root", memory, "--db", important, *command)
        assert_one_line_error(result, contains="not memdex's index")
    assert important.read_text() == "my tax numbers\n" * 100
    assert folder_listing(folder) == ["important.txt"]


@pytest.mark.parametrize("content", [b"", b"x", b"SQLite format 3\x00" + b"\x00" * 200])
def test_db_naming_an_unknown_small_or_empty_file_is_refused(
    runner: CliRunner, memory: Path, tmp_path: Path, fake_model, content: bytes
) -> None:
    target = tmp_path / "notes.bin"
    target.write_bytes(content)
    assert_one_line_error(run(runner, "--root", memory, "--db", target, "index"))
    assert target.read_bytes() == content and folder_listing(tmp_path) == sorted(["notes.bin", "memory"])


def test_db_dev_null_is_refused_without_creating_files_in_dev(runner: CliRunner, memory: Path, fake_model) -> None:
    siblings = [Path("/dev/null-journal"), Path("/dev/null-wal"), Path("/dev/write.lock"), Path("/dev/null.lock"),
                Path("/dev/embeddings.db"), Path("/dev/null.embeddings.db")]  # fmt: skip
    existed = {p for p in siblings if p.exists()}
    for command in COMMANDS:
        assert_one_line_error(run(runner, "--root", memory, "--db", "/dev/null", *command), contains="regular file")
    assert {p for p in siblings if p.exists()} == existed


def test_another_programs_database_is_refused_and_untouched(runner: CliRunner, memory: Path, tmp_path: Path, fake_model) -> None:
    theirs = tmp_path / "app.db"
    connection = apsw.Connection(str(theirs))
    connection.execute("CREATE TABLE contacts(name); INSERT INTO contacts VALUES ('Ada')")
    connection.close()
    before = theirs.read_bytes()
    for command in COMMANDS:
        assert_one_line_error(run(runner, "--root", memory, "--db", theirs, *command), contains="not memdex's index")
    assert theirs.read_bytes() == before
    connection = apsw.Connection(str(theirs))
    connection.pragma("application_id", 12345)
    connection.close()
    assert_one_line_error(run(runner, "--root", memory, "--db", theirs, "index"), contains="another program")


def test_memdex_cache_named_as_db_is_refused(runner: CliRunner, memory: Path, fake_model) -> None:
    ok_json(run(runner, "--root", memory, "index", "--json"))
    cache = memory / ".memdex" / "embeddings.db"
    before = cache.read_bytes()
    assert_one_line_error(run(runner, "--root", memory, "--db", cache, "index"), contains="embedding cache")
    assert cache.read_bytes() == before


def test_db_that_would_be_a_memory_file_is_refused(memory: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.md"):
        make_settings(memory, memory / "notes" / "new-index.md")
    assert not (memory / "notes" / "new-index.md").exists()


def test_custom_db_keeps_its_siblings_named_after_it(runner: CliRunner, memory: Path, tmp_path: Path, fake_model) -> None:
    """Beside a custom --db, the cache and lock are named after it; a user's own
    embeddings.db / write.lock in that folder is never touched."""
    folder = tmp_path / "indexes"
    mine = write(folder, "embeddings.db", "a file of mine\n")
    lock = write(folder, "write.lock", "also mine\n")
    ok_json(run(runner, "--root", memory, "--db", folder / "work.db", "index", "--json"))
    assert mine.read_text() == "a file of mine\n" and lock.read_text() == "also mine\n"
    assert (folder / "work.db.embeddings.db").exists() and (folder / "work.db.lock").exists()
    assert make_settings(memory, folder / "work.db").status_path == folder / "work.db.watcher.json"
    assert application_id(folder / "work.db") == db.INDEX_APPLICATION_ID
    assert application_id(folder / "work.db.embeddings.db") == db.CACHE_APPLICATION_ID
    assert ok_json(run(runner, "--root", memory, "--db", folder / "work.db", "search", "--mode", "keyword", "tomatoes", "--json"))


def test_custom_db_with_a_destroyed_header_is_not_moved(runner: CliRunner, memory: Path, tmp_path: Path, fake_model) -> None:
    """Outside memdex's own folder, a file whose header no longer proves it is
    memdex's is left where it is (one line), never quarantined or pruned."""
    target = tmp_path / "work.db"
    ok_json(run(runner, "--root", memory, "--db", target, "index", "--json"))
    target.write_bytes(b"not a header any more " * 300)
    damaged = target.read_bytes()
    for command in COMMANDS:
        assert_one_line_error(run(runner, "--root", memory, "--db", target, *command))
    assert target.read_bytes() == damaged and not list(tmp_path.glob("work.db.corrupt-*"))


def test_custom_db_that_is_damaged_inside_is_recovered(runner: CliRunner, memory: Path, tmp_path: Path, fake_model) -> None:
    """Its header still says memdex made it: damage past the header is recovered as usual."""
    target = tmp_path / "work.db"
    ok_json(run(runner, "--root", memory, "--db", target, "index", "--json"))
    data = bytearray(target.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)
    target.write_bytes(bytes(data))
    ok_json(run(runner, "--root", memory, "--db", target, "index", "--json"))
    assert len(list(tmp_path.glob("work.db.corrupt-*"))) == 1
    assert ok_json(run(runner, "--root", memory, "--db", target, "check", "--json"))["state"] == "healthy"


def test_pruning_deletes_only_memdex_quarantine_files(runner: CliRunner, memory: Path, fake_model) -> None:
    index_dir = memory / ".memdex"
    ok_json(run(runner, "--root", memory, "index", "--json"))
    mine = [write(index_dir, "index.db.corrupt-notes.txt", "keep me\n"),
            write(index_dir, "index.db.corrupt-20200101T000000.bak", "keep me too\n")]  # fmt: skip
    for number in range(5):
        (index_dir / "index.db").write_bytes(f"damaged {number} ".encode() * 300)
        ok_json(run(runner, "--root", memory, "index", "--json"))
    assert all(path.exists() for path in mine)
    assert len([p for p in index_dir.glob("index.db.corrupt-2*") if p.name[-4:] != ".bak"]) == 3


def test_legacy_index_without_application_id_is_recognised_and_stamped(memory: Path, embedder: RecordingEmbedder) -> None:
    settings = make_settings(memory)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    connection = apsw.Connection(str(settings.index_path))
    connection.pragma("application_id", 0)  # as memdex wrote indexes before it stamped them
    connection.close()
    for path in (settings.index_path, settings.cache_path):
        connection = apsw.Connection(str(path))
        connection.pragma("application_id", 0)
        connection.pragma("wal_checkpoint(TRUNCATE)")
        connection.close()
    custom = make_settings(memory, memory.parent / "legacy.db")  # outside .memdex: only its tables prove it
    os.replace(settings.index_path, custom.index_path)
    assert db.ownership(custom.index_path) == db.LEGACY
    with open_index(custom, embedder=embedder) as index:
        assert index.search("tomatoes", mode="keyword")
    assert application_id(custom.index_path) == 0  # readers do not write
    with open_index(custom, write=True, embedder=embedder) as index:
        index.sync()
    assert application_id(custom.index_path) == db.INDEX_APPLICATION_ID
    assert application_id(custom.cache_path) == db.CACHE_APPLICATION_ID


# -- 0-byte index ------------------------------------------------------------------------------------


def test_zero_byte_index_is_recovered_by_search_and_called_corrupt_by_check(
    runner: CliRunner, memory: Path, fake_model
) -> None:
    ok_json(run(runner, "--root", memory, "index", "--json"))
    index_path = memory / ".memdex" / "index.db"
    index_path.write_bytes(b"")
    found = json.loads(run(runner, "--root", memory, "check", "--json").stdout)
    assert found["state"] == "corrupt" and "empty" in found["problems"][0]["message"]
    hits = ok_json(run(runner, "--root", memory, "search", "--mode", "keyword", "tomatoes", "--json"))
    assert hits and hits[0]["path"] == "notes/garden.md"
    assert ok_json(run(runner, "--root", memory, "check", "--json"))["state"] == "healthy"
    index_path.write_bytes(b"")
    assert ok_json(run(runner, "--root", memory, "index", "--json"))["reindexed"] == 3


# -- readers polling a new index -------------------------------------------------------------------


def test_readers_polling_a_new_index_never_see_a_partial_schema(
    memory: Path, tmp_path: Path, embedder: RecordingEmbedder
) -> None:
    """Each round creates an index at a new path while a reader polls it: the reader
    sees "no index" or the complete index, never "has schema N"."""
    current = [make_settings(memory, tmp_path / "round-0" / "index.db")]
    seen: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                with open_index(current[0], embedder=embedder, recover=False) as index:
                    index.search("tomatoes", mode="keyword")
                seen.append("ok")
            except IndexerError as exc:
                seen.append(str(exc))

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for number in range(1, 21):
            settings = make_settings(memory, tmp_path / f"round-{number}" / "index.db")
            current[0] = settings
            with open_index(settings, write=True, embedder=embedder) as index:
                index.sync()
    finally:
        stop.set()
        reader.join()
    assert "ok" in seen
    assert all(message == "ok" or message.startswith("no index at") for message in seen), set(seen)


# -- lock messages ------------------------------------------------------------------------------------


def test_lock_message_when_a_watcher_holds_the_index(runner: CliRunner, memory: Path, fake_model) -> None:
    settings = make_settings(memory)
    handle = acquire_lock(settings.lock_path)  # this process plays the watcher
    StatusFile(settings.index_dir / "watcher.json").write(pid=os.getpid(), started_at=0, observer="inotify", pending=[])
    try:
        line = assert_one_line_error(run(runner, "--root", memory, "index"))
    finally:
        handle.close()
    assert "'memdex index' is not needed" in line and "needs no" not in line


# -- SQLite errors -----------------------------------------------------------------------------------


def test_disk_full_is_a_storage_error_and_the_index_recovers(memory: Path, embedder: RecordingEmbedder) -> None:
    """SQLite's real SQLITE_FULL (the page limit reached) mid-sync: an IndexerError,
    and the next sync converges to what a fresh index holds."""
    settings = make_settings(memory)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    for number in range(40):
        write(memory, f"bulk/note-{number}.md", f"# Note {number}\n\n" + f"word{number} filler text and more\n" * 100)
    with open_index(settings, write=True, embedder=embedder) as index:
        pages = int(index.store.connection.pragma("page_count"))
        index.store.connection.pragma("max_page_count", pages + 2)
        with pytest.raises(StorageError, match="disk holding the index is full"):
            index.sync()
    with open_index(settings, write=True, embedder=embedder) as index:
        report = index.sync()
    assert report.reindexed >= 1
    with open_index(settings, embedder=embedder) as index:
        assert index.search("word39", mode="keyword")[0].path == "bulk/note-39.md"


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                            capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_full_disk_is_one_line_error_then_recovers(runner: CliRunner, memory: Path, tmp_path: Path, fake_model) -> None:
    for number in range(300):
        write(memory, f"bulk/note-{number}.md", f"# Note {number}\n\n" + f"word{number} filler text and more\n" * 15)
    with small_disk(tmp_path / "disk", "256k") as disk:
        result = run(runner, "--root", memory, "--db", disk / "index.db", "index", "--json")
        assert_one_line_error(result)
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        ok_json(run(runner, "--root", memory, "--db", disk / "index.db", "index", "--json"))
        assert ok_json(run(runner, "--root", memory, "--db", disk / "index.db", "check", "--json"))["state"] == "healthy"


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a folder or file unwritable: chattr +i as root (root ignores modes), chmod otherwise."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not supported here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)


def test_read_only_index_folder_still_reads(runner: CliRunner, memory: Path, fake_model) -> None:
    ok_json(run(runner, "--root", memory, "index", "--json"))
    with read_only(memory / ".memdex"):
        hits = ok_json(run(runner, "--root", memory, "search", "--mode", "keyword", "tomatoes", "--json"))
        assert hits[0]["path"] == "notes/garden.md"
        assert ok_json(run(runner, "--root", memory, "status", "--json"))["files"] == 3
        assert ok_json(run(runner, "--root", memory, "check", "--json"))["state"] == "healthy"
        write(memory, "notes/new.md", "# New\n\nfresh words\n")
        assert_one_line_error(run(runner, "--root", memory, "index"))
    assert ok_json(run(runner, "--root", memory, "index", "--json"))["reindexed"] == 1


def test_read_only_index_file_is_one_line_error_for_writers(runner: CliRunner, memory: Path, fake_model) -> None:
    ok_json(run(runner, "--root", memory, "index", "--json"))
    index_path = memory / ".memdex" / "index.db"
    with read_only(index_path):
        write(memory, "notes/new.md", "# New\n\nfresh words\n")
        assert_one_line_error(run(runner, "--root", memory, "index"))
        assert ok_json(run(runner, "--root", memory, "search", "--mode", "keyword", "tomatoes", "--json"))
    assert ok_json(run(runner, "--root", memory, "index", "--json"))["reindexed"] == 1


def test_storage_errors_are_indexer_errors() -> None:
    for error in (apsw.FullError("full"), apsw.ReadOnlyError("ro"), apsw.IOError("io"), apsw.CantOpenError("x")):
        translated = db.as_user_error(error)
        assert isinstance(translated, IndexerError) and "\n" not in str(translated)
    assert db.as_user_error(ValueError("not sqlite")) is None
    assert issubclass(NotAnIndex, ConfigError)


def test_leftover_temporaries_are_removed_only_when_memdex_made_them(
    runner: CliRunner, memory: Path, tmp_path: Path, fake_model
) -> None:
    """Half-written index.db.creating / index.db.rebuild in .memdex/ are cleaned up;
    beside a custom --db, a user's file that happens to have such a name is refused and kept."""
    index_dir = memory / ".memdex"
    write(index_dir, "index.db.creating", "half written garbage " * 50)
    write(index_dir, "index.db.rebuild", "half written garbage " * 50)
    ok_json(run(runner, "--root", memory, "index", "--json"))
    ok_json(run(runner, "--root", memory, "rebuild", "--json"))
    assert not (index_dir / "index.db.creating").exists() and not (index_dir / "index.db.rebuild").exists()
    theirs = write(tmp_path / "idx", "work.db.rebuild", "my notes about rebuilding the shed\n")
    for command in (["index"], ["rebuild"]):
        result = run(runner, "--root", memory, "--db", tmp_path / "idx" / "work.db", *command)
        assert_one_line_error(result, contains="move it away")
    assert theirs.read_text() == "my notes about rebuilding the shed\n"
