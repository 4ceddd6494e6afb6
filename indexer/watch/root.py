"""Is the folder at the memory root's path still the folder being watched?

File events follow a folder's inode, not its path: after ``mv root root-moved;
mkdir root`` the observer keeps reporting what happens in the moved folder and
nothing about the new one. ``RootTracker`` compares the device and inode of the
folder at the configured path with the one being watched (the watcher asks
about once a second), and also takes the observer's word when it reports the
root itself deleted, which matters when a recreated folder gets the old inode
number back. Each change is said in one log line.
"""

from __future__ import annotations

import logging
import threading
from enum import Enum
from pathlib import Path
from stat import S_ISDIR

log = logging.getLogger(__name__)


class RootState(Enum):
    SAME = "same"  # the folder being watched is still at the path
    GONE = "gone"  # nothing (or no folder) at the path: sync nothing until one is back
    CHANGED = "changed"  # another folder, or the same one back, or its events stopped: watch it afresh


class RootTracker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.identity = folder_identity(root)
        self.root_event = threading.Event()  # set by the event handler: the root itself went
        self.gone = False

    def check(self, *, events_flowing: bool) -> RootState:
        """Where things stand; a change is logged once. After CHANGED the caller
        restarts the observer and syncs everything."""
        identity = folder_identity(self.root)
        if identity is None:
            if not self.gone:
                log.warning(
                    "the memory root %s is gone (moved or deleted); the index is left as it is "
                    "until a folder is back at that path", self.root,
                )  # fmt: skip
                self.gone = True
            return RootState.GONE
        replaced = identity != self.identity
        if not (replaced or self.gone or self.root_event.is_set() or not events_flowing):
            return RootState.SAME
        if replaced:
            what = "is another folder now (moved, or deleted and recreated); watching the folder at that path"
        elif self.gone:  # the same folder moved back, or a new one with a reused inode number
            what = "has a folder at its path again; watching it"
        elif self.root_event.is_set():  # deleted and recreated with a reused inode number
            what = "was deleted or moved away; watching the folder now at that path"
        else:
            what = "stopped reporting file events; watching it again"
        log.warning("the memory root %s %s and syncing the index with it", self.root, what)
        self.identity, self.gone = identity, False
        self.root_event.clear()
        return RootState.CHANGED


def folder_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the folder at ``path``; None when there is none."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino) if S_ISDIR(stat.st_mode) else None
