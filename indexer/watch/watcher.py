"""Keep the index current in the background: file events -> debounced, targeted syncs.

Events are only hints about *which* paths to look at; the sync decides from the
file system (stat, then hash) what changed. Each path waits for a short quiet
period (``debounce``) but never longer than ``max_wait`` after its first event,
so a file written continuously is still indexed every couple of seconds. A
periodic full sync (``reconcile``) catches events the OS dropped.

The memory root is watched by path, not by folder (``root.py``): when
the root is renamed away or deleted and recreated, the observer is restarted
on the path and a full sync runs there. While no folder is at the path nothing
is synced and the index is left as it is. When the index lives inside the root
it moved away with it: ``RootReplaced`` tells the caller (``memdex watch``) to
start over.

The watcher is the index's single writer: it runs inside ``open_index(...,
write=True)``, which holds the lock for its whole life. It records its state in
``watcher.json`` beside the index so ``memdex status`` can show it.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from indexer.config.encryption import key_configured
from indexer.errors import IndexReplaced, RootReplaced, one_line

from .events import (
    WATCHED_EVENTS,
    EventHandler,
    PendingPaths,
    SymlinkMap,
    quiet_watchdog_bookkeeping,
)
from .root import RootState, RootTracker
from .signals import Stopping
from .state import StatusFile

if TYPE_CHECKING:
    from indexer.api import MemoryIndex

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.2
MAX_WAIT_SECONDS = 2.0
RECONCILE_SECONDS = 300.0
RETRY_SECONDS = 30.0
# How often the loop looks at the root's identity at the latest (and polls for a vanished root).
ROOT_CHECK_SECONDS = 1.0

ObserverFactory = Callable[[], BaseObserver]


@dataclass(frozen=True)
class WatchOptions:
    debounce: float = DEBOUNCE_SECONDS
    max_wait: float = MAX_WAIT_SECONDS
    reconcile: float = RECONCILE_SECONDS
    polling: bool = False


class Watcher:
    """Runs the initial sync, the observer and the debounced sync loop."""

    def __init__(
        self,
        index: MemoryIndex,
        options: WatchOptions = WatchOptions(),
        *,
        observer_factory: ObserverFactory | None = None,
        stopping: Stopping | None = None,
    ) -> None:
        if not index.writable:
            raise ValueError("the watcher needs an index opened with write=True")
        self.index = index
        self.settings = index.settings
        self.options = options
        self.pending = PendingPaths(debounce=options.debounce, max_wait=options.max_wait)
        self.stop_requested = threading.Event()
        self._signals = stopping or Stopping()  # a stop signal whose KeyboardInterrupt a library swallowed
        self.ready = threading.Event()  # set once the initial sync is done and events flow
        self.observer_kind = "polling" if options.polling else "native"
        self._observer_factory = observer_factory
        self._status = StatusFile(self.settings.status_path)
        self._links = SymlinkMap()
        self._failures: dict[str, int] = {}  # path -> failed syncs in a row
        self._started_at = time.time()
        self._last_sync: float | None = None
        self.syncs = 0  # completed targeted or full syncs, for callers that wait on progress
        self._root = RootTracker(self.settings.root)
        self._last_full_sync_worked = True
        self._observer: BaseObserver | None = None
        self._handler: EventHandler | None = None
        self._session_watched: set[Path] = set()  # session folders the observer follows

    def run(self) -> None:
        """Watch until ``stop()`` (or KeyboardInterrupt, e.g. from a signal)."""
        self._observer = self._start_observer()
        try:
            self._write_status()
            synced = self._sync(None)  # catch up with edits made while no watcher ran
            self._warm_up()
            self.ready.set()
            next_reconcile = time.monotonic() + self._reconcile_delay(synced)
            while not self._stopping():
                if self._root.gone:  # nothing to sync until the root is back: poll for it
                    self.stop_requested.wait(ROOT_CHECK_SECONDS)
                else:
                    self.pending.wait(max(0.0, min(ROOT_CHECK_SECONDS, next_reconcile - time.monotonic())))
                if self._stopping():
                    break
                root = self._check_root()
                if root is RootState.GONE:
                    continue
                if root is RootState.CHANGED:
                    next_reconcile = time.monotonic() + self._reconcile_delay(self._last_full_sync_worked)
                    continue
                if self.index.replaced_on_disk():
                    raise IndexReplaced(
                        f"the index {self.settings.index_path} was deleted or replaced while the watcher "
                        "was writing it; stopping (start the watcher again to rebuild it)"
                    )
                if time.monotonic() >= next_reconcile:
                    synced = self._sync(None)
                    next_reconcile = time.monotonic() + self._reconcile_delay(synced)
                    continue
                self._watch_new_session_folders()
                due = self.pending.take_due()
                if due:
                    self._sync(due)
        finally:
            self._stop_observer()
            self._status.remove()

    def stop(self) -> None:
        self.stop_requested.set()
        self.pending.wake()

    def _stopping(self) -> bool:
        if self._signals.requested and not self.stop_requested.is_set():
            log.info("stopping: a stop signal arrived while a library was busy")
            self.stop_requested.set()
        return self.stop_requested.is_set()

    def _check_root(self) -> RootState:
        """GONE, SAME, or CHANGED: then the observer was restarted and a full sync done."""
        self._forget_gone_session_folders()
        state = self._root.check(events_flowing=self._observer_alive())
        if state is not RootState.CHANGED:
            return state
        if self.index.replaced_on_disk() and self.settings.index_dir.resolve().is_relative_to(self.settings.root):
            raise RootReplaced(
                f"the memory root {self.settings.root} was moved or replaced, and the index inside it "
                "with it; the watcher starts over on the folder now at that path"
            )
        self._stop_observer()
        try:
            self._observer = self._start_observer()
        except OSError as exc:  # gone again already
            log.warning("cannot watch the memory root %s (%s); waiting for it", self.settings.root, exc.strerror or exc)
            self._root.gone = True
            return RootState.GONE
        self._last_full_sync_worked = self._sync(None)
        return state

    def _forget_gone_session_folders(self) -> None:
        """A session folder deleted while watched ends its emitter. That is not the root going
        quiet (no observer restart, no full sync): its watch is dropped, its transcripts are
        synced away, and ``_watch_new_session_folders`` follows it again if it comes back."""
        observer = self._observer
        if observer is None:
            return
        labels = {folder: label for label, folder in self.settings.session_labels.items()}
        for emitter in list(observer.emitters):
            folder = Path(emitter.watch.path)
            if emitter.is_alive() or folder not in self._session_watched:
                continue
            try:
                observer.unschedule(emitter.watch)
            except (KeyError, OSError):  # already gone from the observer's books
                pass
            self._session_watched.discard(folder)
            self.pending.add(f"sessions/{labels[folder]}")

    def _observer_alive(self) -> bool:
        observer = self._observer
        return observer is not None and observer.is_alive() and all(e.is_alive() for e in observer.emitters)

    def _stop_observer(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def _reconcile_delay(self, last_full_sync_worked: bool) -> float:
        # A failed full sync (say, the model could not load yet) is retried soon.
        return self.options.reconcile if last_full_sync_worked else min(self.options.reconcile, RETRY_SECONDS)

    def _sync(self, paths: list[str] | None) -> bool:
        """One sync; any error is logged and the watcher carries on. True if it worked."""
        scope = "all files" if paths is None else ", ".join(one_line(p) for p in paths[:5])
        if paths is not None and len(paths) > 5:
            scope += f" and {len(paths) - 5} more"
        worked = False
        try:
            if paths is None:
                report = self.index.sync()
            else:
                links = self._links.leading_to(paths)
                report = self.index.sync(paths=paths + links)
                for path in paths:
                    self._failures.pop(path, None)
                paths = paths + links
            self._links.update(paths, report.symlinks)
            worked = True
        except Exception as exc:  # noqa: BLE001 - keep watching; the next event or reconcile retries
            if paths is not None and len(paths) > 1:
                # One bad path must not hold up the others: sync each alone.
                worked = all([self._sync([path]) for path in paths])
                return worked
            log.warning("sync of %s failed: %s", scope, one_line(str(exc)) or type(exc).__name__)
            log.debug("sync failure", exc_info=True)
            if paths is not None:
                self._retry_later(paths)
        else:
            if report.reindexed or report.removed:
                log.debug("synced %s in %.0f ms", scope, report.seconds * 1000)
        self._last_sync = time.time()
        self.syncs += 1
        self._write_status()
        return worked

    def _warm_up(self) -> None:
        """One tiny embedding, so the first real edit does not pay the model's first-call cost."""
        try:
            self.index.embedder.embed(["memdex watcher warm-up"])
        except Exception as exc:  # noqa: BLE001 - a broken model shows up again at the first sync
            log.warning("embedding model warm-up failed: %s", one_line(str(exc)))

    def _retry_later(self, paths: list[str]) -> None:
        # Not immediately, and less often each time: a failure that repeats
        # (disk full, a model that cannot load) should not spin or flood the log.
        for path in paths:
            failures = self._failures[path] = self._failures.get(path, 0) + 1
            delay = min(self.options.max_wait * 2 ** (failures - 1), self.options.reconcile)
            self.pending.add(path, time.monotonic() + delay)

    def _start_observer(self) -> BaseObserver:
        quiet_watchdog_bookkeeping()
        handler = self._handler = EventHandler(self.settings, self.pending, self._root.root_event)
        factories: list[tuple[str, ObserverFactory]] = []
        if not self.options.polling:
            factories.append(("native", self._observer_factory or Observer))
        factories.append(("polling", PollingObserver))
        for kind, factory in factories:
            observer = factory()
            observer.schedule(handler, str(self.settings.root), recursive=True, event_filter=WATCHED_EVENTS)
            self._session_watched = set()
            for folder in self.settings.session_labels.values():  # one that appears later: see below
                if folder.is_dir() and not folder.is_relative_to(self.settings.root):
                    observer.schedule(handler, str(folder), recursive=True, event_filter=WATCHED_EVENTS)
                    self._session_watched.add(folder)
            try:
                observer.start()
            except OSError as exc:
                if kind == "polling" or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                log.warning(
                    "file-event limit reached (%s); polling for changes instead "
                    "(raise fs.inotify.max_user_watches to avoid this)", exc.strerror or exc
                )
                continue
            self.observer_kind = kind
            return observer
        raise AssertionError("unreachable: polling either starts or raises")

    def _watch_new_session_folders(self) -> None:
        """A session folder that did not exist when the observer started (a tool used for the
        first time) is followed from when it appears, and read whole once."""
        if self._observer is None or self._handler is None:
            return
        for label, folder in self.settings.session_labels.items():
            if folder in self._session_watched or folder.is_relative_to(self.settings.root) or not folder.is_dir():
                continue
            try:
                self._observer.schedule(self._handler, str(folder), recursive=True, event_filter=WATCHED_EVENTS)
            except OSError as exc:  # gone again, or no watches left: the reconcile still reads it
                log.warning("cannot watch the session folder %s (%s)", one_line(str(folder)), exc.strerror or exc)
                continue
            self._session_watched.add(folder)
            self.pending.add(f"sessions/{label}")

    def _write_status(self) -> None:
        pending = self.pending.snapshot()
        # With an encryption key, no file memdex writes names a note: only the count.
        names = [] if key_configured(self.settings) else pending
        self._status.write(
            pid=os.getpid(),
            started_at=self._started_at,
            last_sync=self._last_sync,
            pending=names,
            pending_count=len(pending),
            observer=self.observer_kind,
        )
