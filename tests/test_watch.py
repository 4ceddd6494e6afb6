"""``memdex watch``: file events keep the index equal to a fresh rebuild.

The watcher tests use the real watchdog observer on real files under
``tmp_path``: a ``Watcher`` runs in a background thread over an index opened
with ``open_index(write=True)``, and results are checked through a separate
reader, by keyword search or by comparing ``store.snapshot()`` with a fresh
rebuild of the same folder into another database. The main invariant: once
the files stop changing, the index equals a fresh rebuild.

Nothing here sleeps for a fixed time to wait for the watcher: ``wait_until``
polls a condition and fails with a message after a timeout. The few sleeps
left pace a workload (a file rewritten every 50 ms, a storm of edits).

The signal tests run ``tests/watch_process.py`` as a separate process, the
way ``memdex watch`` runs under systemd or launchd.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import plistlib
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import apsw
import pytest
from click.testing import CliRunner, Result
from conftest import RecordingEmbedder, write
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, EventEmitter

from indexer import make_settings, open_index
from indexer.cli.app import cli
from indexer.config.settings import Settings
from indexer.errors import IndexerError, LockedError
from indexer.watch.events import PendingPaths, relevant_path
from indexer.watch.state import STATUS_FILE_NAME, watcher_status
from indexer.watch.watcher import Watcher, WatchOptions

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
HELPER = TESTS / "watch_process.py"

TIMEOUT = 10.0
# Short quiet periods keep the suite fast; reconcile stays at its default
# (minutes) so every test here is about events, not the periodic full sync.
FAST = WatchOptions(debounce=0.05, max_wait=0.5)


# -- helpers ------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], Any],
    timeout: float = TIMEOUT,
    *,
    message: str | Callable[[], str] = "the condition",
) -> Any:
    """Poll ``condition`` until it returns something truthy (and return that), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = message() if callable(message) else message
            pytest.fail(f"timed out after {timeout:g}s waiting for {detail}")
        time.sleep(0.02)


def note(title: str, *facts: str) -> str:
    """A small Markdown note: a heading and one list item per fact."""
    return f"# {title}\n\n" + "".join(f"- {fact}\n" for fact in facts or ("nothing yet",))


def reader_snapshot(settings: Settings) -> dict[str, Any]:
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        return index.store.snapshot()


def indexed_paths(settings: Settings) -> set[str]:
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        return {path for (path,) in index.store.connection.execute("SELECT path FROM files")}


def keyword_paths(settings: Settings, query: str) -> set[str]:
    """Paths of the files a keyword search finds (what `memdex search --mode keyword` shows)."""
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        return {hit.path for hit in index.search(query, mode="keyword", limit=100)}


_rebuilds = itertools.count()


def fresh_snapshot(settings: Settings) -> dict[str, Any]:
    """Snapshot of a from-scratch index of the same root in another database file."""
    folder = settings.root.parent / f"fresh-{next(_rebuilds)}"
    fresh = make_settings(settings.root, folder / "index.db")
    with open_index(fresh, write=True, embedder=RecordingEmbedder()) as index:
        index.sync()
        return index.store.snapshot()


def difference(actual: dict[str, Any], expected: dict[str, Any]) -> str:
    """A short description of how two snapshots differ (row heads only: vectors are long)."""
    parts = []
    for key in sorted(actual.keys() | expected.keys()):
        got, want = actual.get(key), expected.get(key)
        if got == want:
            continue
        if isinstance(got, list) and isinstance(want, list):
            head = 2 if key == "vec" else 3  # vec rows end in a long vector blob
            extra = [row[:head] for row in got if row not in want][:4]
            missing = [row[:head] for row in want if row not in got][:4]
            parts.append(f"{key}: extra {extra} missing {missing}")
        else:
            parts.append(f"{key}: {got!r} != {want!r}")
    return "; ".join(parts) or "no difference"


def assert_converges_to_fresh_rebuild(settings: Settings, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Wait until the watched index equals a fresh rebuild of the (no longer changing) files."""
    expected = fresh_snapshot(settings)
    wait_until(
        lambda: reader_snapshot(settings) == expected,
        timeout,
        message=lambda: "the index to equal a fresh rebuild; "
        + difference(reader_snapshot(settings), expected),
    )
    return expected


def memdex(*args: object) -> Result:
    """Run the CLI in-process; keep its logging set-up from leaking into the test
    (it points the 'indexer' logger at the runner's temporary stderr)."""
    logger = logging.getLogger("indexer")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    runner = CliRunner(env={"MEMDEX_ROOT": None, "MEMDEX_DB": None, "MEMDEX_MODEL": None})
    try:
        return runner.invoke(cli, [str(a) for a in args])
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


class WatcherThread:
    """A Watcher over ``open_index(write=True)``, running in a background thread."""

    def __init__(
        self,
        settings: Settings,
        options: WatchOptions,
        embedder: RecordingEmbedder,
        observer_factory: Callable[[], Any] | None,
    ) -> None:
        self._resources = ExitStack()
        self.index = self._resources.enter_context(open_index(settings, write=True, embedder=embedder))
        self.watcher = Watcher(self.index, options, observer_factory=observer_factory)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="memdex-watcher", daemon=True)
        self.stopped = False

    def _run(self) -> None:
        try:
            self.watcher.run()
        except BaseException as exc:  # reported by stop() and by the tests
            self.error = exc

    def start(self) -> None:
        self.thread.start()
        assert self.watcher.ready.wait(TIMEOUT), f"the watcher never became ready ({self.error!r})"

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.watcher.stop()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the watcher thread did not stop"
        self._resources.close()
        if self.error is not None:
            raise AssertionError(f"the watcher thread failed: {self.error!r}") from self.error


@pytest.fixture
def start_watcher(settings: Settings) -> Iterator[Callable[..., WatcherThread]]:
    """Start a watcher thread (after its initial sync); all are stopped at teardown."""
    started: list[WatcherThread] = []

    def start(
        options: WatchOptions = FAST,
        *,
        embedder: RecordingEmbedder | None = None,
        observer_factory: Callable[[], Any] | None = None,
    ) -> WatcherThread:
        running = WatcherThread(settings, options, embedder or RecordingEmbedder(), observer_factory)
        started.append(running)
        running.start()
        return running

    yield start
    failures = []
    for running in started:  # stop every one, even if an earlier one failed
        try:
            running.stop()
        except AssertionError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the memory root, not watched."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def seed(root: Path) -> None:
    write(root, "MEMORY.md", note("Facts", "the user drinks oolong tea", "the laptop is a ThinkPad"))
    write(root, "daily/2026-03-01.md", note("Sunday", "walked to the harbour", "called Ines"))
    write(root, "projects/garden.md", note("Garden", "the tomatoes need staking"))
    write(root, "projects/bike.md", note("Bike", "replace the chain in spring"))


# -- PendingPaths: debounce bounded by max-wait -------------------------------------------


def test_pending_path_is_due_after_a_quiet_period():
    """A path is synced once no event has arrived for `debounce` seconds."""
    pending = PendingPaths(debounce=0.2, max_wait=2.0)
    pending.add("a.md", now=10.0)
    assert pending.take_due(now=10.1) == []
    pending.add("a.md", now=10.1)  # another event restarts the quiet period
    assert pending.take_due(now=10.25) == []
    assert pending.take_due(now=10.3) == ["a.md"]
    assert pending.take_due(now=10.4) == []  # taken paths are gone
    assert pending.snapshot() == []


def test_pending_path_written_continuously_is_due_after_max_wait():
    """A file that never goes quiet is still synced `max_wait` after its first event."""
    pending = PendingPaths(debounce=0.5, max_wait=1.0)
    for step in range(10):  # an event every 100 ms from t=0 to t=0.9
        pending.add("busy.md", now=step / 10)
    assert pending.take_due(now=0.95) == []
    pending.add("busy.md", now=0.99)
    assert pending.take_due(now=1.0) == ["busy.md"]
    pending.add("busy.md", now=1.05)  # the next event starts a new max-wait window
    assert pending.take_due(now=1.5) == []
    assert pending.take_due(now=1.55) == ["busy.md"]


def test_pending_paths_are_due_independently_and_sorted():
    """Each path has its own timer; due paths come back sorted, others keep waiting."""
    pending = PendingPaths(debounce=0.2, max_wait=2.0)
    pending.add("z.md", now=0.0)
    pending.add("b/a.md", now=0.0)
    pending.add("late.md", now=0.15)
    assert pending.snapshot() == ["b/a.md", "late.md", "z.md"]
    assert pending.take_due(now=0.2) == ["b/a.md", "z.md"]
    assert pending.snapshot() == ["late.md"]
    assert pending.take_due(now=0.35) == ["late.md"]


def test_pending_wait_returns_when_an_event_arrives():
    """The sync loop sleeping in `wait` wakes up for a new event instead of sleeping on."""
    pending = PendingPaths(debounce=60.0, max_wait=120.0)  # nothing becomes due during the test
    woke = threading.Event()

    def sleeper() -> None:
        pending.wait(60.0)
        woke.set()

    thread = threading.Thread(target=sleeper, daemon=True)
    thread.start()

    def event_wakes_the_sleeper() -> bool:
        pending.add("a.md")  # repeated until the sleeper was waiting when it came
        return woke.wait(0.05)

    wait_until(event_wakes_the_sleeper, message="wait() to return after an event")
    thread.join(TIMEOUT)


# -- relevant_path: which events can matter -----------------------------------------------

ROOT = Path("/mem")
INDEX_DIR = ROOT / ".memdex"


@pytest.mark.parametrize(
    ("event_path", "is_directory", "expected"),
    [
        ("/mem/MEMORY.md", False, "MEMORY.md"),
        ("/mem/daily/2026-03-01.md", False, "daily/2026-03-01.md"),
        ("/mem/projects", True, "projects"),
        ("/mem/projects/new folder", True, "projects/new folder"),
        ("/mem/notes.txt", False, None),
        ("/mem/x.md.tmp", False, None),
        ("/mem/x.md~", False, None),
        ("/mem/x.md___jb_tmp___", False, None),
        ("/mem/4913", False, None),  # vim's write test file
        ("/mem/.x.md.swp", False, None),
        ("/mem/.hidden.md", False, None),
        ("/mem/.obsidian/workspace.md", False, None),
        ("/mem/.obsidian", True, None),
        ("/mem/notes/.trash/old.md", False, None),
        ("/mem/.memdex/index.db-wal", False, None),
        ("/mem/.memdex", True, None),
        ("/mem", True, None),  # the root itself
        ("/elsewhere/a.md", False, None),
        ("/mem-other/a.md", False, None),
    ],
)
def test_relevant_path(event_path, is_directory, expected):
    """Only .md files and folders inside the root, not hidden and not the index's own folder, count."""
    assert relevant_path(ROOT, INDEX_DIR, event_path, is_directory=is_directory) == expected


def test_relevant_path_with_an_index_folder_elsewhere():
    """With --db outside the root, a visible folder of that name inside the root is ordinary."""
    elsewhere = Path("/var/lib/memdex")
    assert relevant_path(ROOT, elsewhere, "/mem/memdex/a.md", is_directory=False) == "memdex/a.md"
    assert relevant_path(ROOT, elsewhere, "/var/lib/memdex/index.db", is_directory=False) is None
    visible_index = ROOT / "index"
    assert relevant_path(ROOT, visible_index, "/mem/index/x.md", is_directory=False) is None
    assert relevant_path(ROOT, visible_index, "/mem/index", is_directory=True) is None


# -- service definitions --------------------------------------------------------------------


def test_print_service_systemd_runs_this_python_with_watch(tmp_path):
    """`memdex watch --print-service systemd` prints a unit that starts `python -m indexer ... watch`."""
    root = tmp_path / "my memory"  # a space: ExecStart must quote it
    root.mkdir()
    result = memdex("--root", root, "watch", "--print-service", "systemd")
    assert result.exit_code == 0, result.output
    [exec_start] = [line for line in result.stdout.splitlines() if line.startswith("ExecStart=")]
    assert f"{sys.executable} -m indexer" in exec_start
    assert f'--root "{root.resolve()}"' in exec_start
    assert exec_start.endswith(" watch --wait-for-lock")  # a service waits for another writer, never exits 3
    assert "[Install]" in result.stdout


def test_print_service_launchd_is_a_valid_plist(root):
    """`memdex watch --print-service launchd` prints a plist that launchd can load."""
    result = memdex("--root", root, "watch", "--print-service", "launchd")
    assert result.exit_code == 0, result.output
    agent = plistlib.loads(result.stdout.encode("utf-8"))
    assert agent["ProgramArguments"] == [sys.executable, "-m", "indexer", "--root", str(root.resolve()), "watch", "--wait-for-lock"]
    assert agent["RunAtLoad"] is True
    assert agent["Label"]


# -- the watcher on real files ----------------------------------------------------------------


def test_initial_sync_indexes_existing_files(root, settings, start_watcher):
    """Starting the watcher first brings the index up to date; `ready` is set after that."""
    seed(root)
    start_watcher()
    assert reader_snapshot(settings) == fresh_snapshot(settings)


def test_edit_in_place_is_indexed(root, settings, start_watcher):
    """Saving new text into a file makes the new words searchable and the old ones gone."""
    seed(root)
    start_watcher()
    (root / "projects/garden.md").write_text(note("Garden", "the courgettes need netting"))
    wait_until(lambda: keyword_paths(settings, "courgettes") == {"projects/garden.md"}, message="the edit")
    assert keyword_paths(settings, "tomatoes") == set()
    assert_converges_to_fresh_rebuild(settings)


def test_new_file_is_indexed(root, settings, start_watcher):
    """A new note is searchable shortly after it is written."""
    seed(root)
    start_watcher()
    write(root, "projects/kiln.md", note("Kiln", "bisque firing at 1000 degrees"))
    wait_until(lambda: keyword_paths(settings, "bisque") == {"projects/kiln.md"}, message="the new file")
    assert_converges_to_fresh_rebuild(settings)


def test_deleted_file_is_removed(root, settings, start_watcher):
    """A deleted note disappears from search results."""
    seed(root)
    start_watcher()
    (root / "projects/bike.md").unlink()
    wait_until(lambda: "projects/bike.md" not in indexed_paths(settings), message="the deletion")
    assert keyword_paths(settings, "chain") == set()
    assert_converges_to_fresh_rebuild(settings)


def test_renamed_file_is_found_under_its_new_name(root, settings, start_watcher):
    """Renames (same folder, other folder) move the file's results to the new path."""
    seed(root)
    start_watcher()
    (root / "projects/bike.md").rename(root / "projects/bicycle.md")
    (root / "projects/garden.md").rename(root / "garden.md")
    wait_until(
        lambda: keyword_paths(settings, "chain tomatoes") >= {"projects/bicycle.md", "garden.md"}
        and not indexed_paths(settings) & {"projects/bike.md", "projects/garden.md"},
        message="both renames",
    )
    assert_converges_to_fresh_rebuild(settings)


def test_renames_to_and_from_other_names(root, settings, start_watcher):
    """A .txt renamed to .md is indexed; a note renamed to a hidden or non-.md name leaves the index."""
    seed(root)
    write(root, "projects/todo.txt", note("Todo", "buy linseed oil"))
    start_watcher()
    (root / "projects/todo.txt").rename(root / "projects/todo.md")
    (root / "projects/bike.md").rename(root / "projects/.bike.md")
    (root / "projects/garden.md").rename(root / "projects/garden.md.bak")
    wait_until(
        lambda: keyword_paths(settings, "linseed") == {"projects/todo.md"}
        and not indexed_paths(settings) & {"projects/bike.md", "projects/garden.md"},
        message="the renames",
    )
    assert_converges_to_fresh_rebuild(settings)


def test_file_moved_in_from_outside_and_out_again(root, settings, start_watcher, outside):
    """Moving a note into the root indexes it; moving it out of the root removes it."""
    seed(root)
    start_watcher()
    write(outside, "inbox.md", note("Inbox", "renew the passport"))
    os.rename(outside / "inbox.md", root / "projects/inbox.md")
    wait_until(lambda: keyword_paths(settings, "passport") == {"projects/inbox.md"}, message="the move in")
    assert_converges_to_fresh_rebuild(settings)

    os.rename(root / "projects/inbox.md", outside / "done.md")
    wait_until(lambda: keyword_paths(settings, "passport") == set(), message="the move out")
    assert_converges_to_fresh_rebuild(settings)


# Editor save patterns: each writes `text` over the file at `path`.


def save_by_atomic_replace(path: Path, text: str) -> None:
    """VS Code and many others: write a temporary file, then rename it over the original."""
    temporary = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def save_like_jetbrains(path: Path, text: str) -> None:
    """JetBrains 'safe write': temp file, original renamed away, temp renamed in, old deleted."""
    temporary = path.with_name(path.name + "___jb_tmp___")
    old = path.with_name(path.name + "___jb_old___")
    temporary.write_text(text)
    os.replace(path, old)
    os.replace(temporary, path)
    old.unlink()


def save_like_vim(path: Path, text: str) -> None:
    """vim (backupcopy=no): swap file, write-test file, original renamed to x.md~, new file written."""
    swap = path.with_name(f".{path.name}.swp")
    swap.write_bytes(b"b0VIM 9.1\x00")
    probe = path.parent / "4913"
    probe.write_text("")
    probe.unlink()
    backup = path.with_name(path.name + "~")
    os.replace(path, backup)
    path.write_text(text)
    backup.unlink()
    swap.unlink()


def save_by_delete_then_create(path: Path, text: str) -> None:
    """Tools that remove the file and write a new one."""
    path.unlink()
    path.write_text(text)


@pytest.mark.parametrize(
    "save", [save_by_atomic_replace, save_like_jetbrains, save_like_vim, save_by_delete_then_create]
)
def test_editor_save_patterns(root, settings, start_watcher, save):
    """However an editor saves, the file ends up indexed with its new text (not lost mid-dance)."""
    seed(root)
    start_watcher()
    save(root / "projects/garden.md", note("Garden", "sow marigolds between the beans"))
    wait_until(lambda: keyword_paths(settings, "marigolds") == {"projects/garden.md"}, message="the save")
    assert keyword_paths(settings, "tomatoes") == set()
    expected = assert_converges_to_fresh_rebuild(settings)
    assert [row[0] for row in expected["files"]] == sorted(
        ["MEMORY.md", "daily/2026-03-01.md", "projects/bike.md", "projects/garden.md"]
    )  # no backup or temporary file was indexed


def test_many_files_changed_at_once_like_git_checkout(root, settings, start_watcher):
    """A branch switch rewrites, deletes and adds dozens of files at once; all land in the index."""
    for n in range(40):
        write(root, f"topics/t{n // 10}/note-{n:02d}.md", note(f"Note {n}", f"original fact {n}"))
    start_watcher()
    for n in range(40):  # git unlinks and writes each changed file
        path = root / f"topics/t{n // 10}/note-{n:02d}.md"
        if n % 5 == 0:
            path.unlink()
        elif n % 3 == 0:
            path.unlink()
            path.write_text(note(f"Note {n}", f"checked out fact {n}", "from the other branch"))
    for n in range(10):
        write(root, f"topics/new/added-{n}.md", note(f"Added {n}", "only on the other branch"))
    expected = assert_converges_to_fresh_rebuild(settings)
    assert len(expected["files"]) == 40 - 8 + 10


def test_folder_deleted_with_its_files(root, settings, start_watcher):
    """Removing a whole folder (rm -r) removes every file below it from the index."""
    seed(root)
    write(root, "projects/deep/er/plan.md", note("Plan", "pour the foundation"))
    start_watcher()
    shutil.rmtree(root / "projects")
    wait_until(
        lambda: not any(p.startswith("projects/") for p in indexed_paths(settings)), message="the folder removal"
    )
    assert_converges_to_fresh_rebuild(settings)


def test_folder_moved_out_of_the_root_and_back(root, settings, start_watcher, outside):
    """A folder moved out of the root leaves the index, edits to it out there are not
    indexed, and moved back in under another name it is indexed (and watched) again."""
    seed(root)
    write(root, "projects/deep/plan.md", note("Plan", "pour the foundation"))
    start_watcher()
    shutil.move(root / "projects", outside / "projects")
    wait_until(lambda: not any(p.startswith("projects/") for p in indexed_paths(settings)), message="move out")
    assert_converges_to_fresh_rebuild(settings)

    (outside / "projects/deep/plan.md").write_text(note("Plan", "outside edit with gravel"))
    write(root, "sentinel.md", note("Sentinel", "written after the outside edit"))
    wait_until(lambda: "sentinel.md" in indexed_paths(settings), message="the sentinel")
    assert keyword_paths(settings, "gravel") == set()
    assert_converges_to_fresh_rebuild(settings)

    shutil.move(outside / "projects", root / "archive")
    wait_until(lambda: keyword_paths(settings, "gravel") == {"archive/deep/plan.md"}, message="move back in")
    (root / "archive/deep/plan.md").write_text(note("Plan", "edited after returning, with rebar"))
    wait_until(lambda: keyword_paths(settings, "rebar") == {"archive/deep/plan.md"}, message="edit after return")
    assert_converges_to_fresh_rebuild(settings)


def test_folder_renamed_inside_the_root(root, settings, start_watcher):
    """Renaming a folder moves all its files to the new paths."""
    seed(root)
    start_watcher()
    (root / "projects").rename(root / "done")
    wait_until(
        lambda: {"done/garden.md", "done/bike.md"} <= indexed_paths(settings)
        and not any(p.startswith("projects/") for p in indexed_paths(settings)),
        message="the folder rename",
    )
    (root / "done/bike.md").write_text(note("Bike", "new tyres fitted"))  # still watched under its new name
    wait_until(lambda: keyword_paths(settings, "tyres") == {"done/bike.md"}, message="edit in the renamed folder")
    assert_converges_to_fresh_rebuild(settings)


def test_hidden_folder_made_visible_and_hidden_again(root, settings, start_watcher):
    """Renaming `.drafts` to `drafts` indexes its files (and watches them); renaming it back
    removes them."""
    seed(root)
    write(root, ".drafts/sub/essay.md", note("Essay", "okra is underrated"))
    start_watcher()
    (root / ".drafts").rename(root / "drafts")
    wait_until(lambda: keyword_paths(settings, "okra") == {"drafts/sub/essay.md"}, message="the unhidden folder")
    (root / "drafts/sub/essay.md").write_text(note("Essay", "leeks are underrated"))
    wait_until(lambda: keyword_paths(settings, "leeks") == {"drafts/sub/essay.md"}, message="the edit")
    (root / "drafts").rename(root / ".drafts")
    wait_until(lambda: keyword_paths(settings, "leeks") == set(), message="the hidden folder")
    assert_converges_to_fresh_rebuild(settings)


def test_two_folders_swapped(root, settings, start_watcher):
    """Swapping two folders' names (a -> tmp, b -> a, tmp -> b) swaps their files in the index,
    and later edits are reported under the new names."""
    write(root, "a/x.md", note("X", "alpha"))
    write(root, "b/x.md", note("X", "bravo"))
    start_watcher()
    os.rename(root / "a", root / "tmp")
    os.rename(root / "b", root / "a")
    os.rename(root / "tmp", root / "b")
    wait_until(
        lambda: keyword_paths(settings, "alpha") == {"b/x.md"} and keyword_paths(settings, "bravo") == {"a/x.md"},
        message="the swap",
    )
    (root / "a/x.md").write_text(note("X", "charlie"))
    (root / "b/x.md").write_text(note("X", "delta"))
    wait_until(
        lambda: keyword_paths(settings, "charlie") == {"a/x.md"} and keyword_paths(settings, "delta") == {"b/x.md"},
        message="edits after the swap",
    )
    assert_converges_to_fresh_rebuild(settings)


def test_new_nested_folders_with_files(root, settings, start_watcher):
    """`mkdir -p a/b/c` followed at once by writes into every level: all files are indexed,
    and the new folders are watched for later edits."""
    seed(root)
    start_watcher()
    os.makedirs(root / "trips/2026/lisbon")
    write(root, "trips/overview.md", note("Trips", "three trips planned"))
    write(root, "trips/2026/budget.md", note("Budget", "flights booked"))
    write(root, "trips/2026/lisbon/day1.md", note("Day 1", "tram 28 to the castle"))
    assert_converges_to_fresh_rebuild(settings)
    (root / "trips/2026/lisbon/day1.md").write_text(note("Day 1", "pasteis in Belem"))
    wait_until(lambda: keyword_paths(settings, "pasteis") == {"trips/2026/lisbon/day1.md"}, message="the edit")
    assert_converges_to_fresh_rebuild(settings)


def test_hidden_index_temporary_and_non_markdown_files_are_ignored(root, settings, start_watcher):
    """Swap files, temp files, .txt, hidden folders and the .memdex folder never reach the
    index -- they are not even queued for a sync."""
    seed(root)
    running = start_watcher()
    queued: list[str] = []
    real_add = running.watcher.pending.add

    def spy(path: str, now: float | None = None) -> None:
        queued.append(path)
        real_add(path, now)

    running.watcher.pending.add = spy  # type: ignore[method-assign]
    ignored = {
        ".x.md.swp": "swap",
        "notes.txt": "plain text zucchini",
        "x.md.tmp": "# Temp\n\nzucchini temporary\n",
        "x.md~": "# Backup\n\nzucchini backup\n",
        ".hidden.md": "# Hidden\n\nzucchini hidden\n",
        ".obsidian/workspace.md": "# Workspace\n\nzucchini obsidian\n",
        "projects/.trash/old.md": "# Old\n\nzucchini trash\n",
        ".memdex/stray.md": "# Stray\n\nzucchini in the index folder\n",
    }
    for rel, text in ignored.items():
        write(root, rel, text)
    # Events arrive in order: once this later file is indexed, the ones above were handled.
    write(root, "sentinel.md", note("Sentinel", "written last"))
    wait_until(lambda: "sentinel.md" in indexed_paths(settings), message="the sentinel")
    assert keyword_paths(settings, "zucchini") == set()
    assert set(queued) <= {"sentinel.md", "projects"}, queued  # folders count; their hidden parts do not
    assert not any(path.startswith(".memdex") for path in running.watcher.pending.snapshot())
    assert_converges_to_fresh_rebuild(settings)


def test_symlinked_note_follows_edits_to_its_target(root, settings, start_watcher):
    """A note that is a symlink to another note inside the root (which `memdex index` indexes
    with the target's text) shows the new text after the target is edited."""
    seed(root)
    os.symlink("projects/garden.md", root / "garden-link.md")
    start_watcher()
    assert keyword_paths(settings, "tomatoes") == {"projects/garden.md", "garden-link.md"}
    (root / "projects/garden.md").write_text(note("Garden", "sow parsnips in March"))
    wait_until(lambda: "projects/garden.md" in keyword_paths(settings, "parsnips"), message="the target's edit")
    assert_converges_to_fresh_rebuild(settings, timeout=3)


class SilentEmitter(EventEmitter):
    """Hears nothing: stands in for file events the OS dropped (queue overflow, network mounts)."""

    def queue_events(self, timeout: float) -> None:
        self.stopped_event.wait(timeout)


class DeafObserver(BaseObserver):
    def __init__(self) -> None:
        super().__init__(SilentEmitter)


def test_reconcile_catches_changes_whose_events_were_lost(root, settings, start_watcher):
    """The periodic full sync (`--reconcile`) brings the index up to date even when no file
    event arrives at all."""
    seed(root)
    start_watcher(WatchOptions(debounce=0.05, max_wait=0.5, reconcile=1.0), observer_factory=DeafObserver)
    write(root, "projects/kiln.md", note("Kiln", "unheard glaze notes"))
    (root / "projects/bike.md").unlink()
    assert_converges_to_fresh_rebuild(settings)
    assert keyword_paths(settings, "unheard") == {"projects/kiln.md"}


STORM_NAMES = (
    [f"note-{n:02d}.md" for n in range(10)]
    + [f"projects/p-{n:02d}.md" for n in range(10)]
    + [f"daily/2026-04-{n + 1:02d}.md" for n in range(10)]
)


def storm(root: Path, rng: random.Random, *, operations: int = 300, seconds: float = 2.0) -> None:
    """Random edits, atomic saves, creates, deletes and renames over STORM_NAMES."""
    for rel in STORM_NAMES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    pause = seconds / operations
    for step in range(operations):
        present = [rel for rel in STORM_NAMES if (root / rel).exists()]
        absent = [rel for rel in STORM_NAMES if rel not in present]
        action = rng.choice(["edit", "edit", "save", "create", "delete", "rename"])
        facts = [f"storm{step} fact {k} value {rng.randrange(1000)}" for k in range(rng.randrange(1, 6))]
        text = note(f"Topic {rng.randrange(50)}", *facts)
        if action == "create" or not present:
            if absent:
                (root / rng.choice(absent)).write_text(text)
        elif action == "edit":
            (root / rng.choice(present)).write_text(text)
        elif action == "save":
            save_by_atomic_replace(root / rng.choice(present), text)
        elif action == "delete":
            (root / rng.choice(present)).unlink()
        else:  # rename, sometimes over an existing file
            source, target = rng.choice(present), rng.choice(STORM_NAMES)
            os.replace(root / source, root / target)
        time.sleep(pause)  # spreads the workload over `seconds`; not a wait for the watcher


def test_storm_of_random_changes_ends_equal_to_a_fresh_rebuild(root, settings, start_watcher):
    """~300 random edits/renames/deletes over 30 files in two seconds: after quiet, the index
    equals a fresh rebuild (nothing lost, nothing stale)."""
    rng = random.Random(20260301)
    for rel in STORM_NAMES[::2]:
        write(root, rel, note("Seed", f"seed fact for {rel}"))
    running = start_watcher()
    storm(root, rng)
    assert_converges_to_fresh_rebuild(settings, timeout=20)
    assert running.alive


def test_restart_catches_up_with_changes_made_while_stopped(root, settings, start_watcher):
    """Edits, deletes, renames and new files made while no watcher ran are picked up by the
    next watcher's initial sync, before it reports ready."""
    seed(root)
    start_watcher().stop()
    (root / "MEMORY.md").write_text(note("Facts", "the user drinks sencha now"))
    (root / "projects/bike.md").unlink()
    (root / "projects/garden.md").rename(root / "garden.md")
    write(root, "projects/new/idea.md", note("Idea", "a solar dehydrator"))
    start_watcher()  # returns once the initial sync is done
    assert reader_snapshot(settings) == fresh_snapshot(settings)
    assert keyword_paths(settings, "sencha dehydrator") == {"MEMORY.md", "projects/new/idea.md"}


def test_second_writer_is_refused_while_the_watcher_runs(root, settings, start_watcher):
    """While a watcher holds the index, other writers are refused: the API raises LockedError,
    `memdex index` exits 3 with one line saying a watcher keeps the index current."""
    seed(root)
    start_watcher()
    with pytest.raises(LockedError, match=f"watcher \\(pid {os.getpid()}\\)"):
        with open_index(settings, write=True, embedder=RecordingEmbedder()):
            pass
    result = memdex("--root", root, "index")
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("memdex: error:") and "watcher" in lines[0] and str(os.getpid()) in lines[0]
    # A second `memdex watch` (without --wait-for-lock) exits 3 at once. A subprocess, so a bug
    # cannot hang pytest.
    second = subprocess.run(
        [sys.executable, "-m", "indexer", "--root", str(root), "watch"],
        capture_output=True, text=True, timeout=30, cwd=REPO, env=helper_env(),
    )  # fmt: skip
    assert second.returncode == 3, second.stderr
    assert second.stderr.count("\n") == 1 and "watcher" in second.stderr


def test_status_shows_the_running_watcher(root, settings, start_watcher):
    """`memdex status --json` shows the watcher (pid, observer) while it runs, null after it stops."""
    seed(root)
    running = start_watcher()
    result = memdex("--root", root, "status", "--json")
    assert result.exit_code == 0, result.output
    watcher = json.loads(result.stdout)["watcher"]
    assert watcher is not None and watcher["pid"] == os.getpid()
    assert watcher["observer"] == "native" and watcher["last_sync"] is not None
    text = memdex("--root", root, "status")
    assert f"watcher: running (pid {os.getpid()}, native events)" in text.stdout
    running.stop()
    result = memdex("--root", root, "status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["watcher"] is None
    assert not (settings.index_dir / STATUS_FILE_NAME).exists()


def test_unreadable_file_is_dropped_and_indexed_again_once_fixed(root, settings, start_watcher, caplog):
    """A note that becomes binary is dropped with a warning; the watcher keeps going and
    indexes the file again once it is fixed."""
    seed(root)
    running = start_watcher()
    (root / "projects/garden.md").write_bytes(b"\x00\x01binary garbage\x00")
    wait_until(lambda: "projects/garden.md" not in indexed_paths(settings), message="the binary file dropped")
    assert any("projects/garden.md: skipped" in r.getMessage() for r in caplog.records)
    (root / "projects/garden.md").write_text(note("Garden", "the basil recovered"))
    wait_until(lambda: keyword_paths(settings, "basil") == {"projects/garden.md"}, message="the fixed file")
    assert running.alive
    assert_converges_to_fresh_rebuild(settings)


class FailsWhenArmed(RecordingEmbedder):
    """An embedder whose next embed call raises once ``armed`` is set (a model hiccup)."""

    armed = False

    def embed(self, texts):
        if self.armed:
            self.armed = False
            raise RuntimeError("the model fell over")
        return super().embed(texts)


def test_sync_error_is_logged_and_the_file_is_indexed_later(root, settings, start_watcher, caplog):
    """When embedding fails, the watcher logs the failed sync, keeps running, retries the file
    by itself, and keeps indexing later edits."""
    seed(root)
    embedder = FailsWhenArmed()
    running = start_watcher(embedder=embedder)
    embedder.armed = True
    write(root, "projects/kiln.md", note("Kiln", "glaze firing at cone six"))
    wait_until(
        lambda: any("sync of projects/kiln.md failed: the model fell over" in r.getMessage() for r in caplog.records),
        message="the failure to be logged",
    )
    assert running.alive
    wait_until(lambda: keyword_paths(settings, "glaze") == {"projects/kiln.md"}, message="the retry")
    (root / "projects/kiln.md").write_text(note("Kiln", "bisque firing next week"))
    wait_until(lambda: keyword_paths(settings, "bisque") == {"projects/kiln.md"}, message="the next edit")
    assert_converges_to_fresh_rebuild(settings)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EMFILE])
def test_falls_back_to_polling_when_file_events_are_exhausted(root, settings, start_watcher, caplog, code):
    """When the OS refuses more file watches (inotify limit), the watcher warns, polls instead,
    and still indexes changes."""

    class ExhaustedObserver(Observer):  # type: ignore[misc, valid-type]
        def start(self) -> None:
            raise OSError(code, "inotify watch limit reached")

    seed(root)
    running = start_watcher(observer_factory=ExhaustedObserver)
    assert running.watcher.observer_kind == "polling"
    assert any(r.levelno == logging.WARNING and "polling" in r.getMessage() for r in caplog.records)
    assert watcher_status(settings.index_dir)["observer"] == "polling"
    write(root, "projects/kiln.md", note("Kiln", "polled into the index"))
    (root / "projects/bike.md").unlink()
    wait_until(lambda: keyword_paths(settings, "polled") == {"projects/kiln.md"}, message="the polled change")
    assert_converges_to_fresh_rebuild(settings)


def test_continuously_written_file_is_indexed_while_still_being_written(root, settings, start_watcher):
    """debounce=0.5 s would never fire for a file rewritten every 50 ms; max_wait=1 s makes
    sure a version written mid-stream is searchable before the writing stops."""
    seed(root)
    start_watcher(WatchOptions(debounce=0.5, max_wait=1.0))
    path = root / "stream.md"
    seen: tuple[int, float] | None = None
    with open_index(settings, embedder=RecordingEmbedder()) as reader:
        started = time.monotonic()
        tick = 0
        while time.monotonic() - started < 3.0:
            path.write_text(note("Stream", f"streamword{tick:04d} is the newest line"))
            if seen is None:
                texts = reader.store.connection.execute("SELECT text FROM chunks WHERE path = 'stream.md'").fetchall()
                match = re.search(r"streamword(\d+)", " ".join(text for (text,) in texts))
                if match:
                    seen = (int(match[1]), time.monotonic() - started)
            tick += 1
            time.sleep(0.05)  # the workload: one write every 50 ms
    last = tick - 1
    assert seen is not None, "nothing was indexed during 3 s of continuous writing"
    assert seen[0] < last, seen
    wait_until(lambda: keyword_paths(settings, f"streamword{last:04d}") == {"stream.md"}, message="the final write")
    assert_converges_to_fresh_rebuild(settings)


class SlowEmbedder(RecordingEmbedder):
    """Takes ``delay`` seconds per embed call, like a real model on a busy machine."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def embed(self, texts):
        time.sleep(self.delay)  # emulated model cost, not a wait for anything
        return super().embed(texts)


def test_file_appended_to_faster_than_it_is_embedded_is_still_indexed_every_max_wait(root, settings, start_watcher):
    """A log appended to every 50 ms, with a model that needs 150 ms per call: the file
    changes during every embedding. It must still become searchable within max-wait (plus
    a margin for the re-reads) while the writer keeps writing, and equal a fresh rebuild
    once the writing stops."""
    seed(root)
    options = WatchOptions(debounce=0.2, max_wait=1.0)
    running = start_watcher(options, embedder=SlowEmbedder(0.15))
    path = root / "log.md"
    path.write_text("# Log\n\n")
    stop = threading.Event()
    written: list[str] = []

    def append_forever() -> None:
        with open(path, "a", encoding="utf-8") as handle:
            for n in itertools.count():
                if stop.is_set() or n >= 200:  # at most 10 s
                    return
                word = f"appendword{n:04d}"
                handle.write(f"- {word} happened\n")
                handle.flush()
                written.append(word)
                stop.wait(0.05)  # the workload's pace

    writer = threading.Thread(target=append_forever, daemon=True)
    writer.start()
    try:
        wait_until(lambda: written, message="the first append")
        started = time.monotonic()
        wait_until(
            lambda: keyword_paths(settings, written[0]) == {"log.md"},
            timeout=options.max_wait + 4.0,
            message="a word appended while the file is still being written to become searchable",
        )
        assert writer.is_alive(), "the writer finished first: the test proves nothing"
        assert time.monotonic() - started < options.max_wait + 4.0
        # Later appends keep arriving too, each max-wait at the latest.
        mark = len(written)  # the next word to be appended
        wait_until(
            lambda: len(written) > mark and keyword_paths(settings, written[mark]) == {"log.md"},
            timeout=options.max_wait + 4.0,
            message="a later append to become searchable while writing goes on",
        )
        assert writer.is_alive()
    finally:
        stop.set()
        writer.join(TIMEOUT)
    wait_until(lambda: keyword_paths(settings, written[-1]) == {"log.md"}, message="the last append")
    assert_converges_to_fresh_rebuild(settings)
    assert running.alive


def test_file_rewritten_faster_than_it_is_embedded_is_still_indexed_every_max_wait(root, settings, start_watcher):
    """The same for a file rewritten in place every 50 ms (truncate and write, as an editor's
    autosave does): read again once, then the version read is indexed while writing goes on."""
    seed(root)
    options = WatchOptions(debounce=0.2, max_wait=1.0)
    running = start_watcher(options, embedder=SlowEmbedder(0.15))
    path = root / "draft.md"
    stop = threading.Event()

    def rewrite_forever() -> None:
        for n in range(200):  # at most 10 s
            if stop.is_set():
                return
            path.write_text(note("Draft", f"revision {n:04d} of the manifesto"))
            stop.wait(0.05)  # the workload's pace

    writer = threading.Thread(target=rewrite_forever, daemon=True)
    writer.start()
    try:
        wait_until(
            lambda: keyword_paths(settings, "manifesto") == {"draft.md"},
            timeout=options.max_wait + 4.0,
            message="a version of the file being rewritten to become searchable",
        )
        assert writer.is_alive(), "the writer finished first: the test proves nothing"
    finally:
        stop.set()
        writer.join(TIMEOUT)
    assert_converges_to_fresh_rebuild(settings)
    assert running.alive


# -- the memory root itself moved, replaced or gone -----------------------------------------


@pytest.fixture
def outside_index(root: Path, tmp_path: Path) -> Iterator[tuple[Settings, Callable[..., WatcherThread]]]:
    """Settings with the index outside the root (`--db` elsewhere), and a watcher starter."""
    settings = make_settings(root, tmp_path / "elsewhere" / "index.db")
    started: list[WatcherThread] = []

    def start(options: WatchOptions = FAST) -> WatcherThread:
        running = WatcherThread(settings, options, RecordingEmbedder(), None)
        started.append(running)
        running.start()
        return running

    yield settings, start
    for running in started:
        running.stop()


def logged(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


@pytest.mark.parametrize(("how", "polling"), [("renamed", False), ("deleted", False), ("renamed", True)])
def test_root_replaced_by_a_new_folder_is_watched_and_synced(root, tmp_path, outside_index, caplog, how, polling):
    """`mv root root-moved; mkdir root` (or `rm -r root; mkdir root`) under a running watcher:
    one line says so, the index follows the new folder at the configured path (its files
    indexed, its later edits too), and edits in the moved folder no longer reach it."""
    settings, start = outside_index
    seed(root)
    running = start(WatchOptions(debounce=0.05, max_wait=0.5, polling=polling))
    moved = tmp_path / "root-moved"
    if how == "renamed":
        os.rename(root, moved)
    else:
        shutil.rmtree(root)
    root.mkdir()
    write(root, "MEMORY.md", note("Facts", "a fresh start with quinoa"))
    wait_until(
        lambda: indexed_paths(settings) == {"MEMORY.md"} and keyword_paths(settings, "quinoa") == {"MEMORY.md"},
        message="the index to follow the new folder",
    )
    # One line, whether the watcher looked between the `mv` and the `mkdir` ("gone", then
    # "again") or only after ("another folder").
    assert len(logged(caplog, "syncing the index with it")) == 1
    write(root, "daily/2026-05-01.md", note("Friday", "planted sorrel"))  # the new folder is watched
    wait_until(lambda: keyword_paths(settings, "sorrel") == {"daily/2026-05-01.md"}, message="an edit in the new folder")
    if how == "renamed":
        (moved / "projects/garden.md").write_text(note("Garden", "moved-away kohlrabi"))
        write(root, "sentinel.md", note("Sentinel", "written after the edit in the moved folder"))
        wait_until(lambda: "sentinel.md" in indexed_paths(settings), message="the sentinel")
        assert keyword_paths(settings, "kohlrabi") == set()
    assert_converges_to_fresh_rebuild(settings)
    assert running.alive


def test_root_gone_leaves_the_index_alone_until_it_comes_back(root, tmp_path, outside_index, caplog):
    """The root renamed away with nothing in its place: the index keeps its rows (even when
    files are deleted in the moved folder), one line says why; when the folder is back
    the index is synced with it."""
    settings, start = outside_index
    seed(root)
    running = start()
    before = reader_snapshot(settings)
    moved = tmp_path / "root-moved"
    os.rename(root, moved)
    wait_until(lambda: logged(caplog, "is gone"), message="the watcher to notice the root is gone")
    (moved / "projects/bike.md").unlink()  # an event under the old path, with no root there
    wait_until(lambda: "projects/bike.md" in running.watcher.pending.snapshot(), message="the deletion's event")
    assert reader_snapshot(settings) == before  # nothing dropped
    os.rename(moved, root)
    wait_until(lambda: "projects/bike.md" not in indexed_paths(settings), message="the sync once the root is back")
    assert len(logged(caplog, "is gone")) == 1 and len(logged(caplog, "syncing the index with it")) == 1
    (root / "MEMORY.md").write_text(note("Facts", "back home with rhubarb"))  # still watched
    wait_until(lambda: keyword_paths(settings, "rhubarb") == {"MEMORY.md"}, message="an edit after the return")
    assert_converges_to_fresh_rebuild(settings)
    assert running.alive


def test_root_with_its_index_inside_replaced_restarts_the_watcher_process(root, settings, tmp_path, processes):
    """The default layout (index in ROOT/.memdex): `mv root root-moved; mkdir root` moves the
    index away with the folder. The watcher process says so and starts over on the new
    folder (a new index there); the moved folder keeps its own index untouched."""
    seed(root)
    process, ready, log = spawn_watcher(root, tmp_path, processes)
    wait_ready(process, ready, log)
    moved = tmp_path / "root-moved"
    os.rename(root, moved)
    root.mkdir()
    write(root, "MEMORY.md", note("Facts", "a new memory about tamarind"))
    def new_folder_indexed() -> bool:
        try:
            return keyword_paths(settings, "tamarind") == {"MEMORY.md"}
        except IndexerError:  # no index there yet, or not migrated yet
            return False

    wait_until(new_folder_indexed, timeout=20, message="the restarted watcher to index the new folder")
    assert indexed_paths(settings) == {"MEMORY.md"}
    assert process.poll() is None
    assert log.read_text().count("syncing the index with it") == 1, log.read_text()
    assert_converges_to_fresh_rebuild(settings)
    old = make_settings(moved)
    assert "projects/garden.md" in indexed_paths(old)  # the moved folder's index kept its rows
    assert watcher_status(old.index_dir) is None  # no longer claimed by a running watcher
    assert wait_until(lambda: watcher_status(settings.index_dir), message="the new status file")["pid"] == process.pid
    stop_with_sigterm(process, log)
    assert "Traceback" not in log.read_text()


# -- a separate watcher process: signals, crash safety, concurrent readers ---------------------


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[Any]]]:
    """Processes a test started; any still running at teardown are killed (by their own pid)."""
    started: list[subprocess.Popen[Any]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)


def helper_command(*args: object) -> list[str]:
    return [sys.executable, str(HELPER), *(str(a) for a in args)]


def helper_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def spawn_watcher(
    root: Path, tmp_path: Path, processes: list[subprocess.Popen[Any]], *args: object
) -> tuple[subprocess.Popen[Any], Path, Path]:
    """Start `watch_process.py watch ROOT`; returns (process, its ready file, its log file)."""
    ready, log = tmp_path / "watcher.ready", tmp_path / "watcher.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            helper_command("watch", root, "--ready-file", ready, *args),
            stdout=output, stderr=subprocess.STDOUT, cwd=REPO, env=helper_env(),
        )  # fmt: skip
    processes.append(process)
    return process, ready, log


def wait_ready(process: subprocess.Popen[Any], ready: Path, log: Path, timeout: float = TIMEOUT) -> None:
    wait_until(lambda: ready.exists() or process.poll() is not None, timeout, message="the watcher process")
    assert process.poll() is None, f"watcher exited {process.returncode}: {log.read_text()}"


def stop_with_sigterm(process: subprocess.Popen[Any], log: Path, signum: int = signal.SIGTERM) -> None:
    """SIGTERM (what systemd and launchd send) or Ctrl-C ends the watcher cleanly, with status 0."""
    process.send_signal(signum)
    try:
        code = process.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the watcher did not exit within {TIMEOUT:g}s of signal {signum}: {log.read_text()}")
    assert code == 0, f"exit status {code}: {log.read_text()}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_while_idle_exits_cleanly(root, settings, tmp_path, processes, signum):
    """SIGTERM (service stop) or SIGINT (Ctrl-C) to an idle watcher: exit status 0,
    watcher.json removed, writer lock released."""
    seed(root)
    process, ready, log = spawn_watcher(root, tmp_path, processes)
    wait_ready(process, ready, log)
    assert watcher_status(settings.index_dir)["pid"] == process.pid
    stop_with_sigterm(process, log, signum)
    assert not (settings.index_dir / STATUS_FILE_NAME).exists()
    assert watcher_status(settings.index_dir) is None
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index:  # the lock is free
        index.sync()
        assert index.store.snapshot() == fresh_snapshot(settings)
    assert "Traceback" not in log.read_text()


def test_a_signal_a_library_swallows_still_stops_the_watcher(root, settings, tmp_path, processes):
    """SIGTERM while ONNX Runtime first imports becomes an ImportError inside the model load,
    and later signals are ignored: the watcher must still stop, with status 0."""
    seed(root)
    started = tmp_path / "model.loading"
    process, ready, log = spawn_watcher(root, tmp_path, processes, "--swallow-first-interrupt", started,
                                        "--embed-delay", TIMEOUT)  # fmt: skip
    wait_until(lambda: started.exists() or process.poll() is not None, message="the first model call")
    stop_with_sigterm(process, log)
    assert "initialization failed" in log.read_text()  # the interrupt was swallowed, as by onnxruntime
    assert watcher_status(settings.index_dir) is None


def shuffle_folders(root: Path, outside: Path, rounds: int = 3) -> None:
    """What made watchdog warn "Callback with id ... already exists for watch": folders
    moved out of the root and back in (their inotify watches survive the trip), and
    `mkdir -p` trees filled at once (walked twice)."""
    for n in range(rounds):
        os.makedirs(root / f"trip{n}/a/b/c")
        for level in ("", "a", "a/b", "a/b/c"):
            write(root, f"trip{n}/{level}/stop.md".replace("//", "/"), note("Stop", f"waypoint{n} at {level or 'top'}"))
        os.rename(root / f"trip{n}", outside / f"trip{n}")
        os.rename(outside / f"trip{n}", root / f"back{n}")
        os.rename(root / f"back{n}", root / f"trip{n}")


def test_watchdog_bookkeeping_warnings_stay_off_stderr(root, settings, tmp_path, processes, outside):
    """Folders moved out and back and trees created at once used to print watchdog's
    1.2 KB "Callback with id ... already exists" RuntimeWarnings on the watcher's stderr.
    The watcher's output stays empty, and the index still follows every move."""
    seed(root)
    process, ready, log = spawn_watcher(root, tmp_path, processes)
    wait_ready(process, ready, log)
    shuffle_folders(root, outside)
    assert_converges_to_fresh_rebuild(settings, timeout=20)
    assert keyword_paths(settings, "waypoint2") == {f"trip2/{level}stop.md" for level in ("", "a/", "a/b/", "a/b/c/")}
    stop_with_sigterm(process, log)
    assert log.read_text() == ""


def test_memdex_watch_says_when_it_starts_and_stops(root, settings):
    """`memdex watch` says one line on stderr once it watches and one when it stops; nothing on stdout.
    (An empty root: its initial sync embeds nothing, so no model loads.)"""
    process = subprocess.Popen(
        [sys.executable, "-m", "indexer", "--root", str(root), "watch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=helper_env(),
    )  # fmt: skip
    try:
        wait_until(
            lambda: (watcher_status(settings.index_dir) or {}).get("pid") == process.pid or process.poll() is not None,
            timeout=60, message="the watcher to start",
        )  # fmt: skip
        assert process.poll() is None, process.stderr.read()
        process.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert out == ""
        assert err.splitlines() == [f"memdex: watching {settings.root} (Ctrl-C stops)", "memdex: stopped"], err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_memdex_watch_stderr_stays_clean(root, settings, outside):
    """The same with the real `memdex watch` (real model, hence slow): only its start and stop lines on stderr.
    The model's one-time preparation (its ONNX export, announced on stderr on a fresh cache) is done
    first by an index of another folder, so the test holds whichever tests ran before it."""
    warm = root.parent / "warm-up"
    write(warm, "MEMORY.md", "# Warm-up\n\n- prepares the embedding model once\n")
    subprocess.run([sys.executable, "-m", "indexer", "--root", str(warm), "index"], check=True, capture_output=True,
                   cwd=REPO, env=helper_env(), timeout=900)  # fmt: skip
    seed(root)
    process = subprocess.Popen(
        [sys.executable, "-m", "indexer", "--root", str(root), "watch", "--debounce", "0.05", "--max-wait", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=helper_env(),
    )  # fmt: skip
    try:
        wait_until(
            lambda: (watcher_status(settings.index_dir) or {}).get("last_sync") is not None or process.poll() is not None,
            timeout=120, message="the watcher's initial sync",
        )  # fmt: skip
        assert process.poll() is None, process.stderr.read()
        shuffle_folders(root, outside)
        wait_until(lambda: len(keyword_paths(settings, "waypoint2")) == 4, timeout=30, message="the moved folders")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert err.splitlines() == [f"memdex: watching {settings.root} (Ctrl-C stops)", "memdex: stopped"], err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


LARGE_FILES = 400


def indexed_count(settings: Settings) -> int:
    try:
        with open_index(settings, embedder=RecordingEmbedder()) as index:
            return index.store.connection.execute("SELECT count(*) FROM files").fetchone()[0]
    except IndexerError:  # not created or not migrated yet
        return 0


def test_sigterm_during_a_large_initial_sync_leaves_a_consistent_index(root, settings, tmp_path, processes):
    """SIGTERM in the middle of indexing 400 files: exit status 0; the database passes
    integrity_check; every indexed file has all its chunk, full-text and vector rows (no
    half-written file); a following sync makes it equal a fresh rebuild."""
    for n in range(LARGE_FILES):
        sections = "".join(f"## Part {k}\n\nfile {n} part {k}: the value is {n * k}\n\n" for k in range(12))
        write(root, f"bulk/{n // 100}/file-{n:03d}.md", f"# File {n}\n\n{sections}")
    # 0.3 s per embed call (one call per ~500 chunks): the sync takes a few seconds.
    process, ready, log = spawn_watcher(root, tmp_path, processes, "--embed-delay", "0.3")
    partial = wait_until(
        lambda: 0 < (count := indexed_count(settings)) < LARGE_FILES and count,
        timeout=20,
        message="some but not all files to be indexed",
    )
    stop_with_sigterm(process, log)
    assert not ready.exists(), "the initial sync finished before SIGTERM; the test did not interrupt it"
    assert not (settings.index_dir / STATUS_FILE_NAME).exists()

    expected = fresh_snapshot(settings)
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        connection = index.store.connection
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        files = {path for (path,) in connection.execute("SELECT path FROM files")}
        assert partial <= len(files) < LARGE_FILES
        chunk_paths = {path for (path,) in connection.execute("SELECT DISTINCT path FROM chunks")}
        assert chunk_paths == files, "chunks without their file row, or a file row without chunks"
        chunk_ids = [cid for (cid,) in connection.execute("SELECT id FROM chunks ORDER BY id")]
        assert [r for (r,) in connection.execute("SELECT rowid FROM chunks_fts ORDER BY rowid")] == chunk_ids
        if index.store.vec_enabled:
            assert sorted(r for (r,) in connection.execute("SELECT rowid FROM chunks_vec")) == chunk_ids
        snapshot = index.store.snapshot()
    # Every file that made it in is complete: its rows are exactly those of a fresh rebuild.
    for key in ("files", "chunks", "fts", "vec"):
        if key in snapshot:
            assert snapshot[key] == [row for row in expected[key] if row[0] in files], key
    cache = apsw.Connection(str(settings.cache_path))
    try:
        assert cache.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        cache.close()

    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index:
        index.sync()
        assert index.store.snapshot() == expected


def test_concurrent_reader_process_never_fails_while_the_watcher_writes(root, settings, tmp_path, processes):
    """A `memdex search`-like reader in another process, searching in a loop during a storm of
    edits that the watcher process indexes, never gets an error (no 'database is locked')."""
    rng = random.Random(7)
    for rel in STORM_NAMES:
        write(root, rel, note("Seed", f"alpha bravo seed fact for {rel}"))
    process, ready, log = spawn_watcher(root, tmp_path, processes)
    wait_ready(process, ready, log)
    reader_ready = tmp_path / "reader.ready"
    with open(tmp_path / "reader.log", "wb") as reader_log:
        reader = subprocess.Popen(
            helper_command("search", root, "--seconds", 4, "--ready-file", reader_ready),
            stdout=subprocess.PIPE, stderr=reader_log, cwd=REPO, env=helper_env(),
        )  # fmt: skip
    processes.append(reader)
    wait_until(lambda: reader_ready.exists() or reader.poll() is not None, message="the reader process")
    storm(root, rng, operations=300, seconds=2.5)
    out, _ = reader.communicate(timeout=30)
    assert reader.returncode == 0, (tmp_path / "reader.log").read_text()
    report = json.loads(out)
    assert report["errors"] == 0, report["messages"]
    assert report["searches"] > 50, report
    assert_converges_to_fresh_rebuild(settings, timeout=20)
    stop_with_sigterm(process, log)


@pytest.mark.slow
def test_service_watcher_waits_for_the_lock_then_starts(root, settings):
    """`memdex watch --wait-for-lock` (what the service definitions run) waits, with one
    warning, while another process writes the index, then starts; SIGTERM stops it with exit 0.
    Loads the real model in the subprocess, hence slow."""
    from indexer.indexing.lock import acquire_lock as _acquire_lock
    from indexer.watch.state import watcher_status

    seed(root)
    lock = _acquire_lock(settings.lock_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "indexer", "--root", str(root), "watch", "--wait-for-lock"],
        stderr=subprocess.PIPE, text=True, cwd=REPO, env=helper_env(),
    )  # fmt: skip
    try:
        first_line = process.stderr.readline()  # blocks until the warning (or exit)
        assert "waiting for it" in first_line, first_line
        assert process.poll() is None
        lock.close()
        wait_until(
            lambda: (watcher_status(settings.index_dir) or {}).get("last_sync") is not None,
            timeout=120, message="the service watcher's initial sync",
        )  # fmt: skip
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        lock.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def test_watcher_stops_when_its_index_is_deleted(root, settings, start_watcher):
    """`rm -rf .memdex` while the watcher runs: it stops with a clear error (a service
    restarts it, and the restart rebuilds) instead of writing a deleted file forever."""
    seed(root)
    running = start_watcher()
    shutil.rmtree(settings.index_dir)
    wait_until(lambda: not running.alive, message="the watcher to stop")
    assert isinstance(running.error, IndexerError) and "deleted or replaced" in str(running.error)
    running.error = None  # expected; do not fail the teardown


def test_a_file_name_that_is_not_utf8_does_not_hold_up_other_edits(root, settings, start_watcher):
    """A note whose name is not valid UTF-8 appears next to an edit: the edit is still indexed."""
    seed(root)
    start_watcher()
    bad = os.fsencode(str(root)) + b"/caf\xe9.md"
    with open(bad, "wb") as handle:
        handle.write(b"# Cafe\n\nespresso\n")
    (root / "MEMORY.md").write_text(note("Memory", "the kettle is descaled"))
    wait_until(lambda: "MEMORY.md" in keyword_paths(settings, "descaled"), message="the edit next to a bad name")
