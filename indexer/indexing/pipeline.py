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
the sync ends early, the thread stops after the call it is in (a Ctrl-C in the
sync's thread does not wait for that call).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np


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

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self._embed = embed
        self._jobs: queue.SimpleQueue[tuple[Job, list[list[str]]] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        is free after. Without (Ctrl-C), the daemon thread ends on its own after that call."""
        if self._thread is None:
            return
        self._stop.set()
        self._jobs.put(None)
        if wait:
            self._thread.join()
        self._thread = None

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, calls = item
            for texts in calls:
                if self._stop.is_set():
                    return
                try:
                    vectors = self._embed(texts)
                except BaseException as exc:  # noqa: BLE001 - raised again in the sync's thread
                    job.deliver(_Failed(exc))
                    break
                job.deliver(vectors)
