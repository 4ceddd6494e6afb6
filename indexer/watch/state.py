"""The running watcher's state, kept as JSON beside the index for ``memdex status``.

Separate from ``watch`` so that reading it does not import watchdog.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from indexer.config.files import read_small_file
from indexer.errors import ConfigError

log = logging.getLogger(__name__)

STATUS_FILE_NAME = "watcher.json"
MAX_STATE_BYTES = 64 * 1024


class StatusFile:
    """The watcher's state as JSON beside the index, replaced atomically.

    Written through a handle on the index folder, so it stays beside the index
    the watcher holds even when that folder is moved (with the memory root).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._folder: int | None = None
        try:
            self._folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            log.debug("cannot open %s: %s", path.parent, exc)

    def write(self, **state: Any) -> None:
        temporary = f"{self.path.name}.{os.getpid()}.tmp"
        try:
            if self._folder is None:
                raise OSError(f"{self.path.parent} could not be opened")
            try:  # a leftover (or a planted link) by that name goes; a new file is made, never written through
                os.unlink(temporary, dir_fd=self._folder)
            except FileNotFoundError:
                pass
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=self._folder)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(state))
            os.replace(temporary, self.path.name, src_dir_fd=self._folder, dst_dir_fd=self._folder)
        except OSError as exc:  # status is informative only; never stop watching for it
            log.debug("cannot write %s: %s", self.path, exc)

    def remove(self) -> None:
        if self._folder is None:
            return
        try:
            os.unlink(self.path.name, dir_fd=self._folder)
        except OSError:
            pass
        os.close(self._folder)
        self._folder = None


def watcher_status(index_dir: Path, name: str = STATUS_FILE_NAME) -> dict[str, Any] | None:
    """The running watcher's state, or None when no watcher runs for this index."""
    path = index_dir / name
    try:  # a FIFO or /dev/zero planted by that name never blocks or fills memory
        state = json.loads(read_small_file(path, what="watcher state", limit=MAX_STATE_BYTES).decode("utf-8"))
        pid = int(state["pid"])
    except (OSError, ConfigError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid):
        return None  # killed without a chance to clean up
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
