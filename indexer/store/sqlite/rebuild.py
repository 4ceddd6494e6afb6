"""Build a complete index from the Markdown beside the current one.

The new index is written to ``<index>.rebuild`` with the same embedding cache
(so unchanged texts cost no model call); the caller then copies it into the
live index in one transaction. Readers keep answering from the old content
until that commit. A failed or interrupted build leaves the live index as it
was; its temporary file is removed at once, or by the next writer at the latest.
"""

from __future__ import annotations

from pathlib import Path

from indexer.config.settings import Settings
from indexer.embedding.models import Embedder
from indexer.indexing.report import Progress, SyncReport
from indexer.indexing.sync import sync
from indexer.store import EmbeddingCache, Store

from . import connection as db

TEMPORARY_SUFFIX = ".rebuild"


def temporary_path(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + TEMPORARY_SUFFIX)


def remove_leftovers(index_path: Path) -> None:
    """Delete a temporary index an interrupted rebuild left behind (the caller
    holds the writer lock); a file of that name that is not memdex's raises."""
    db.remove_own_temporary(temporary_path(index_path))


def build_beside(
    settings: Settings,
    cache: EmbeddingCache,
    embedder: Embedder,
    *,
    progress: Progress | None = None,
) -> tuple[db.Opened, SyncReport]:
    """A fresh, complete index in the temporary file; the caller copies it in and closes it."""
    temporary = temporary_path(settings.index_path)
    db.remove_own_temporary(temporary)
    opened = db.connect(temporary, load_vec=settings.use_sqlite_vec)
    try:
        store = Store(opened.connection, vec_enabled=opened.vec_loaded)
        report = sync(settings, store, cache, embedder, progress=progress)
    except BaseException:
        discard(opened, settings.index_path)
        raise
    return opened, report


def discard(opened: db.Opened, index_path: Path) -> None:
    opened.connection.close()
    db.remove_database(temporary_path(index_path))  # made by this process
