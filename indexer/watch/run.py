"""``memdex watch`` from start to stop: the loop around one ``Watcher``.

- Another process holds the writer lock: exit (``LockedError``), or with
  ``wait_for_lock`` (services) wait for it.
- The index's server cannot be reached (``Unavailable``: down, restarting, no
  network yet at boot): retry with a growing pause (1 s doubling to
  ``RETRY_SECONDS``), saying so once per outage; a service started before its
  database must not give up.
- The memory root was replaced with the index inside it (``RootReplaced``):
  start over on the folder now at the root's path.
- A stop signal (``signals.stop_on_signals``) ends it at any of these points.
"""

from __future__ import annotations

import fcntl
import logging
import time
from typing import Any

from indexer.api import open_index
from indexer.config.settings import Settings
from indexer.errors import LockedError, RootReplaced, Unavailable, one_line
from indexer.indexing.lock import open_lock_file

from .signals import Stopping
from .watcher import RETRY_SECONDS, Watcher, WatchOptions

log = logging.getLogger("indexer.watch")

FIRST_RETRY_SECONDS = 1.0


def run_watch(
    settings: Settings,
    options: WatchOptions,
    stopping: Stopping,
    *,
    wait_for_lock: bool = False,
    on_watcher: Any = None,
    **open_options: Any,
) -> None:
    """Watch ``settings.root`` until a stop signal (KeyboardInterrupt is the caller's);
    ``on_watcher(watcher)`` is called with each new watcher before it runs."""
    said_locked = False
    pause = 0.0
    while not stopping.requested:
        try:
            with open_index(settings, write=True, **open_options) as memory:
                if pause:
                    log.warning("reached the index again; watching")
                pause = 0.0
                watcher = Watcher(memory, options, stopping=stopping)
                if on_watcher is not None:
                    on_watcher(watcher)
                log.info("watching %s", settings.root)
                watcher.run()
            return
        except RootReplaced:
            continue  # said in one line by the watcher: start over at the configured path
        except Unavailable as exc:
            longer = min(pause * 2, RETRY_SECONDS) if pause else FIRST_RETRY_SECONDS
            if not pause:
                log.warning("%s; retrying (every %g s at most)", one_line(str(exc)), RETRY_SECONDS)
            pause = longer
            _pause(pause, stopping)
        except LockedError as exc:
            if not wait_for_lock:
                raise
            if not said_locked:
                log.warning("%s; waiting for it", exc)
                said_locked = True
            _wait_for_lock(settings)


def _pause(seconds: float, stopping: Stopping) -> None:
    deadline = time.monotonic() + seconds
    while not stopping.requested and time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _wait_for_lock(settings: Settings) -> None:
    """Block until no other process holds the writer lock (woken by signals, too)."""
    with open_lock_file(settings.lock_path) as handle:  # never through a symlink
        fcntl.flock(handle, fcntl.LOCK_EX)
        fcntl.flock(handle, fcntl.LOCK_UN)
