"""The model on its own thread (indexing/pipeline.py): while it embeds one group, the
sync reads and chunks the next files and writes the group before. The index and the
report are the sequential path's; failures and interrupts stop it; both engines."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import EngineKind, RecordingEmbedder, age_files, write

import indexer.api
import indexer.indexing.writer
from indexer import make_settings, open_index
from indexer.indexing import pipeline
from indexer.config.settings import Settings

TIMEOUT = 20.0
GROUP = 4  # texts per embedding group (EMBED_GROUP) in these tests: several groups per sync


@pytest.fixture(autouse=True)
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexer.indexing.writer, "EMBED_GROUP", GROUP)


def notes(root: Path, count: int = 16) -> None:
    for n in range(count):
        write(root, f"notes/n{n:02d}.md", f"# Note {n}\n\nfact {n % 5} about the harbour, entry {n}\n")


def embed_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "memdex-embed"]


class Hooked(RecordingEmbedder):
    """Calls ``hook(call, texts)`` before each model call (numbered from 1) and notes its thread."""

    def __init__(self, hook: Callable[[int, Sequence[str]], None] = lambda call, texts: None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hook = hook
        self.calls = 0
        self.threads: set[str] = set()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        self.hook(self.calls, texts)
        return super().embed(texts)


def run_sync(settings: Settings, embedder: RecordingEmbedder) -> Any:
    with open_index(settings, write=True, embedder=embedder) as index:
        return index.sync()


def snap(settings: Settings, model_id: str) -> dict[str, Any]:
    with open_index(settings, embedder=RecordingEmbedder(model_id=model_id)) as index:
        return index.store.snapshot()


def test_the_model_embeds_while_the_next_files_are_chunked(engine_kind: EngineKind, root: Path) -> None:
    """The first group's model call waits for the chunking of a file of the second group:
    in sequence it would wait in vain (the next files are read after the group is written)."""
    notes(root, 12)
    write(root, "notes/n05.md", "# Note 5\n\nthe zebra crossing by the harbour\n")  # group 2
    seen = threading.Event()
    waited: list[bool] = []

    class WaitsForZebra(Hooked):
        def count_tokens(self, texts: Sequence[str]) -> list[int]:
            if any("zebra" in text for text in texts):
                seen.set()
            return super().count_tokens(texts)

    def first_call_waits(call: int, texts: Sequence[str]) -> None:
        if call == 1:
            waited.append(seen.wait(TIMEOUT))

    model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
    embedder = WaitsForZebra(first_call_waits, model_id=model_id)
    settings = engine_kind.settings(root, model=model_id)
    report = run_sync(settings, embedder)
    assert waited == [True], "the next files were not chunked while the model ran"
    assert report.reindexed == 12 and "memdex-embed" in embedder.threads
    assert embed_threads() == []  # the worker is gone once the sync returns


def test_the_overlapped_sync_writes_what_the_sequential_one_writes(
    engine_kind: EngineKind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two copies of one folder, indexed with and without the overlap, while (in both) a file
    is rewritten and another deleted during the first model call: the same index, the same
    report (counters and warnings, in the same order), then the same after an edit."""
    results = []
    for overlap in (True, False):
        monkeypatch.setattr(indexer.indexing.writer, "OVERLAP", overlap)
        root = tmp_path / f"root-{overlap}"
        notes(root, 20)
        write(root, "notes/long.md", "# Long\n\n" + " ".join(f"word{k}" for k in range(150)) + "\n")  # oversized
        write(root, "notes/same-a.md", "# Same\n\nidentical text in two files\n")
        write(root, "notes/same-b.md", "# Same\n\nidentical text in two files\n")
        write(root, "notes/binary.md", b"\x00\x01\x02 not text")
        write(root, "notes/empty.md", "")
        age_files(root)  # no file is within the racy-mtime window of either sync: same counters
        # The first group: empty, long, n00, n01 (four texts). Only its files change: a later
        # file is read before its deletion with the overlap, after it without (other counters).
        rewritten, deleted = root / "notes/n00.md", root / "notes/n01.md"

        def rewrite_and_delete(call: int, texts: Sequence[str], rewritten: Path = rewritten, deleted: Path = deleted) -> None:
            if call == 1:  # the first group is in the model: rewrite one of its files, delete one
                assert any("entry 1" in text for text in texts)
                rewritten.write_text("# Note 0\n\nrewritten while the model ran: a lighthouse\n")
                deleted.unlink()

        model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
        settings = engine_kind.settings(root, model=model_id)
        embedder = Hooked(rewrite_and_delete, model_id=model_id)
        first = run_sync(settings, embedder)
        assert ("memdex-embed" in embedder.threads) == overlap
        write(root, "notes/n07.md", "# Note 7\n\nedited: the ferry timetable\n")
        write(root, "notes/n30.md", "# Note 30\n\nnew: the ferry timetable\n")
        (root / "notes/n10.md").unlink()
        second = run_sync(settings, Hooked(model_id=model_id))
        results.append((first, second, snap(settings, model_id)))
    (first_on, second_on, index_on), (first_off, second_off, index_off) = results
    assert first_on.reread == 2 and first_on.reindexed == 25 - 2  # read again: both; written: neither binary nor n01
    assert any("lighthouse" in row[4] for row in index_on["chunks"])
    assert not any(row[0] == "notes/n01.md" for row in index_on["files"])
    for on, off in ((first_on, first_off), (second_on, second_off)):
        assert {**vars(on), "seconds": 0} == {**vars(off), "seconds": 0}
    assert index_on == index_off


def test_a_model_failure_on_the_worker_reaches_the_caller(engine_kind: EngineKind, root: Path) -> None:
    """The model fails in the second group (on the worker thread): the sync raises that
    error, the groups before it are written, the worker is gone, and the next sync completes."""
    notes(root, 16)

    def fail_on_third_call(call: int, texts: Sequence[str]) -> None:
        if call == 3:
            raise RuntimeError("the model crashed")

    model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
    settings = engine_kind.settings(root, model=model_id, embed_batch_size=1)  # calls of 4 texts: one a group
    failing = Hooked(fail_on_third_call, model_id=model_id)
    with pytest.raises(RuntimeError, match="the model crashed"):
        run_sync(settings, failing)
    assert failing.calls == 3 and "memdex-embed" in failing.threads
    assert embed_threads() == []
    assert len(snap(settings, model_id)["files"]) == 2 * GROUP  # the first two groups
    embedder = Hooked(model_id=model_id)
    report = run_sync(settings, embedder)
    assert report.reindexed == report.chunks_embedded == 16 - 2 * GROUP and report.unchanged_hash == 2 * GROUP
    fresh = engine_kind.fresh(settings)
    run_sync(fresh, Hooked(model_id=model_id))
    assert snap(settings, model_id) == snap(fresh, model_id)


def test_a_model_failure_during_a_bulk_load_keeps_the_files_written(
    engine_kind: EngineKind, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same failure inside a PostgreSQL bulk load (its files commit in batches): the files
    of the groups before are kept, as on the other paths (review: the open batch was rolled
    back, because the error came from collecting the worker's results between files)."""
    if engine_kind.name != "postgresql":
        pytest.skip("a bulk load is PostgreSQL's")
    import indexer.store.postgres.bulk as bulk

    monkeypatch.setattr(bulk, "BULK_MIN_FILES", 5)
    loads: list[bool] = []
    begin = bulk._begin
    monkeypatch.setattr(bulk, "_begin", lambda conn, table: loads.append(begin(conn, table)) or loads[-1])
    test_a_model_failure_on_the_worker_reaches_the_caller(engine_kind, root)
    assert loads and loads[0], "the first sync was not a bulk load"


def test_an_interrupt_stops_the_model_after_its_current_call(
    engine_kind: EngineKind, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C arrives while the next files are read and the model embeds on its thread:
    KeyboardInterrupt reaches the caller, and the model stops after the call it is in
    (the group has more calls) instead of embedding the rest of the group."""
    monkeypatch.setattr(indexer.indexing.writer, "EMBED_GROUP", 2 * GROUP)  # two calls of 4 texts a group
    notes(root, 16)
    write(root, "notes/n09.md", "# Note 9\n\nthe interrupt arrives here\n")  # group 2
    in_call, interrupted = threading.Event(), threading.Event()

    class Interrupting(Hooked):
        def count_tokens(self, texts: Sequence[str]) -> list[int]:
            if any("interrupt arrives" in text for text in texts):
                in_call.wait(TIMEOUT)  # the model is in its first call
                interrupted.set()
                raise KeyboardInterrupt
            return super().count_tokens(texts)

    def first_call_runs_until_the_interrupt(call: int, texts: Sequence[str]) -> None:
        if call == 1:
            in_call.set()
            interrupted.wait(TIMEOUT)

    model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
    settings = engine_kind.settings(root, model=model_id, embed_batch_size=1)  # calls of 4 texts
    embedder = Interrupting(first_call_runs_until_the_interrupt, model_id=model_id)
    with pytest.raises(KeyboardInterrupt):
        run_sync(settings, embedder)
    assert threads_end(), "the model's thread did not stop"
    assert embedder.calls == 1, "the model went on embedding after the interrupt"


def threads_end() -> bool:
    """Whether every model thread ends within TIMEOUT (a Ctrl-C does not wait for them)."""
    for thread in embed_threads():
        thread.join(TIMEOUT)
    return embed_threads() == []


def test_an_interrupt_does_not_wait_for_the_models_current_call(
    engine_kind: EngineKind, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote model's call can take minutes (4 requests, each retried after a 30 s timeout):
    Ctrl-C must reach the caller while that call still runs (review: the sync waited for it)."""
    monkeypatch.setattr(indexer.indexing.writer, "EMBED_GROUP", 2 * GROUP)
    notes(root, 16)
    write(root, "notes/n09.md", "# Note 9\n\nthe interrupt arrives here\n")
    in_call, released, call_done = threading.Event(), threading.Event(), threading.Event()

    class Interrupting(Hooked):
        def count_tokens(self, texts: Sequence[str]) -> list[int]:
            if any("interrupt arrives" in text for text in texts):
                in_call.wait(TIMEOUT)
                raise KeyboardInterrupt
            return super().count_tokens(texts)

    def first_call_runs_until_released(call: int, texts: Sequence[str]) -> None:
        if call == 1:
            in_call.set()
            released.wait(TIMEOUT)
            call_done.set()

    model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
    settings = engine_kind.settings(root, model=model_id, embed_batch_size=1)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sync(settings, Interrupting(first_call_runs_until_released, model_id=model_id))
        assert not call_done.is_set(), "the interrupt waited for the model's call to end"
    finally:
        released.set()
    assert threads_end()


def test_the_model_starts_after_one_call_of_texts(engine_kind: EngineKind, root: Path, monkeypatch) -> None:
    """The first group is one model call, not a whole group (EMBED_GROUP, 512 texts): the model
    is at work before the last of 20 small files is read."""
    monkeypatch.setattr(indexer.indexing.writer, "EMBED_GROUP", 512)
    notes(root, 20)
    started = threading.Event()
    before_the_last: list[bool] = []

    class WatchesTheLastFile(Hooked):
        def count_tokens(self, texts: Sequence[str]) -> list[int]:
            if any("entry 19" in text for text in texts) and not before_the_last:
                before_the_last.append(started.wait(TIMEOUT))
            return super().count_tokens(texts)

    model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
    settings = engine_kind.settings(root, model=model_id, embed_batch_size=1)  # calls of 4 texts
    embedder = WatchesTheLastFile(lambda call, texts: started.set(), model_id=model_id)
    report = run_sync(settings, embedder)
    assert before_the_last == [True], "the model waited for a whole group of files"
    assert report.reindexed == report.chunks_embedded == 20


def test_a_database_error_does_not_wait_for_the_models_current_call(
    engine_kind: EngineKind, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write fails while the model is in a call (a remote model's can take minutes): the
    error reaches the caller at once, not after that call (review: only Ctrl-C did)."""
    notes(root, 16)
    in_call, released, call_done = threading.Event(), threading.Event(), threading.Event()

    def second_call_runs_until_released(call: int, texts: Sequence[str]) -> None:
        if call == 2:
            in_call.set()
            released.wait(TIMEOUT)
            call_done.set()

    def failing_write(*args: Any, **kwargs: Any) -> None:
        in_call.wait(TIMEOUT)  # the first group is written while the model embeds the second
        raise RuntimeError("the disk is full")

    model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
    settings = engine_kind.settings(root, model=model_id, embed_batch_size=1)  # calls of 4 texts: one a group
    try:
        embedder = Hooked(second_call_runs_until_released, model_id=model_id)
        with open_index(settings, write=True, embedder=embedder) as index:
            monkeypatch.setattr(index.store, "replace_file", failing_write)
            with pytest.raises(RuntimeError, match="the disk is full"):
                index.sync()
        assert in_call.is_set() and not call_done.is_set(), "the error waited for the model's call to end"
    finally:
        released.set()
    assert threads_end()


class WatchedLock:
    """Stands in for the model's lock (``pipeline.model_lock``) and notes a caller that must wait."""

    def __init__(self, contended: threading.Event) -> None:
        self.lock = threading.Lock()
        self.contended = contended

    def __enter__(self) -> None:
        if not self.lock.acquire(blocking=False):
            self.contended.set()
            self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


class Overlaps:
    """Model calls running at once: ``seen`` records each overlap, and ``decided`` is set at the first."""

    def __init__(self, decided: threading.Event) -> None:
        self.guard, self.active, self.seen, self.decided = threading.Lock(), 0, [], decided

    @contextmanager
    def call(self) -> Iterator[None]:
        with self.guard:
            self.active += 1
            if self.active > 1:
                self.seen.append(True)
                self.decided.set()
        try:
            yield
        finally:
            with self.guard:
                self.active -= 1


def test_a_sync_right_after_an_interrupted_one_waits_for_the_models_leftover_call(
    engine_kind: EngineKind, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library caller catches Ctrl-C and syncs again at once, while the model's thread of the
    stopped sync is still in its call: the new sync's model calls wait for that call instead of
    running beside it on the same model (review: two threads on one model)."""
    monkeypatch.setattr(indexer.indexing.writer, "EMBED_GROUP", 2 * GROUP)
    notes(root, 16)
    write(root, "notes/n09.md", "# Note 9\n\nthe interrupt arrives here\n")
    in_call, released, decided = threading.Event(), threading.Event(), threading.Event()
    overlaps = Overlaps(decided)

    class Interrupting(Hooked):
        interrupted = False

        def count_tokens(self, texts: Sequence[str]) -> list[int]:
            if not self.interrupted and any("interrupt arrives" in text for text in texts):
                in_call.wait(TIMEOUT)
                self.interrupted = True
                raise KeyboardInterrupt
            return super().count_tokens(texts)

        def embed(self, texts: Sequence[str]) -> np.ndarray:
            with overlaps.call():
                return super().embed(texts)

    def first_call_runs_until_released(call: int, texts: Sequence[str]) -> None:
        if call == 1:
            in_call.set()
            released.wait(TIMEOUT)

    model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
    settings = engine_kind.settings(root, model=model_id, embed_batch_size=1)
    embedder = Interrupting(first_call_runs_until_released, model_id=model_id)
    monkeypatch.setitem(pipeline._MODEL_LOCKS, pipeline.model_key(embedder), WatchedLock(decided))
    results: list[Any] = []
    again = threading.Thread(target=lambda: results.append(run_sync(settings, embedder)))
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sync(settings, embedder)
        again.start()
        assert decided.wait(TIMEOUT), "the second sync never reached the model"
        assert not overlaps.seen, "the second sync ran the model beside the stopped sync's call"
    finally:
        released.set()
    again.join(TIMEOUT)
    assert results and results[0].reindexed == 16 and not overlaps.seen
    assert threads_end()


def test_two_indexes_opened_without_an_embedder_share_the_models_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``open_index`` without an embedder builds one per index: two indexes of one model in a
    process sync one after the other on the model, not beside each other (review: the lock was
    per embedder object). Another model has its own lock."""
    model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
    in_call, decided = threading.Event(), threading.Event()
    overlaps = Overlaps(decided)

    class Counting(Hooked):
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            with overlaps.call():
                return super().embed(texts)

    def first_call_waits_for_the_other_sync(call: int, texts: Sequence[str]) -> None:
        if call == 1 and not in_call.is_set():
            in_call.set()
            decided.wait(TIMEOUT)  # until the other sync waits for the lock (or runs beside this call)

    made: list[Counting] = []

    def make_embedder(settings: Settings) -> Counting:
        made.append(Counting(first_call_waits_for_the_other_sync, model_id=settings.model))
        return made[-1]

    monkeypatch.setattr(indexer.api, "make_embedder", make_embedder)
    monkeypatch.setitem(pipeline._MODEL_LOCKS, (model_id, RecordingEmbedder().dimensions), WatchedLock(decided))
    roots = [tmp_path / "one", tmp_path / "two"]
    for root in roots:
        notes(root, 8)
    reports: list[Any] = []

    def sync(root: Path) -> None:
        with open_index(make_settings(root, model=model_id), write=True) as index:
            reports.append(index.sync())

    first = threading.Thread(target=sync, args=(roots[0],))
    first.start()
    try:
        assert in_call.wait(TIMEOUT)
        sync(roots[1])
    finally:
        decided.set()
        first.join(TIMEOUT)
    assert len(made) == 2 and made[0] is not made[1]
    assert not overlaps.seen, "the second index ran the model beside the first's call"
    assert [report.reindexed for report in reports] == [8, 8]
    assert pipeline.model_lock(made[0]) is pipeline.model_lock(made[1])
    assert pipeline.model_lock(RecordingEmbedder(model_id=model_id + "-other")) is not pipeline.model_lock(made[0])
    assert threads_end()


def test_an_interrupt_keeps_the_vectors_the_model_returned(
    engine_kind: EngineKind, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after a model call came back but before the sync took its vectors: they are
    cached, so the next sync does not embed them again (review: they were dropped)."""
    monkeypatch.setattr(indexer.indexing.writer, "EMBED_GROUP", 2 * GROUP)  # group 2: calls 2 and 3
    notes(root, 16)
    write(root, "notes/n12.md", "# Note 12\n\nthe interrupt arrives here\n")  # read first after group 2 is sent
    third_call, released = threading.Event(), threading.Event()
    returned: list[str] = []

    class Interrupting(Hooked):
        def count_tokens(self, texts: Sequence[str]) -> list[int]:
            if any("interrupt arrives" in text for text in texts):
                third_call.wait(TIMEOUT)  # call 2 is back (not taken yet); the model is in call 3
                raise KeyboardInterrupt
            return super().count_tokens(texts)

    def hook(call: int, texts: Sequence[str]) -> None:
        if call == 2:
            returned.extend(texts)
        if call == 3:
            third_call.set()
            released.wait(TIMEOUT)

    model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
    settings = engine_kind.settings(root, model=model_id, embed_batch_size=1)  # calls of 4 texts
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sync(settings, Interrupting(hook, model_id=model_id))
        assert third_call.is_set() and len(returned) == GROUP
    finally:
        released.set()
    assert threads_end()
    embedder = Hooked(model_id=model_id)
    report = run_sync(settings, embedder)
    assert report.reindexed == 16 - GROUP  # the first group was written before the interrupt
    assert not set(returned) & set(embedder.embedded), "the returned call was embedded again"
    assert report.chunks_embedded == 16 - 2 * GROUP


def test_the_process_waits_for_a_call_left_running_before_it_exits(root: Path, tmp_path: Path) -> None:
    """A database error while the model is in a call: the error shows at once, and the process
    waits for that call on its way out (review: a daemon thread inside ONNX Runtime at interpreter
    shutdown aborted the process with SIGABRT after the error line)."""
    notes(root, 16)
    ended = tmp_path / "the call ended"
    script = tmp_path / "fail_mid_call.py"
    script.write_text(textwrap.dedent(f"""
        import sys, threading, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from conftest import RecordingEmbedder
        import indexer.indexing.writer
        from indexer import make_settings, open_index
        indexer.indexing.writer.EMBED_GROUP = 4
        in_call = threading.Event()

        class Slow(RecordingEmbedder):
            calls = 0
            def embed(self, texts):
                self.calls += 1
                if self.calls == 2:
                    in_call.set()
                    time.sleep(2)  # a slow model call, outlived by the sync's error
                    Path({str(ended)!r}).write_text("yes")
                return super().embed(texts)

        def failing_write(*args, **kwargs):
            in_call.wait(20)
            raise RuntimeError("the disk is full")

        settings = make_settings(Path({str(root)!r}), model="test/exit-wait", embed_batch_size=1)
        with open_index(settings, write=True, embedder=Slow(model_id="test/exit-wait")) as index:
            index.store.replace_file = failing_write
            try:
                index.sync()
            except RuntimeError as exc:
                print("error:", exc, "call ended:", Path({str(ended)!r}).exists(), flush=True)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "error: the disk is full call ended: False" in done.stdout  # shown before the call ended
    assert ended.exists(), "the process exited while the model's call was still running"
    assert "memdex: waiting for the model's current call to end (Ctrl-C again to leave now)" in done.stderr


def test_a_second_interrupt_while_caching_still_stops_the_model_thread(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C, then Ctrl-C again while the vectors already returned are cached: the model's
    thread is still told to stop (review: it ran the rest of its job, then waited forever)."""
    monkeypatch.setattr(indexer.indexing.writer, "EMBED_GROUP", 2 * GROUP)
    notes(root, 16)
    write(root, "notes/n12.md", "# Note 12\n\nthe interrupt arrives here\n")
    third_call, released = threading.Event(), threading.Event()

    class Interrupting(Hooked):
        def count_tokens(self, texts: Sequence[str]) -> list[int]:
            if any("interrupt arrives" in text for text in texts):
                third_call.wait(TIMEOUT)
                raise KeyboardInterrupt
            return super().count_tokens(texts)

    def hook(call: int, texts: Sequence[str]) -> None:
        if call == 3:
            third_call.set()
            released.wait(TIMEOUT)

    def interrupted_again(self: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(indexer.indexing.writer.Writer, "keep_returned", interrupted_again)
    model_id = f"test/pipe-{uuid.uuid4().hex[:10]}"
    settings = make_settings(root, model=model_id, embed_batch_size=1)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sync(settings, Interrupting(hook, model_id=model_id))
    finally:
        released.set()
    assert threads_end(), "the model thread was never told to stop"
