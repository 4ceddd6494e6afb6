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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from indexer.config.encryption import key_configured
from indexer.config.settings import Settings
from indexer.errors import IndexReplaced, RootReplaced, one_line
from indexer.sources.discover import is_utf8
from indexer.sources.registry import is_source_file
from indexer.sources.sessions.discover import session_relevant

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

# Opened / closed-without-write events are left out: our own reads would
# otherwise wake the watcher after every sync. Directory "modified" events
# only repeat what the file events inside say.
WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
    DirCreatedEvent, DirMovedEvent, DirDeletedEvent,
]  # fmt: skip

ObserverFactory = Callable[[], BaseObserver]

# watchdog's inotify observer re-adds a watch for a folder it already watches (a
# folder moved back into the root, a new folder walked twice while it fills) and
# says so with a RuntimeWarning of over a kilobyte ("Callback with id ... already
# exists for watch <...>"); removing one it lost track of warns too. That is its
# own bookkeeping: events keep flowing and nobody can act on it.
WATCHDOG_BOOKKEEPING = r"Callback with id .* (already exists|does not exist) for watch"


# Stopping an inotify observer races with its emitter thread, which then logs this
# at ERROR level (watchdog 7.x) although nothing is lost: the observer is being stopped.
WATCHDOG_STOP_RACE = "InotifyEmitter.queue_events() called when the thread is inactive"


class _DropStopRace(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != WATCHDOG_STOP_RACE


_STOP_RACE_FILTER = _DropStopRace()


def quiet_watchdog_bookkeeping() -> None:
    """Ignore only those warnings and that shutdown message, only from watchdog's modules (idempotent)."""
    warnings.filterwarnings("ignore", message=WATCHDOG_BOOKKEEPING, category=RuntimeWarning, module=r"watchdog\.")
    logging.getLogger("watchdog.observers.inotify").addFilter(_STOP_RACE_FILTER)  # a set: added once


@dataclass(frozen=True)
class WatchOptions:
    debounce: float = DEBOUNCE_SECONDS
    max_wait: float = MAX_WAIT_SECONDS
    reconcile: float = RECONCILE_SECONDS
    polling: bool = False


class PendingPaths:
    """Paths waiting to be synced, each with its first and latest event time (thread-safe)."""

    def __init__(self, *, debounce: float, max_wait: float) -> None:
        self.debounce = debounce
        self.max_wait = max_wait
        self._times: dict[str, tuple[float, float]] = {}
        self._changed = threading.Condition()

    def add(self, path: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._changed:
            first, _ = self._times.get(path, (now, now))
            self._times[path] = (first, now)
            self._changed.notify_all()

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def take_due(self, now: float | None = None) -> list[str]:
        """Remove and return the paths that have been quiet long enough or waited too long."""
        now = time.monotonic() if now is None else now
        with self._changed:
            due = [path for path, times in self._times.items() if self._due_at(times) <= now]
            for path in due:
                del self._times[path]
            return sorted(due)

    def wait(self, timeout: float) -> None:
        """Sleep until the next path is due, an event arrives, or ``timeout`` passes."""
        with self._changed:
            if self._times:
                next_due = min(self._due_at(times) for times in self._times.values())
                timeout = min(timeout, max(0.0, next_due - time.monotonic()))
            if timeout > 0:
                self._changed.wait(timeout)

    def snapshot(self) -> list[str]:
        with self._changed:
            return sorted(self._times)

    def _due_at(self, times: tuple[float, float]) -> float:
        first, last = times
        return min(last + self.debounce, first + self.max_wait)


class SymlinkMap:
    """Which memory files are symlinks to which others: the OS reports an edit
    under the target's path only, yet the link's rows must follow it. Kept
    from what each sync saw (``SyncReport.symlinks``), so it costs no scan."""

    def __init__(self) -> None:
        self._links: dict[str, str] = {}  # link path -> target path

    def update(self, paths: list[str] | None, seen: dict[str, str]) -> None:
        """Take in what a sync of ``paths`` (None: all files) saw."""
        if paths is None:
            self._links = dict(seen)
            return
        for link in [link for link in self._links if _under_any(link, paths)]:
            if link not in seen:
                del self._links[link]
        self._links.update(seen)

    def leading_to(self, paths: list[str]) -> list[str]:
        """Links whose target is one of ``paths`` or lies below one of them."""
        return sorted(link for link, target in self._links.items() if _under_any(target, paths))


def _under_any(path: str, prefixes: list[str]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def relevant_path(root: Path, index_dir: Path, event_path: str, *, is_directory: bool) -> str | None:
    """The root-relative path an event is about, or None when it cannot matter.

    Files count when a source owns them (``sources/registry.py``); folders
    always (their files are looked at when the folder appears, moves or goes).
    Anything hidden, inside the index folder or outside the root is ignored.
    """
    path = Path(os.fsdecode(event_path))
    if path == index_dir or index_dir in path.parents:
        return None
    try:
        rel = PurePosixPath(path.relative_to(root).as_posix())
    except ValueError:
        return None
    if not rel.parts or any(part.startswith(".") for part in rel.parts):
        return None
    if not is_utf8(rel.as_posix()):
        return None  # the full scan skips such names with a warning
    if not is_directory and not is_source_file(rel.as_posix()):
        return None
    return rel.as_posix()


class _EventHandler(FileSystemEventHandler):
    """Turns watchdog events into pending paths. Never raises: watchdog stops
    its observer thread when a handler does."""

    def __init__(self, settings: Settings, pending: PendingPaths, root_event: threading.Event) -> None:
        self.root = settings.root
        self.index_dir = settings.index_dir.resolve()
        self.sessions = settings.session_labels
        self.pending = pending
        self.root_event = root_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            if event.is_directory and event.event_type in ("deleted", "moved") and (
                Path(os.fsdecode(event.src_path)) == self.root
            ):
                self.root_event.set()  # the watched folder itself went: the loop looks at the path
                self.pending.wake()
                return
            paths = [event.src_path]
            if event.event_type == "moved" and event.dest_path:
                paths.append(event.dest_path)
            for raw in paths:
                rel = relevant_path(self.root, self.index_dir, os.fsdecode(raw), is_directory=event.is_directory)
                if rel is not None:
                    self.pending.add(rel)
                session = session_relevant(self.sessions, os.fsdecode(raw), is_directory=event.is_directory)
                if session is not None:
                    self.pending.add(session)
        except Exception:  # noqa: BLE001 - the observer thread must survive anything
            log.warning("ignored a file event that could not be handled: %r", event, exc_info=True)


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
        self._handler: _EventHandler | None = None
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
        handler = self._handler = _EventHandler(self.settings, self.pending, self._root.root_event)
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
