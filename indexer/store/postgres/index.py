"""The API over a PostgreSQL index: the same ``MemoryIndex``, with the
server's store, its shared embedding cache and a rebuild that replaces the
namespace in one transaction.

What differs from SQLite is only what a server changes: there is no index
file to quarantine (the server keeps its data consistent; a lost connection
is an error the next sync retries), a rebuild holds the namespace's advisory
lock and commits at once (searches see the old rows until then), and vector
search runs on the server's HNSW index.
"""

from __future__ import annotations

import logging
from typing import Any

from indexer.api import MemoryIndex, _raise_user_error
from indexer.config.settings import Settings
from indexer.embedding.models import Embedder
from indexer.errors import PathError, StorageError, one_line
from indexer.indexing.report import Progress, SyncReport
from indexer.indexing.sync import sync
from indexer.retrieval.search import SearchResult, Vec0Vectors, VectorSource
from indexer.sources.read import parse_target

from . import connection as pg
from .store import PgEmbeddingCache, PgStore

log = logging.getLogger(__name__)


class PgMemoryIndex(MemoryIndex):
    """One namespace of a PostgreSQL index. Use through ``open_index``."""

    store: PgStore

    @property
    def cache(self) -> PgEmbeddingCache:  # type: ignore[override]
        if self._cache is None:
            embedder = self.embedder
            self._cache = PgEmbeddingCache(self.store, model_id=embedder.model_id, dimensions=embedder.dimensions)
        return self._cache  # type: ignore[return-value]

    def rebuild(self, *, progress: Progress | None = None) -> SyncReport:
        """Re-index the namespace from the Markdown in one transaction, holding its
        advisory lock: other writers of the namespace wait, readers see the old rows."""
        self._require_writable()
        conn = self.store.connection
        try:
            with pg.advisory_lock(conn, self.settings.namespace_name), conn.transaction():
                self.store.clear()
                return sync(self.settings, self.store, self.cache, self.embedder, progress=progress)
        except Exception as exc:
            _raise_user_error(exc, self.settings)
            raise

    def search(self, query: str, **options: Any) -> list[SearchResult]:  # type: ignore[override]
        """As ``MemoryIndex.search``; a connection the server dropped (a restart) is
        replaced once before the error reaches the caller (a long-lived MCP reader)."""
        try:
            return super().search(query, **options)
        except StorageError:
            if not self.store.lost_connection():
                raise
            log.info("the PostgreSQL connection was lost; reconnecting")
            return super().search(query, **options)

    def get_stored(self, namespace: str, target: str) -> tuple[str, int, int, list[str]]:
        """Lines of a file of another namespace (another host's Markdown), from the
        text the server stores: (path, start, end, lines); lines between chunks are blank."""
        path, start, end = parse_target(target)
        chunks = self.store.stored_lines(namespace, path)
        if chunks is None:
            raise PathError(f"{path}: not indexed in namespace {namespace!r}")
        total = max((last for _, last, _ in chunks), default=0)
        lines = [""] * total
        for first, last, text in chunks:
            lines[first - 1 : last] = text.split("\n")[: last - first + 1]
        if start is None:  # the whole file
            start, end = 1, total
        else:  # PATH:N is one line, PATH:START-END a range (cut at the last stored line)
            end = start if end is None else min(end, total)
        if start < 1 or start > max(total, 1) or end < start:
            raise PathError(f"{target}: {path} has {total} stored lines in namespace {namespace!r}")
        return path, start, end, lines[start - 1 : end]

    def _engine_status(self) -> dict[str, Any]:
        return {
            "engine": "postgresql",
            "namespace": self.settings.namespace_name,
            "namespaces": self.store.namespaces(),
            "index_bytes": self.store.size_bytes(),
            "schema_version": pg.SCHEMA_VERSION,
        }

    def _vector_search_name(self) -> str:
        return "pgvector-hnsw"

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._cache is not None:
            self._cache.close()
        self.store.close()

    def replaced_on_disk(self) -> bool:
        return False  # the server's tables are not a file another process can swap

    def replace_damaged(self, reason: str, *, progress: Progress | None = None) -> SyncReport:
        """Rows that do not match their Markdown (``check --repair``): rebuild the namespace."""
        log.warning("rebuilding namespace %s from the Markdown: %s", self.settings.namespace_name, one_line(reason))
        report = self.rebuild(progress=progress)
        self.recovered_from = reason
        return report

    def _recover(self, problem: BaseException | str, *, progress: Progress | None = None) -> SyncReport:
        raise problem if isinstance(problem, BaseException) else StorageError(one_line(problem))

    def _snapshot(self) -> Any:
        return self.store.read_snapshot()

    def _uses_vec0(self) -> bool:
        return self.store.vec_dimensions() is not None

    def _vector_source(self) -> VectorSource:
        self.vector_searches += 1
        return Vec0Vectors(self.store)  # the server's HNSW index (store.vector_candidates)


def open_pg(settings: Settings, *, write: bool, embedder: Embedder | None) -> PgMemoryIndex:
    """This root's namespace on the server (``open_index`` holds the writer lock);
    ``write=True`` creates or migrates the schema and the namespace."""
    store = PgStore(
        settings.database_url or "", namespace=settings.namespace_name, host=settings.host, write=write,
        search_namespaces=settings.search_namespaces,
    )  # fmt: skip
    return PgMemoryIndex(settings, store, embedder=embedder, writable=write)  # type: ignore[arg-type]


__all__ = ["PgMemoryIndex", "open_pg"]
