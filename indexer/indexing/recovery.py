"""Keeping the index recoverable: the single-writer lock, and replacing an
unusable index with one rebuilt from the Markdown.

The lock is an ``fcntl`` lock on ``write.lock`` beside the index, holding the
writer's pid. A damaged index is rebuilt beside itself first; only a complete
new index takes its place, and the damaged file is kept as
``<name>.corrupt-<timestamp>``.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from indexer.config.settings import Settings
from indexer.embedding.models import Embedder
from indexer.errors import ConfigError, LockedError, UnusableIndex, one_line
from indexer.store import EmbeddingCache
from indexer.store.sqlite import connection as db
from indexer.store.sqlite import rebuild
from indexer.watch.state import STATUS_FILE_NAME, watcher_status

from .report import Progress, SyncReport

log = logging.getLogger(__name__)


def replace_damaged(
    settings: Settings,
    reason: str,
    embedder: Embedder,
    *,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    release: Callable[[], None] = lambda: None,
) -> SyncReport:
    """Rebuild from the Markdown beside the unusable index, then move that file
    aside and the new one into its place (the caller holds the lock and gives
    ``release`` to close its own connection just before). If the rebuild
    fails, the unusable file is left where it was."""
    own_cache = cache or EmbeddingCache(settings.cache_path, model_id=embedder.model_id, dimensions=embedder.dimensions)
    try:
        built, report = rebuild.build_beside(settings, own_cache, embedder, progress=progress)
        temporary = rebuild.temporary_path(settings.index_path)
        db.close_for_move(built.connection, temporary)
        release()
        moved = db.quarantine(settings.index_path)
        os.replace(temporary, settings.index_path)
    finally:
        if cache is None:
            own_cache.close()
    log.warning(
        "the index was unusable (%s); %s and rebuilt it from the Markdown",
        one_line(reason), f"moved it to {moved.name}" if moved else "replaced it",
    )  # fmt: skip
    return report


@contextmanager
def lock_for_recovery(settings: Settings, reason: str, *, seen: tuple[int, int] | None) -> Iterator[bool]:
    """A reader found the index unusable: take the writer lock to repair it.

    Yields whether the repair is still needed: False when the index file is no
    longer the one found damaged (another process has repaired it meanwhile).
    """
    try:
        lock = acquire_lock(settings.lock_path, status_path=settings.status_path)
    except LockedError as exc:
        raise UnusableIndex(
            f"the index is unusable ({one_line(reason)}) and cannot be repaired now: {exc}"
        ) from None
    try:
        rebuild.remove_leftovers(settings.index_path)
        yield file_identity(settings.index_path) == seen
    finally:
        lock.close()


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def acquire_lock(path: Path, *, status_path: Path | None = None) -> IO[str]:
    if path.exists() and not path.is_file():
        raise ConfigError(f"the lock file {path} is not a regular file; move it away")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the index folder {path.parent} ({exc.strerror or exc})") from None
    try:
        handle = open(path, "a+")
    except OSError as exc:
        raise ConfigError(f"cannot create the lock file {path} ({exc.strerror or exc})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        status_path = status_path or path.parent / STATUS_FILE_NAME
        watcher = watcher_status(status_path.parent, status_path.name)
        if watcher is not None and str(watcher["pid"]) == holder:
            raise LockedError(
                f"a watcher (pid {holder}) is keeping this index current, so 'memdex index' is not needed; "
                "stop the watcher to rebuild or repair it"
            ) from None
        raise LockedError(f"another memdex process (pid {holder}) is writing this index; try again later") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
