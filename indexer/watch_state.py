"""The running watcher's state, kept as JSON beside the index for ``memdex status``.

Separate from ``watch`` so that reading it does not import watchdog.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATUS_FILE_NAME = "watcher.json"


class StatusFile:
    """The watcher's state as JSON beside the index, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, **state: Any) -> None:
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(state), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:  # status is informative only; never stop watching for it
            log.debug("cannot write %s: %s", self.path, exc)

    def remove(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass


def watcher_status(index_dir: Path, name: str = STATUS_FILE_NAME) -> dict[str, Any] | None:
    """The running watcher's state, or None when no watcher runs for this index."""
    path = index_dir / name
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
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
