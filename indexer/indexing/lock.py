"""One writer per memory root: an ``fcntl`` lock on ``write.lock`` beside the
index (with PostgreSQL, one per root and host), holding the writer's pid.

A second writer gets a one-line ``LockedError`` that names the holder, and says
so when the holder is the running watcher (then ``memdex index`` is not needed).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from indexer.config.files import open_own_file, own_folder
from indexer.config.settings import Settings
from indexer.errors import LockedError, PathError
from indexer.watch.state import STATUS_FILE_NAME, watcher_status


def lock_root(settings: Settings) -> IO[str]:
    """The writer lock of ``settings``' index. A memory root that is gone (renamed,
    unmounted) is refused first: the lock's folder may lie inside the root (with
    PostgreSQL, ``ROOT/.memdex``), and making it would make an empty root that a
    sync would take for "every file was deleted"."""
    if not settings.root.is_dir():
        raise PathError(f"cannot list the memory root {settings.root} (it is gone or not a folder); nothing changed")
    return acquire_lock(settings.lock_path, status_path=settings.status_path)


def acquire_lock(path: Path, *, status_path: Path | None = None) -> IO[str]:
    handle = open_lock_file(path)
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


def open_lock_file(path: Path) -> IO[str]:
    """The lock file, created if needed, in its folder (made if needed): never
    through a symbolic link (the pid written into it would truncate the target)."""
    own_folder(path.parent)
    return os.fdopen(open_own_file(path, what="the lock file"), "r+", encoding="utf-8")
