"""The SQLite engine as a whole: one index file per memory root (FTS5 and
sqlite-vec through APSW), its embedding cache beside it, recovery by moving a
damaged file aside and rebuilding it from the Markdown.

``open_engine`` refuses files memdex did not make, opens (creating and
migrating for a writer) and repairs an unusable index on the way when asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from indexer.config.encryption import encryption_key
from indexer.config.settings import Settings
from indexer.errors import ConfigError, IndexerError, NewerIndex, UnusableIndex
from indexer.store.protocols import Build, TakeLock, VectorCache

from . import connection as db
from . import recovery
from .cache import EmbeddingCache
from .checks import storage_checks
from .errors import as_user_error, is_damage
from .store import Store

log = logging.getLogger(__name__)

Report = TypeVar("Report")


def refuse_foreign_files(settings: Settings) -> None:
    """Refuse a --db (or its cache) that memdex did not make, before anything is created
    beside it; and a missing, wrong or needless encryption key before anything is written."""
    key = encryption_key(settings)
    db.ownership(settings.index_path, kind=db.INDEX, key=key)
    db.ownership(settings.cache_path, kind=db.CACHE, key=key)


def open_engine(
    settings: Settings,
    *,
    write: bool,
    take_lock: TakeLock,
    make_build: Callable[[], Build[Any]] | None,
    replace_newer: bool = False,
) -> SqliteEngine:
    """The index at ``settings.index_path``; ``write`` creates or migrates it. An
    unusable one (corrupt, truncated, not a database) is moved aside and rebuilt
    with ``make_build()`` (one warning); without ``make_build``, ``UnusableIndex``
    is raised (e.g. for ``check``). An index from a newer memdex raises
    ``NewerIndex`` and is left as it is, unless ``replace_newer`` (``memdex
    rebuild``, a writer): then it is kept as ``<name>.newer-<time>`` and rebuilt."""
    key = encryption_key(settings)
    if write:
        recovery.remove_leftovers(settings.index_path, key=key)
    recovered_from = None
    seen = recovery.file_identity(settings.index_path)
    try:
        opened = _connect(settings, write, key)
    except NewerIndex as exc:
        if not (write and replace_newer and make_build is not None):
            raise
        recovered_from = str(exc)
        recovery.replace_damaged(settings, recovered_from, make_build(), key=key, newer=True)
        opened = _connect(settings, write, key)
    except UnusableIndex as exc:
        if make_build is None:
            raise
        recovered_from = str(exc)
        build = make_build()
        if write:
            recovery.replace_damaged(settings, recovered_from, build, key=key)
        else:
            with recovery.lock_for_recovery(
                settings, recovered_from, seen=seen, take_lock=take_lock, key=key
            ) as damaged:
                if damaged:
                    recovery.replace_damaged(settings, recovered_from, build, key=key)
        opened = _connect(settings, write, key)
    if opened.vec_warning:
        log.warning("%s", opened.vec_warning)
    engine = SqliteEngine(settings, opened, writable=write, take_lock=take_lock, key=key)
    engine.recovered_from = recovered_from
    return engine


def _connect(settings: Settings, write: bool, key: str | None) -> db.Opened:
    connect = db.connect if write else db.connect_reader
    return connect(settings.index_path, load_vec=settings.use_sqlite_vec, key=key)


class SqliteEngine:
    """One open SQLite index (see ``store.protocols.Engine``)."""

    name = "sqlite"
    keeps_vectors_in_memory = True  # a second search loads every vector: an exact scan beats vec0's
    connection_replaced = False  # a file: nothing to reconnect

    def __init__(
        self, settings: Settings, opened: db.Opened, *, writable: bool, take_lock: TakeLock, key: str | None = None
    ) -> None:
        self.settings = settings
        self._key = key
        self.store = Store(opened.connection, vec_enabled=opened.vec_loaded)
        self.recovered_from: str | None = None  # why the index was rebuilt when opened, if it was
        self._writable = writable
        self._take_lock = take_lock
        self._identity = recovery.file_identity(settings.index_path)  # to notice another process replacing it

    def open_cache(self, *, model_id: str, dimensions: int) -> EmbeddingCache:
        return EmbeddingCache(self.settings.cache_path, model_id=model_id, dimensions=dimensions, key=self._key)

    def existing_cache(self, *, model_id: str, dimensions: int) -> EmbeddingCache | None:
        if not self.settings.cache_path.exists():
            return None
        return self.open_cache(model_id=model_id, dimensions=dimensions)

    def search_snapshot(self) -> Any:
        return self.store.connection  # ``with connection:`` is one SQLite transaction

    def start_nearest(self, source: Any, query: Any, k: int) -> Any:
        return source  # vec0's KNN runs in the search's own transaction (the matrix: api's Prefetched)

    def rebuild(self, build: Build[Report], cache: VectorCache) -> Report:
        """Build a complete index beside this one, then copy it in (SQLite's backup
        API, one transaction): readers see the old content until the copy commits."""
        built, report = recovery.build_beside(self.settings, cache, build, key=self._key)
        try:
            db.copy_into(self.store.connection, built.connection)
            self.store.forget_counts()
        finally:
            recovery.discard(built, self.settings.index_path)
        return report

    def repair(self, reason: str, build: Build[Report], cache: VectorCache, *, writable: bool) -> Report | None:
        """Rebuild from the Markdown beside the damaged index, move it aside, carry on
        with the new one. If the rebuild fails, the damaged file stays open and in place."""
        released = False

        def release() -> None:
            nonlocal released
            self.store.connection.close()
            released = True

        report = None
        try:
            if writable:
                report = recovery.replace_damaged(
                    self.settings, reason, build, cache=cache, release=release, key=self._key
                )
            else:
                seen, take_lock = self._identity, self._take_lock
                with recovery.lock_for_recovery(
                    self.settings, reason, seen=seen, take_lock=take_lock, key=self._key
                ) as damaged:
                    if damaged:
                        report = recovery.replace_damaged(
                            self.settings, reason, build, cache=cache, release=release, key=self._key
                        )
                    else:  # another process has just rebuilt it
                        release()
        finally:
            if released:
                opened = _connect(self.settings, writable, self._key)
                self.store = Store(opened.connection, vec_enabled=opened.vec_loaded)
                self._identity = recovery.file_identity(self.settings.index_path)
        return report

    def is_damage(self, exc: BaseException) -> bool:
        return is_damage(exc)

    def user_error(self, exc: BaseException) -> IndexerError | None:
        return as_user_error(exc)

    def reconnected(self, exc: BaseException) -> bool:
        return False  # a file has no connection to lose

    def matrix_fits(self, bound: int) -> bool:
        return True  # a file's own process: the matrix is what makes a warm search fast

    def uses_vector_index(self) -> bool:
        return (
            self.store.vec_enabled
            and self.store.vec_dimensions() is not None
            and self.store.meta().get("vec_stale") != "1"
        )

    def status(self) -> dict[str, Any]:
        paths = (self.settings.index_path, Path(f"{self.settings.index_path}-wal"), self.settings.cache_path)
        return {
            "engine": self.name,
            "encrypted": self._key is not None,
            "index_bytes": sum(p.stat().st_size for p in paths if p.exists()),
            "schema_version": db.SCHEMA_VERSION,
        }

    def vector_search_name(self) -> str:
        return "sqlite-vec" if self.uses_vector_index() else "numpy"

    def storage_checks(self) -> list[str]:
        return storage_checks(self.store.connection)

    def storage_notes(self) -> list[str]:
        return []

    def replaced_on_disk(self) -> bool:
        """True when the index file is no longer the one open here (deleted, or
        replaced by something other than this engine's own repair)."""
        return recovery.file_identity(self.settings.index_path) != self._identity

    def stored_lines(self, namespace: str, path: str) -> list[tuple[int, int, str]] | None:
        raise ConfigError("only a PostgreSQL index has other namespaces to read from")

    def close(self) -> None:
        self.store.connection.close()

