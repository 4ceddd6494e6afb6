"""One warm process serving an index: a shared model, a reader, optionally the writer.

Used by the MCP server (``mcp.py``). The model is loaded once and shared by
the reader and the watcher; each has its own SQLite connection, opened in the
thread that uses it (the watcher's in its background thread, the reader's
behind a lock for the request threads). WAL means the reader never waits for
the writer. If another process holds the writer lock, the process serves reads
and takes over as the writer once that process lets go.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from indexer.api import MemoryIndex, make_embedder, open_index
from indexer.config.settings import Settings
from indexer.embedding.protocol import Embedder
from indexer.errors import IndexerError, LockedError, NewerIndex, one_line
from indexer.indexing.tail import index_bound
from indexer.watch.watcher import Watcher, WatchOptions

log = logging.getLogger(__name__)

LOCK_RETRY_SECONDS = 2.0  # how often a read-only server tries to become the writer
FAILURE_RETRY_SECONDS = 10.0  # after the watcher stopped on an error


class SharedEmbedder:
    """One model for every thread: loaded on first use, called one batch at a time.

    Tokenizers and the model are not safe to call from two threads at once, so
    calls are serialised per batch: a query waits for at most one batch of the
    watcher's work, never for a whole file group.
    """

    def __init__(self, load: Callable[[], Embedder], *, batch_size: int = 32) -> None:
        self._load = load
        self._model: Embedder | None = None
        self._loading = threading.Lock()
        self._calling = threading.Lock()
        self.batch_size = batch_size

    @property
    def model(self) -> Embedder:
        if self._model is None:
            with self._loading:
                if self._model is None:
                    self._model = self._load()
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def prepared(self) -> bool:
        """Whether the model needs no one-time preparation before it can embed a query."""
        return bool(getattr(self.model, "prepared", True))

    def prepare(self) -> None:
        """Make the model's one-time ONNX export, if it needs one (``LazyEmbedder.prepare``)."""
        model = self.model
        prepare = getattr(model, "prepare", None)
        if prepare is not None:
            with self._calling:
                prepare()

    @property
    def model_id(self) -> str:
        return self.model.model_id

    @property
    def dimensions(self) -> int:
        return self.model.dimensions

    @property
    def max_tokens(self) -> int:
        return self.model.max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        model = self.model
        with self._calling:
            return model.count_tokens(texts)

    @property
    def remote(self) -> bool:
        """Whether queries go to a remote model (its ``embed_query``): a search then embeds
        first, so that a model that is down turns it into a keyword search (api.py)."""
        return getattr(self.model, "embed_query", None) is not None

    def embed_query(self, text: str) -> np.ndarray:
        """The model's ``embed_query`` when it has one (a remote model: a search's short wait,
        not behind the watcher's batch either: an HTTP call shares no tokenizer or session)."""
        model = self.model
        embed_query = getattr(model, "embed_query", None)
        if embed_query is not None:
            return embed_query(text)
        with self._calling:
            return model.embed([text])[0]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self.model
        parts = []
        for start in range(0, len(texts), self.batch_size):
            with self._calling:
                parts.append(model.embed(texts[start : start + self.batch_size]))
        return np.concatenate(parts) if parts else model.embed([])


class IndexService:
    """The reader every request uses, and (with ``watch``) the watcher thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        watch: bool = False,
        watch_options: WatchOptions = WatchOptions(),
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self.watch = watch
        self.watch_options = watch_options
        self.embedder = SharedEmbedder(
            (lambda: embedder) if embedder is not None  # type: ignore[arg-type,return-value]
            else lambda: make_embedder(settings),
            batch_size=settings.embed_batch_size,
        )  # fmt: skip
        self._reader: MemoryIndex | None = None
        self._reader_stack = ExitStack()
        self._reader_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.watcher: Watcher | None = None
        self.writer_state = "off" if not watch else "starting"
        self.writer_note: str | None = None
        self._started = False
        self._warming = False
        self._warm = threading.Event()  # set once the warm-up has finished (or failed)

    # -- life cycle -------------------------------------------------------------
    def start(self, *, warm_up: bool = True) -> None:
        """Start the watcher thread (with ``watch``) and load the model in the background (once)."""
        if self._started:
            return
        self._started = True
        if self.watch:
            self._thread = threading.Thread(target=self._write_loop, name="memdex-watcher", daemon=True)
            self._thread.start()
        if warm_up:
            self._warming = True
            threading.Thread(target=self._warm_up, name="memdex-model", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        watcher = self.watcher
        if watcher is not None:
            watcher.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._reader_lock:
            self._close_reader()

    # -- reads --------------------------------------------------------------------
    @contextmanager
    def reader(self) -> Iterator[MemoryIndex]:
        """The reader index, (re)opened when missing or replaced on disk; one request at a time."""
        with self._reader_lock:
            if self._reader is not None and self._reader.replaced_on_disk():
                self._close_reader()
            if self._reader is None:
                stack = ExitStack()
                self._reader = stack.enter_context(open_index(self.settings, embedder=self.embedder))  # type: ignore[arg-type]
                self._reader_stack = stack
            try:
                yield self._reader
            except BaseException:
                if self._reader is not None and self._reader.replaced_on_disk():
                    self._close_reader()
                raise

    def session_bound(self) -> int:
        """The bound the index's transcripts were indexed within (``memory_get`` serves the lines
        search cites: another writer's bound may be larger); this host's while there is no index."""
        try:
            with self.reader() as index:
                return index_bound(self.settings, index.store.meta())
        except IndexerError:
            return self.settings.session_max_file_bytes

    def server_state(self) -> dict[str, Any]:
        """What ``memory_status`` adds about this process."""
        watcher = self.watcher
        return {
            "watch": self.watch,
            "writer": self.writer_state,  # off | starting | syncing | watching | read-only | stopped
            "read_only": self.writer_state in ("off", "read-only", "stopped"),
            "note": self.writer_note,
            "model_loaded": self.embedder.loaded,
            "model_preparing": self.preparing,
            "watcher_syncs": watcher.syncs if watcher is not None else None,
        }

    def _close_reader(self) -> None:
        self._reader = None
        stack, self._reader_stack = self._reader_stack, ExitStack()
        stack.close()

    @property
    def preparing(self) -> bool:
        """The model's one-time preparation (the ONNX export, on a fresh cache) is under way in
        the background: searches answer keyword-only meanwhile instead of waiting for it."""
        return self._warming and not self._warm.is_set() and not self.embedder.prepared

    def wait_until_prepared(self, timeout: float | None = None) -> bool:
        return self._warm.wait(timeout) if self._warming else True

    def _warm_up(self) -> None:
        try:
            self.embedder.prepare()
            self.embedder.embed(["memdex warm-up"])
        except Exception as exc:  # noqa: BLE001 - the first search reports it as a tool error
            log.warning("embedding model not ready: %s", one_line(str(exc)) or type(exc).__name__)
        finally:
            self._warm.set()

    # -- the writer -----------------------------------------------------------------
    def _write_loop(self) -> None:
        """Become the index's writer and watch; while another process writes, serve reads only."""
        said_locked = False
        while not self._stop.is_set():
            try:
                with open_index(self.settings, write=True, embedder=self.embedder) as memory:  # type: ignore[arg-type]
                    said_locked = False
                    self.writer_state, self.writer_note = "syncing", None
                    watcher = Watcher(memory, self.watch_options)
                    self.watcher = watcher
                    threading.Thread(target=self._mark_ready, args=(watcher,), daemon=True).start()
                    if self._stop.is_set():
                        return
                    watcher.run()
                self.writer_state = "stopped"
                return
            except LockedError as exc:
                self.writer_state = "read-only"
                self.writer_note = f"serving reads only: {one_line(str(exc))}; taking over when it stops"
                if not said_locked:
                    log.warning("%s", self.writer_note)
                    said_locked = True
                self._stop.wait(LOCK_RETRY_SECONDS)
            except NewerIndex as exc:  # left to the newer memdex: retrying cannot help
                self.writer_state, self.writer_note = "stopped", f"the watcher stopped: {one_line(str(exc))}"
                log.error("%s", self.writer_note)
                return
            except Exception as exc:  # noqa: BLE001 - keep serving reads; try again later
                self.writer_state = "read-only"
                self.writer_note = f"the watcher stopped: {one_line(str(exc)) or type(exc).__name__}; retrying"
                log.warning("%s", self.writer_note)
                log.debug("watcher failure", exc_info=True)
                self._stop.wait(FAILURE_RETRY_SECONDS)
            finally:
                self.watcher = None

    def _mark_ready(self, watcher: Watcher) -> None:
        while not self._stop.is_set() and not watcher.ready.wait(0.5):
            if self.watcher is not watcher:
                return
        if self.watcher is watcher and watcher.ready.is_set():
            self.writer_state = "watching"
