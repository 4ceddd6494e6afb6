"""The model on a thread of its own, so reading and writing overlap with embedding.

While the model embeds one group of chunk texts (``writer.Writer``), the sync's
thread reads, parses and chunks the next files, looks their texts up in the
embedding cache, and writes the files of the group before. ONNX Runtime and
torch release the GIL while they compute, so that work runs beside the model.

Only the model runs here: every store and cache call stays on the sync's
thread, in the order it always had (same transactions, same writer lock). A
group is embedded in calls of a few model batches; each call's vectors are
handed back as it returns, and the sync's thread writes them to the cache.
At most one group is queued at a time, so memory stays bounded. A failure
(or KeyboardInterrupt) inside the model is raised in the sync's thread; when
the sync ends early, the thread stops after the call it is in (a sync that fails
or is stopped does not wait for that call: a remote model's call can take minutes).
Every sync's model calls hold the model's lock (``model_lock``, one per model id and dimensions,
whichever embedder object runs it), so a sync started at once after a stopped one waits for the
call left running instead of running beside it.
"""

from __future__ import annotations

import atexit
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np

# One lock per model: keyed by what the embedding cache keys on (model id, dimensions), so two
# embedder objects of one model (two ``open_index`` calls without an embedder) share it.
_MODEL_LOCKS: dict[tuple[str, int], threading.Lock] = {}
_ANY_MODEL = threading.Lock()  # for a model object that does not name itself
_LOCKS = threading.Lock()
# Workers a failed or stopped sync did not wait for, still in a model call. The process waits
# for them on its way out: a daemon thread inside ONNX Runtime while the interpreter shuts down
# aborts the process (SIGABRT) after the error was already shown (review).
_LEFT_RUNNING: set[threading.Thread] = set()


@atexit.register
def _wait_for_left_running() -> None:
    running = [thread for thread in _LEFT_RUNNING if thread.is_alive()]
    if not running:
        return
    # A remote model's call can take minutes: say why the process has not ended yet.
    sys.stderr.write("memdex: waiting for the model's current call to end (Ctrl-C again to leave now)\n")
    sys.stderr.flush()
    try:
        for thread in running:
            thread.join()  # stopped: it ends after the call it is in
    except KeyboardInterrupt:  # asked twice: leave now
        pass


def model_lock(model: object) -> threading.Lock:
    """The lock a sync holds around each call of ``model``: one per model (``model_key``),
    whichever object embeds with it."""
    key = model_key(model)
    if key is None:
        return _ANY_MODEL
    with _LOCKS:
        return _MODEL_LOCKS.setdefault(key, threading.Lock())


def model_key(model: object) -> tuple[str, int] | None:
    """The model's identity, as the embedding cache keys its vectors: (model id, dimensions)."""
    model_id, dimensions = getattr(model, "model_id", None), getattr(model, "dimensions", None)
    if not isinstance(model_id, str) or not isinstance(dimensions, int):
        return None
    return model_id, dimensions


class _Failed:
    """What the model raised, carried to the sync's thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Job:
    """One group's model calls: their vectors come back in call order."""

    def __init__(self, calls: list[list[str]]) -> None:
        self.calls = calls
        self.received = 0
        self._results: queue.SimpleQueue[np.ndarray | _Failed] = queue.SimpleQueue()

    def deliver(self, result: np.ndarray | _Failed) -> None:
        self._results.put(result)

    @property
    def done(self) -> bool:
        return self.received == len(self.calls)

    def returned(self, *, wait: bool) -> Iterator[tuple[list[str], np.ndarray]]:
        """(the call's text keys, its vectors) for each call back so far; with ``wait``,
        until every call is back. Raises what the model raised."""
        while not self.done:
            try:
                result = self._results.get(block=wait)
            except queue.Empty:
                return
            if isinstance(result, _Failed):
                self.received = len(self.calls)  # nothing more comes
                raise result.error
            keys = self.calls[self.received]
            self.received += 1
            yield keys, result


class EmbedWorker:
    """A daemon thread that runs the model's calls of one job after another."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], lock: threading.Lock) -> None:
        self._embed = embed
        self._lock = lock  # the model's (``model_lock``): held for each call
        self._jobs: queue.SimpleQueue[tuple[Job, list[list[str]]] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False  # in a model call, or waiting for the model's lock

    def submit(self, keys: list[list[str]], texts: list[list[str]]) -> Job:
        """Embed each list of ``texts`` in one model call; ``keys`` name them for ``Job.returned``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="memdex-embed", daemon=True)
            self._thread.start()
        job = Job(keys)
        self._jobs.put((job, texts))
        return job

    def close(self, *, wait: bool = True) -> None:
        """Stop after the current call (if any); with ``wait``, wait for the thread: the model
        is free after. Without (an error, Ctrl-C), a thread in a call ends on its own after it;
        an idle one is waited for (it ends at once)."""
        if self._thread is None:
            return
        self._stop.set()
        self._jobs.put(None)
        if wait or not self._busy:  # not busy now: it sees the stop before any call
            self._thread.join()
        else:
            _LEFT_RUNNING.add(self._thread)
            if not self._thread.is_alive():  # it ended meanwhile, maybe before it was listed
                _LEFT_RUNNING.discard(self._thread)
        self._thread = None

    def _run(self) -> None:
        try:
            self._run_jobs()
        finally:
            _LEFT_RUNNING.discard(threading.current_thread())

    def _run_jobs(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, calls = item
            for texts in calls:
                self._busy = True  # before the stop is read: ``close`` sees one or the other
                try:
                    if self._stop.is_set():
                        return
                    with self._lock:
                        if self._stop.is_set():  # stopped while another sync's call held the model
                            return
                        vectors = self._embed(texts)
                except BaseException as exc:  # noqa: BLE001 - raised again in the sync's thread
                    job.deliver(_Failed(exc))
                    break
                finally:
                    self._busy = False
                job.deliver(vectors)
