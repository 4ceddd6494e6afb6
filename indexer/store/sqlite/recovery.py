"""Rebuilding and repairing a SQLite index from the Markdown.

A rebuild writes a complete new index to ``<index>.rebuild`` with the same
embedding cache (unchanged texts cost no model call), then copies it into the
live index in one transaction: readers answer from the old content until that
commit. A failed or interrupted build leaves the live index as it was; its
temporary file is removed at once, or by the next writer at the latest.

A damaged index is rebuilt beside itself first; only a complete new index
takes its place, and the damaged file is kept as ``<name>.corrupt-<timestamp>``
(the newest three). ``memdex rebuild`` replaces an index from a newer memdex the
same way and keeps it as ``<name>.newer-<timestamp>``, never deleted.
A reader that finds damage takes the writer lock to repair it, unless another
process has repaired it meanwhile.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from indexer.config.settings import Settings
from indexer.errors import LockedError, UnusableIndex, one_line
from indexer.store.protocols import Build, TakeLock, VectorCache

from . import connection as db
from .cache import EmbeddingCache
from .store import Store

log = logging.getLogger(__name__)

TEMPORARY_SUFFIX = ".rebuild"
Report = TypeVar("Report")


def temporary_path(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + TEMPORARY_SUFFIX)


def remove_leftovers(index_path: Path, *, key: str | None) -> None:
    """Delete a temporary index an interrupted rebuild left behind (the caller
    holds the writer lock); a file of that name that is not memdex's raises."""
    db.remove_own_temporary(temporary_path(index_path), key=key)


def build_beside(
    settings: Settings, cache: VectorCache, build: Build[Report], *, key: str | None
) -> tuple[db.Opened, Report]:
    """A fresh, complete index in the temporary file (encrypted with ``key``);
    the caller copies it in and closes it."""
    temporary = temporary_path(settings.index_path)
    db.remove_own_temporary(temporary, key=key)
    opened = db.connect(temporary, load_vec=settings.use_sqlite_vec, key=key)
    try:
        report = build(Store(opened.connection, vec_enabled=opened.vec_loaded), cache)
    except BaseException:
        discard(opened, settings.index_path)
        raise
    return opened, report


def discard(opened: db.Opened, index_path: Path) -> None:
    opened.connection.close()
    db.remove_database(temporary_path(index_path))  # made by this process


def replace_damaged(
    settings: Settings,
    reason: str,
    build: Build[Report],
    *,
    cache: VectorCache | None = None,
    release: Callable[[], None] = lambda: None,
    key: str | None = None,
    newer: bool = False,
) -> Report:
    """Rebuild from the Markdown beside the unusable index, then move that file
    aside and the new one into its place (the caller holds the lock and gives
    ``release`` to close its own connection just before). If the rebuild
    fails, the unusable file is left where it was. ``newer``: the file is an
    index from a newer memdex, kept as ``<name>.newer-<time>`` and never pruned."""
    own_cache = cache or EmbeddingCache(
        settings.cache_path, model_id=build.model_id, dimensions=build.dimensions, key=key
    )
    try:
        built, report = build_beside(settings, own_cache, build, key=key)
        temporary = temporary_path(settings.index_path)
        db.close_for_move(built.connection, temporary)
        release()
        moved = db.quarantine(settings.index_path, key=key, label=db.NEWER_LABEL if newer else "corrupt")
        os.replace(temporary, settings.index_path)
    finally:
        if cache is None:
            own_cache.close()
    log.warning(
        "the index %s (%s); %s and rebuilt it from the Markdown",
        "was written by a newer memdex" if newer else "was unusable", one_line(reason),
        f"moved it to {moved.name}" if moved else "replaced it",
    )  # fmt: skip
    return report


@contextmanager
def lock_for_recovery(
    settings: Settings, reason: str, *, seen: tuple[int, int] | None, take_lock: TakeLock, key: str | None
) -> Iterator[bool]:
    """A reader found the index unusable: take the writer lock to repair it.

    Yields whether the repair is still needed: False when the index file is no
    longer the one found damaged (another process has repaired it meanwhile).
    """
    try:
        lock = take_lock()
    except LockedError as exc:
        raise UnusableIndex(
            f"the index is unusable ({one_line(reason)}) and cannot be repaired now: {exc}"
        ) from None
    try:
        remove_leftovers(settings.index_path, key=key)
        yield file_identity(settings.index_path) == seen
    finally:
        lock.close()


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
