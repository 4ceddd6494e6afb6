"""PostgreSQL under concurrency and failure, on the session's real server:
several hosts writing one namespace and others writing their own while
readers search, writers killed with SIGKILL mid-file, a server restarted or
stopped under a running watcher, and a rebuild racing a sync.

Writers are separate processes (tests/pg_writer_process.py), each with its
own copy of the memory folder and its own host id (``MEMDEX_HOST``), as real
hosts would be. Every wait is on a condition, with a timeout.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import RecordingEmbedder, age_files, write
from pg_writer_process import initial_files

from indexer import make_settings, open_index
from indexer.config.settings import Settings
from indexer.watch.watcher import Watcher, WatchOptions

pytestmark = pytest.mark.postgres

HELPER = Path(__file__).with_name("pg_writer_process.py")
TIMEOUT = 60.0


# -- helpers ------------------------------------------------------------------------------------
def wait_until(condition: Callable[[], Any], timeout: float = TIMEOUT, *, message: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(0.02)


def new_name(label: str) -> str:
    return f"conc-{label}-{uuid.uuid4().hex[:8]}"


def folder(base: Path, name: str, files: dict[str, str]) -> Path:
    root = base / name
    root.mkdir()
    for rel, text in files.items():
        write(root, rel, text)
    age_files(root)
    return root


def settings_for(root: Path, url: str, namespace: str, **options: Any) -> Settings:
    return make_settings(root, url, namespace=namespace, **options)


def index(settings: Settings) -> None:
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as memory:
        memory.sync()


def snap(settings: Settings) -> dict[str, Any]:
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        return memory.store.snapshot()


def problems(settings: Settings) -> dict[str, int]:
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        counts = memory.store.consistency_counts()
    return {name: n for name, n in counts.items() if name not in ("files", "chunks") and n}


def fresh_snapshot(base: Path, root: Path, url: str) -> dict[str, Any]:
    """The rows of a fresh namespace indexed from a copy of ``root`` as it is now."""
    copy = base / f"fresh-{uuid.uuid4().hex[:8]}"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".memdex"))
    settings = settings_for(copy, url, new_name("fresh"))
    index(settings)
    return snap(settings)


def duplicate_chunks(url: str, namespaces: list[str]) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT n.name, c.path, c.start_line, count(*) FROM memdex.chunks c "
            "JOIN memdex.namespaces n ON n.id = c.ns WHERE n.name = ANY(%s) "
            "GROUP BY n.name, c.path, c.start_line HAVING count(*) > 1",
            (namespaces,),
        ).fetchall()


class WriterProcess:
    """A writer process (tests/pg_writer_process.py) whose stdout lines are collected as they come."""

    def __init__(self, root: Path, url: str, namespace: str, *options: str, host: str) -> None:
        repo = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "MEMDEX_HOST": host,
               "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, str(HELPER), str(root), url, namespace, *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.lines: list[str] = []
        self.stderr = ""
        self._out = threading.Thread(target=self._collect, daemon=True)
        self._err = threading.Thread(target=self._collect_stderr, daemon=True)
        self._out.start()
        self._err.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def _collect_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def opened(self) -> float:
        """Wait for the ``opened TIME`` line; returns TIME."""
        wait_until(lambda: self.lines or self.process.poll() is not None, message="the writer to open the namespace")
        assert self.lines and self.lines[0].startswith("opened "), f"writer did not open: {self._stderr()}"
        return float(self.lines[0].split()[1])

    def _stderr(self) -> str:
        self._err.join(TIMEOUT if self.process.poll() is not None else 0)
        return self.stderr[-3000:]

    def wait(self, timeout: float = TIMEOUT) -> int:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._out.join(TIMEOUT)
        self._err.join(TIMEOUT)
        return code

    def finish(self, timeout: float = TIMEOUT) -> float:
        """Wait for a clean exit; returns the ``done TIME``."""
        code = self.wait(timeout)
        assert code == 0, f"writer failed ({code}): {self.stderr[-3000:]}"
        assert self.lines and self.lines[-1].startswith("done "), self.lines
        return float(self.lines[-1].split()[1])


def per_path(snapshot: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """A snapshot's rows grouped by file path (file row, chunks, postings, vectors)."""
    grouped: dict[str, dict[str, list[Any]]] = {}
    for table in ("files", "chunks", "postings", "vec"):
        for row in snapshot.get(table, []):
            grouped.setdefault(row[0], {"files": [], "chunks": [], "postings": [], "vec": []})[table].append(row)
    return grouped


class Readers:
    """Threads that search in a loop (hybrid and keyword), each with its own connection,
    until stopped; they record every error and every hit count."""

    def __init__(self, settings: list[Settings], queries: list[str]) -> None:
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.counts: list[list[int]] = [[] for _ in settings]
        self.threads = [
            threading.Thread(target=self._run, args=(s, queries, self.counts[i]), daemon=True)
            for i, s in enumerate(settings)
        ]

    def _run(self, settings: Settings, queries: list[str], counts: list[int]) -> None:
        try:
            with open_index(settings, embedder=RecordingEmbedder()) as memory:
                turn = 0
                while not self.stop_event.is_set():
                    mode = ("hybrid", "keyword")[turn % 2]
                    query = queries[turn % len(queries)]
                    turn += 1
                    try:
                        counts.append(len(memory.search(query, mode=mode, budget_lines=None, limit=50)))
                    except Exception as exc:  # noqa: BLE001 - what the test asserts on
                        self.errors.append(f"{mode} {query!r}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"open: {type(exc).__name__}: {exc}")

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(TIMEOUT)


# -- 1. two writers on one namespace, four on their own, two readers -------------------------------
def test_concurrent_writers_and_readers_lose_nothing_and_duplicate_nothing(tmp_path: Path, pg_url: str) -> None:
    """Two hosts (own copies, own host ids) sync the same edits into ONE namespace, four
    more sync their own namespaces, all at once and for several rounds, while two readers
    search the whole time. Afterwards: no duplicate chunk, every namespace equals a fresh
    rebuild of its final folder, counters agree, and no search failed."""
    rounds = 6
    shared = new_name("shared")
    shared_roots = [folder(tmp_path, f"host{i}", initial_files(100)) for i in range(2)]
    own = [(new_name(f"own{i}"), folder(tmp_path, f"own{i}", initial_files(200 + i))) for i in range(4)]
    # Every namespace starts empty: both hosts of the shared one create it and set it up at once.
    # The readers' own namespace only makes sure the schema exists before they open.
    lookout = settings_for(folder(tmp_path, "lookout", {"a.md": "# A\n\nmemo\n"}), pg_url, new_name("lookout"))
    index(lookout)
    readers_settings = [
        settings_for(lookout.root, pg_url, lookout.namespace_name, search_namespaces=(shared,)),
        settings_for(lookout.root, pg_url, lookout.namespace_name, search_namespaces=("*",)),
    ]
    go = tmp_path / "go"
    options = ("--rounds", str(rounds), "--group", "3", "--embed-delay", "0.01", "--go", str(go))
    writers = [
        WriterProcess(root, pg_url, shared, *options, "--seed", "1", host=f"host-{i}")
        for i, root in enumerate(shared_roots)
    ]
    writers += [
        WriterProcess(root, pg_url, name, *options, "--seed", str(10 + i), host=f"own-{i}")
        for i, (name, root) in enumerate(own)
    ]
    started = [writer.opened() for writer in writers]  # every namespace exists (a reader naming one needs it)
    with Readers(readers_settings, ["memo lake", "garden kettle", "round memo", "edited violin"]) as readers:
        go.touch()  # all writers are open: start the rounds together
        searches_before = [len(c) for c in readers.counts]
        finished = [writer.finish(timeout=120) for writer in writers]
        searches_during = [len(c) - n for c, n in zip(readers.counts, searches_before)]
    assert all(sum(line.startswith("round ") for line in w.lines) == rounds for w in writers)
    assert max(started) < min(finished), "the writers did not run at the same time"
    assert min(searches_during) >= 5, f"the readers hardly searched while the writers ran: {searches_during}"
    assert readers.errors == []
    assert all(max(counts) > 0 for counts in readers.counts), "the readers found nothing"

    assert duplicate_chunks(pg_url, [shared] + [name for name, _ in own]) == []
    copies = [{p.relative_to(r).as_posix(): p.read_text() for p in r.rglob("*.md")} for r in shared_roots]
    assert copies[0] == copies[1], "both hosts' copies received the same edits"
    for name, root in [(shared, shared_roots[0])] + own:
        settings = settings_for(root, pg_url, name)
        assert problems(settings) == {}, name
        assert snap(settings) == fresh_snapshot(tmp_path, root, pg_url), f"{name} differs from a fresh rebuild"


# -- 2. kill -9 of a writer mid-file -------------------------------------------------------------
def changed_file_count(url: str, namespace: str, hashes: dict[str, str]) -> int:
    """Files of the namespace whose hash is no longer the one in ``hashes`` (committed writes)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT f.path, f.hash FROM memdex.files f JOIN memdex.namespaces n ON n.id = f.ns WHERE n.name = %s",
            (namespace,),
        ).fetchall()
    return sum(1 for path, digest in rows if hashes.get(path) != digest)


def test_a_writer_killed_mid_file_leaves_whole_files_and_the_next_sync_converges(tmp_path: Path, pg_url: str) -> None:
    """SIGKILL at different moments of a slow sync (files written one at a time): no
    problem in the counters, every file's rows are all old or all new (never a partial
    set of chunks), and the next sync equals a fresh rebuild."""
    rng = random.Random(7)
    files = initial_files(300, count=14)
    root = folder(tmp_path, "memory", files)
    name = new_name("killed")
    settings = settings_for(root, pg_url, name)
    index(settings)
    killed = 0
    for trial in range(4):
        before = snap(settings)
        for number, rel in enumerate(sorted(files)):  # every file changes: a long sync
            path = root / rel
            if path.exists():
                path.write_text(path.read_text() + f"\n## Trial {trial}\n\nkilled trial {trial} file {number}.\n")
        if trial == 2:
            (root / sorted(files)[0]).unlink()
        write(root, f"notes/trial{trial}.md", f"# Trial {trial}\n\nA new note for trial {trial}.\n")
        age_files(root)
        expected = fresh_snapshot(tmp_path, root, pg_url)
        process = WriterProcess(root, pg_url, name, "--group", "1", "--embed-delay", "0.05", host="killed-host")
        try:
            process.opened()
            if trial % 2 == 0:  # shortly after opening: maybe before or inside the first file
                time.sleep(rng.uniform(0.0, 0.3))  # the fault-injection moment
            else:  # after some files were committed
                old = {row[0]: row[3] for row in before["files"]}
                wanted = rng.randint(1, 6)
                wait_until(lambda: changed_file_count(pg_url, name, old) >= wanted or process.poll() is not None,
                           message="the writer's first files")  # fmt: skip
                time.sleep(rng.uniform(0.0, 0.05))
            os.kill(process.pid, signal.SIGKILL)
        finally:
            code = process.wait()
        assert code in (0, -signal.SIGKILL), process.stderr
        killed += code == -signal.SIGKILL
        assert problems(settings) == {}
        now, old_rows, new_rows = per_path(snap(settings)), per_path(before), per_path(expected)
        for path, rows in now.items():
            whole = rows in (old_rows.get(path), new_rows.get(path))
            assert whole, f"trial {trial}: {path} is partly written: chunks at lines {[c[1] for c in rows['chunks']]}"
        assert duplicate_chunks(pg_url, [name]) == []
        WriterProcess(root, pg_url, name, host="killed-host").finish()
        assert snap(settings) == expected, f"trial {trial}: the next sync did not converge"
    assert killed >= 3, "the writer finished before it could be killed: slow it down"


# -- 3. a server restart (and an outage) under a running watcher --------------------------------------
class WatcherThread:
    def __init__(self, settings: Settings, options: WatchOptions) -> None:
        self.context = open_index(settings, write=True, embedder=RecordingEmbedder())
        self.index = self.context.__enter__()
        self.watcher = Watcher(self.index, options)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.watcher.run()
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            self.error = exc

    def __enter__(self) -> WatcherThread:
        self.thread.start()
        assert self.watcher.ready.wait(TIMEOUT), f"the watcher never became ready ({self.error!r})"
        return self

    def __exit__(self, *exc: object) -> None:
        self.watcher.stop()
        self.thread.join(TIMEOUT)
        self.context.__exit__(None, None, None)
        assert not self.thread.is_alive() and self.error is None, repr(self.error)


def searchable(settings: Settings, word: str) -> bool:
    try:
        with open_index(settings, embedder=RecordingEmbedder()) as memory:
            return any(word in hit.snippet for hit in memory.search(word, mode="keyword", budget_lines=None))
    except Exception:  # noqa: BLE001 - the server may still be coming back
        return False


def sync_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "indexer.watch.watcher" and "failed" in r.getMessage()]


def one_warning_line(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return record.levelno == logging.WARNING and record.exc_info is None and "\n" not in message and "Traceback" not in message


def test_the_watcher_survives_a_server_restart_and_an_outage(
    tmp_path: Path, pg_url: str, pg_server_alive: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The server restarts under a running watcher: the next edit becomes searchable (a
    failed sync on the dead connection is one warning line, no traceback). Then the server
    is down while a file is edited: the watcher keeps retrying with backoff, and once the
    server is back the edit becomes searchable."""
    caplog.set_level(logging.INFO, logger="indexer")
    root = folder(tmp_path, "memory", initial_files(400, count=4))
    settings = settings_for(root, pg_url, new_name("watch"))
    options = WatchOptions(debounce=0.05, max_wait=0.3, reconcile=300.0)
    with WatcherThread(settings, options) as running:
        assert searchable(settings, "memo")
        pg_server_alive.restart()
        write(root, "notes/after-restart.md", "# Restart\n\nzeppelin after the restart.\n")
        wait_until(lambda: searchable(settings, "zeppelin"), message="the edit after the restart to be searchable")
        # The watcher's connection died with the restart: that sync failed, was retried, and worked.
        failures = sync_failures(caplog)
        assert len(failures) >= 1, "the sync on the dead connection did not fail: the test missed the restart"
        assert all(one_warning_line(r) and "cannot reach the PostgreSQL server" in r.getMessage() for r in failures)
        assert running.thread.is_alive()

        caplog.clear()
        pg_server_alive.stop()
        write(root, "notes/during-outage.md", "# Outage\n\nquokka while the server was down.\n")
        wait_until(lambda: len(sync_failures(caplog)) >= 3, message="the watcher to retry the sync")
        failures = sync_failures(caplog)
        assert all(one_warning_line(r) and "cannot reach the PostgreSQL server" in r.getMessage() for r in failures)
        gaps = [b.created - a.created for a, b in zip(failures, failures[1:])]
        assert gaps[1] > gaps[0] >= options.max_wait * 0.9, f"no backoff between retries: {gaps}"
        assert running.thread.is_alive()
        pg_server_alive.restart()
        wait_until(lambda: searchable(settings, "quokka"), message="the edit made during the outage to be searchable")
        assert running.thread.is_alive() and running.error is None
    assert problems(settings) == {}
    assert snap(settings) == fresh_snapshot(tmp_path, root, pg_url)


def rebuild_locked(url: str, namespace: str) -> bool:
    """Whether some session holds the namespace's exclusive (rebuild) advisory lock."""
    from indexer.store.postgres.connection import _LOCK_SPACE, lock_key

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ExclusiveLock' "
            "AND classid = %s::oid AND objid = (%s::bigint & 4294967295)::oid AND objsubid = 2",
            (_LOCK_SPACE, lock_key(namespace)),
        ).fetchone()
    return bool(row[0])


def paused_holding_lock(process: WriterProcess, url: str, namespace: str) -> str | None:
    """Stop ``process`` and look: if it holds the namespace's rebuild lock it stays stopped
    ("locked"); otherwise it is continued ("finished" if it has exited, else None: look again)."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        if rebuild_locked(url, namespace):
            return "locked"
    except BaseException:
        os.kill(process.pid, signal.SIGCONT)
        raise
    os.kill(process.pid, signal.SIGCONT)
    return "finished" if process.poll() is not None else None


# -- 4. a rebuild racing a sync of the same namespace -----------------------------------------
def test_a_rebuild_racing_a_sync_keeps_searches_answered_and_converges(tmp_path: Path, pg_url: str) -> None:
    """Host A rebuilds the namespace (exclusive lock, one transaction) while host B syncs
    the same edits into it: both finish, the rows equal a fresh rebuild, and a reader
    searching throughout always finds hits (old rows or new, never an empty namespace)."""
    files = initial_files(500, count=10)
    roots = [folder(tmp_path, f"host{i}", files) for i in range(2)]
    name = new_name("rebuild")
    for i, root in enumerate(roots):
        os.environ["MEMDEX_HOST"] = f"rebuild-host-{i}"
        try:
            index(settings_for(root, pg_url, name))
        finally:
            del os.environ["MEMDEX_HOST"]
    for root in roots:  # the same edits on both hosts: new text in every file
        for number, rel in enumerate(sorted(files)):
            path = root / rel
            path.write_text(path.read_text() + f"\n## Rebuilt\n\nrebuilt memo {number}.\n")
        (root / sorted(files)[-1]).unlink()
        age_files(root)
    settings = settings_for(roots[0], pg_url, name)
    with Readers([settings], ["memo"]) as readers:
        wait_until(lambda: len(readers.counts[0]) >= 2, message="the reader's first searches")
        rebuild = WriterProcess(roots[0], pg_url, name, "--rebuild", "--group", "1", "--embed-delay", "0.15",
                               host="rebuild-host-0")  # fmt: skip
        rebuild.opened()
        syncing = WriterProcess(roots[1], pg_url, name, "--group", "1", "--embed-delay", "0.03", host="rebuild-host-1")
        # The race is held open by pausing the rebuild (SIGSTOP) while it holds its lock, not by
        # hoping its embed delay outlasts the other host's start-up: on a busy machine it did not.
        # Each look stops the rebuild first, so it cannot finish between the look and the pause.
        state = wait_until(lambda: paused_holding_lock(rebuild, pg_url, name), message="the rebuild's lock")
        assert state == "locked", "the rebuild finished before it was seen holding its lock: slow it down"
        try:
            # The other host opens the namespace while the paused rebuild holds it (opening must not
            # wait for the rebuild; if it did, this wait times out), and searches go on meanwhile.
            sync_opened = syncing.opened()
            during = len(readers.counts[0])
            wait_until(lambda: len(readers.counts[0]) >= during + 3 or readers.errors,
                       message="searches while the rebuild holds its lock")  # fmt: skip
        finally:
            os.kill(rebuild.pid, signal.SIGCONT)
        rebuilt_at = rebuild.finish()
        during = len(readers.counts[0]) - during
        syncing.finish()
        seen = len(readers.counts[0])
        wait_until(lambda: len(readers.counts[0]) >= seen + 2, message="searches after the writers finished")
    # Opening the namespace must not wait for the rebuild (it did: the namespace upsert waited
    # for the rebuild's update of the namespace row, and could run past the statement timeout).
    assert sync_opened < rebuilt_at, "the other host could not open the namespace while it was rebuilt"
    assert during >= 3, f"only {during} searches ran during the rebuild"
    assert readers.errors == []
    assert len(readers.counts[0]) >= 6 and min(readers.counts[0]) > 0, readers.counts[0]
    assert duplicate_chunks(pg_url, [name]) == []
    assert problems(settings) == {}
    assert snap(settings) == fresh_snapshot(tmp_path, roots[0], pg_url)


# -- 5. two hosts setting up a new namespace at once -------------------------------------------
def test_a_second_host_setting_up_the_vector_table_late_keeps_the_first_hosts_vectors(
    tmp_path: Path, pg_url: str
) -> None:
    """Both hosts of a new namespace find no vector table at their first sync and set one
    up (sync._check_configuration). Host B looked (no table, no chunks) before host A set
    it up and wrote files; B's set-up must not delete A's vectors nor fail on chunks it
    has no vectors for (it raised KeyError, or left chunks without a vector)."""
    from indexer.store.postgres.store import PgStore

    files = initial_files(600, count=3)
    roots = [folder(tmp_path, f"host{i}", files) for i in range(2)]
    name = new_name("setup")
    late = PgStore(pg_url, namespace=name, host="host-b", write=True)
    try:
        assert late.vec_dimensions() is None and late.chunk_hashes() == []  # B's look, before A starts
        index(settings_for(roots[0], pg_url, name))  # host A: table, meta, chunks and vectors
        late.rebuild_vectors(RecordingEmbedder().dimensions, {})  # B acts on what it saw
    finally:
        late.close()
    settings = settings_for(roots[1], pg_url, name)
    assert problems(settings) == {}
    assert snap(settings) == fresh_snapshot(tmp_path, roots[0], pg_url)


# -- 6. the shared embedding cache during another namespace's rebuild ------------------------------
def test_embeddings_cached_inside_a_rebuild_do_not_block_other_hosts(tmp_path: Path, pg_url: str) -> None:
    """A rebuild is one long transaction. The embeddings it caches are committed at once
    (the cache writes on a connection of its own), so another host embedding the same
    text, in any namespace, neither waits for the rebuild (until the statement timeout)
    nor deadlocks with it; and they stay cached if the rebuild fails."""
    import numpy as np

    from indexer.store.postgres.store import PgEmbeddingCache, PgStore

    model = f"test/cache-{uuid.uuid4().hex[:8]}"
    vectors = {f"hash-{i:03d}": np.full(4, i + 1, dtype=np.float32) / (2 * (i + 1)) for i in range(20)}
    rebuilding = PgStore(pg_url, namespace=new_name("rebuilding"), host="host-a", write=True)
    other = PgStore(pg_url, namespace=new_name("other"), host="host-b", write=True)
    try:
        cache_a = PgEmbeddingCache(rebuilding, model_id=model, dimensions=4)
        cache_b = PgEmbeddingCache(other, model_id=model, dimensions=4)
        done = threading.Event()
        first = {**dict(list(vectors.items())[:10]), "only-the-rebuild": np.full(4, 0.5, dtype=np.float32)}
        with pytest.raises(RuntimeError, match="the rebuild failed"):
            with rebuilding.connection.transaction():  # as PgEngine.rebuild holds it
                cache_a.put_many(first)
                writer = threading.Thread(target=lambda: (cache_b.put_many(dict(reversed(vectors.items()))), done.set()))
                writer.start()
                wait_until(done.is_set, timeout=10, message="the other host's cache write (it waited for the rebuild)")
                raise RuntimeError("the rebuild failed")
        writer.join(TIMEOUT)
        assert sorted(cache_b.get_many(vectors)) == sorted(vectors)
        # Each namespace has its own cache (test_pg_access.py): the rebuild's vectors are in its own.
        assert sorted(cache_a.get_many(first)) == sorted(first), "what the failed rebuild embedded was lost"
        assert "only-the-rebuild" not in cache_b.get_many(first)
        cache_a.close()
        cache_a.put_many({"after-close": np.full(4, 0.5, dtype=np.float32)})  # a closed cache connects again
        assert list(cache_a.get_many(["after-close"])) == ["after-close"]
        cache_a.close()
        cache_b.close()
    finally:
        rebuilding.close()
        other.close()


# -- 7. a rebuild longer than the statement timeout ----------------------------------------
class GatedEmbedder(RecordingEmbedder):
    """Holds every embed call until ``gate`` is set (a rebuild that takes as long as the test wants)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def embed(self, texts: Any) -> Any:
        self.waiting.set()
        assert self.gate.wait(TIMEOUT), "the test never opened the gate"
        return super().embed(texts)


def lock_waiters(url: str, application: str = "memdex") -> list[float]:
    """How long each memdex session that is waiting for a lock has been waiting (seconds)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM now() - query_start) FROM pg_stat_activity "
            "WHERE application_name = %s AND wait_event_type = 'Lock'",
            (application,),
        ).fetchall()
    return [float(row[0]) for row in rows]


def test_a_sync_waits_out_a_rebuild_longer_than_the_statement_timeout(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host B syncs while host A rebuilds the namespace for longer than the statement
    timeout (the rebuild of a large namespace takes minutes): B's writes wait for the
    rebuild's lock instead of being cancelled by the timeout, and both finish."""
    import indexer.store.postgres.connection

    monkeypatch.setattr(indexer.store.postgres.connection, "STATEMENT_TIMEOUT_MS", 400)
    files = initial_files(700, count=5)
    roots = [folder(tmp_path, f"host{i}", files) for i in range(2)]
    name = new_name("long-rebuild")
    for i, root in enumerate(roots):
        monkeypatch.setenv("MEMDEX_HOST", f"long-host-{i}")
        index(settings_for(root, pg_url, name))
    for root in roots:  # the same edits on both hosts
        (root / "note0.md").write_text("# Note 0\n\nrewritten while rebuilt.\n")
        os.utime(root / "note3.md")  # a new stamp, the same content
        age_files(root)
    errors: list[BaseException] = []

    def run(task: Callable[[], Any]) -> threading.Thread:
        def guarded() -> None:
            try:
                task()
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        return thread

    gated = GatedEmbedder()
    monkeypatch.setenv("MEMDEX_HOST", "long-host-0")
    with open_index(settings_for(roots[0], pg_url, name), write=True, embedder=gated) as host_a:
        rebuilding = run(host_a.rebuild)
        assert gated.waiting.wait(TIMEOUT), "the rebuild never embedded"
        monkeypatch.setenv("MEMDEX_HOST", "long-host-1")
        settings_b = settings_for(roots[1], pg_url, name)
        syncing = run(lambda: index(settings_b))
        wait_until(lambda: any(w > 1.0 for w in lock_waiters(pg_url)) or errors or not syncing.is_alive(),
                   message="host B to wait for the rebuild")  # fmt: skip
        assert errors == [] and syncing.is_alive(), f"host B did not wait for the rebuild: {errors}"
        gated.gate.set()
        rebuilding.join(TIMEOUT)
        syncing.join(TIMEOUT)
    assert errors == []
    assert problems(settings_b) == {}
    assert snap(settings_b) == fresh_snapshot(tmp_path, roots[1], pg_url)
