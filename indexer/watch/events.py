"""File events -> pending paths: which events matter, and when a path is due.

watchdog's observer thread calls ``EventHandler``, which keeps only events about
files a source owns (or folders) and records them in ``PendingPaths``. The
watcher's loop takes due paths from there after a short quiet period. Nothing
here reads a file: events are only hints about which paths to look at.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from pathlib import Path, PurePosixPath

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

from indexer.config.settings import Settings
from indexer.sources.discover import is_utf8
from indexer.sources.registry import is_source_file
from indexer.sources.sessions.discover import session_relevant

log = logging.getLogger(__name__)

# Opened / closed-without-write events are left out: our own reads would
# otherwise wake the watcher after every sync. Directory "modified" events
# only repeat what the file events inside say.
WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
    DirCreatedEvent, DirMovedEvent, DirDeletedEvent,
]  # fmt: skip


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


class EventHandler(FileSystemEventHandler):
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
