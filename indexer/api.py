"""The Python API: open an index, sync it, search it, read lines back.

    from indexer import make_settings, open_index
    settings = make_settings("~/assistant-memory")
    with open_index(settings, write=True) as index:
        index.sync()
    with open_index(settings) as index:
        for hit in index.search("what editor do I use"):
            print(hit.path, hit.start_line, hit.end_line, hit.snippet)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from indexer.config.settings import CHUNKER_VERSION, Settings
from indexer.embedding.models import Embedder, LazyEmbedder
from indexer.errors import one_line
from indexer.indexing.recovery import acquire_lock, file_identity, lock_for_recovery, replace_damaged
from indexer.indexing.report import Progress, SyncReport
from indexer.indexing.sync import configuration_change, sync
from indexer.retrieval.budget import Budget
from indexer.retrieval.filters import SearchFilters
from indexer.retrieval.search import (
    CANDIDATES,
    MODES,
    Mode,
    NumpyVectors,
    SearchResult,
    Vec0Vectors,
    VectorSource,
    budget_candidates,
    run_search,
)  # fmt: skip
from indexer.retrieval.stages import DEFAULT_RANKING, Ranking
from indexer.retrieval.vectors import LiveMatrix, Prefetched
from indexer.sources.read import Lines, read_target
from indexer.store import EmbeddingCache, IndexStore, Store
from indexer.store.postgres import connection as pg
from indexer.store.sqlite import connection as db
from indexer.store.sqlite import rebuild
from indexer.watch.state import watcher_status

from .errors import ConfigError, ModelError, UnusableIndex

log = logging.getLogger(__name__)

# The vector search (counted per open index) from which every vector is kept in memory.
MATRIX_FROM_SEARCH = 2
MAX_LIMIT = 1000  # results per search (the CLI's --limit has the same bound)
# What one search returns by default: about a screenful, what an assistant can
# read per question without crowding out the conversation (~1,500 tokens of
# notes or chat lines), and room for 10-15 short hits or 3-5 note sections.
DEFAULT_BUDGET_LINES = 50
DEFAULT_LIMIT = 10  # results without a budget
MAX_RESULTS = 100  # results with a budget and no limit


def _raise_user_error(exc: BaseException, settings: Settings | None = None) -> None:
    """Disk full, read-only index, I/O error, server down: a one-line error instead of the
    engine's exception (naming the server's URL, without its password)."""
    error = db.as_user_error(exc) or pg.user_error(exc, settings.database_url if settings else None)
    if error is not None:
        raise error from exc


class MemoryIndex:
    """An open index. Use through ``open_index``."""

    def __init__(
        self, settings: Settings, store: IndexStore, *, embedder: Embedder | None, writable: bool = False
    ) -> None:
        self.settings = settings
        self.writable = writable
        self.store = store
        self.recovered_from: str | None = None  # why the index was rebuilt when opened, if it was
        self._identity = file_identity(settings.index_path)  # to notice another process replacing it
        self._embedder = embedder
        self._cache: EmbeddingCache | None = None
        self._matrix: LiveMatrix | None = None  # every vector in memory, once searched twice
        self.vector_searches = 0
        self._executor: ThreadPoolExecutor | None = None

    # -- components, created on first use -----------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:  # knows the model from its files; loads weights on the first embed
            self._embedder = make_embedder(self.settings)
        return self._embedder

    @property
    def cache(self) -> EmbeddingCache:
        if self._cache is None:
            embedder = self.embedder
            self._cache = EmbeddingCache(
                self.settings.cache_path, model_id=embedder.model_id, dimensions=embedder.dimensions
            )
        return self._cache

    # -- operations -----------------------------------------------------------
    def sync(
        self, *, progress: Progress | None = None, paths: Iterable[str] | None = None, rehash: bool = False
    ) -> SyncReport:
        """Bring the index up to date with all memory files, or only ``paths``
        (root-relative files or folders). ``rehash`` reads and hashes every
        file even when its stat is unchanged.

        A changed model or chunker means every chunk is embedded again: that
        happens as a rebuild beside the index, so searches keep working on the
        old one meanwhile. A damaged index is moved aside and rebuilt.
        """
        self._require_writable()
        try:
            reason = configuration_change(self.store.meta(), self.embedder)
            if reason:
                message = one_line(f"re-embedding every chunk: {reason}")
                log.warning("%s", message)
                report = self.rebuild(progress=progress)
                report.full_reembed_reason = reason
                report.warnings.insert(0, message)
                return report
            report = sync(
                self.settings, self.store, self.cache, self.embedder, progress=progress, paths=paths, rehash=rehash
            )
        except Exception as exc:
            if not db.is_damage(exc):
                _raise_user_error(exc, self.settings)
                raise
            return self._recover(exc, progress=progress)
        return report  # the live matrix follows this connection's own writes (vectors.LiveMatrix)

    def rebuild(self, *, progress: Progress | None = None) -> SyncReport:
        """Build a complete index from the Markdown beside this one, then swap it in atomically."""
        self._require_writable()
        built, report = rebuild.build_beside(self.settings, self.cache, self.embedder, progress=progress)
        try:
            db.copy_into(self.store.connection, built.connection)
        except Exception as exc:
            rebuild.discard(built, self.settings.index_path)
            if not db.is_damage(exc):
                _raise_user_error(exc, self.settings)
                raise
            return self._recover(exc, progress=progress)
        rebuild.discard(built, self.settings.index_path)
        self._matrix = None
        return report

    def search(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        limit: int | None = None,
        budget_lines: int | None = DEFAULT_BUDGET_LINES,
        budget_tokens: int | None = None,
        filters: SearchFilters | None = None,
        ranking: Ranking | None = DEFAULT_RANKING,
    ) -> list[SearchResult]:
        """The best results for ``query``, in rank order until ``budget_lines`` lines
        (and ``budget_tokens`` estimated tokens, if given) are filled: adjacent hits
        of a file merge into one result, an oversized one is trimmed to its best lines.
        ``limit`` caps the number of results (default: as many as the budget holds,
        or 10 without a budget). ``budget_lines=None`` (and no token budget) returns
        whole chunks, one result each. ``filters`` (``make_filters(...)``) narrow the
        candidates. ``ranking`` selects the re-ranking stages after fusion (rank.py;
        None: fusion alone), for experiments."""
        if not isinstance(query, str):
            raise ConfigError(f"the query must be a str, not {type(query).__name__}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT):
            raise ConfigError(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {limit!r}")
        for name, value in (("budget_lines", budget_lines), ("budget_tokens", budget_tokens)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{name} must be a whole number, not {value!r}")
        options = dict(
            mode=mode, limit=limit, budget_lines=budget_lines, budget_tokens=budget_tokens, filters=filters,
            ranking=ranking,
        )  # fmt: skip
        try:
            return self._search(query, **options)  # type: ignore[arg-type]
        except Exception as exc:
            if not db.is_damage(exc):
                _raise_user_error(exc, self.settings)
                raise
            self._recover(exc)
        return self._search(query, **options)  # type: ignore[arg-type]  # once: a second failure is raised

    def _search(
        self,
        query: str,
        *,
        mode: Mode,
        limit: int | None,
        budget_lines: int | None,
        budget_tokens: int | None,
        filters: SearchFilters | None,
        ranking: Ranking | None,
    ) -> list[SearchResult]:
        if mode not in MODES:
            raise ConfigError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
        for name, value in (("budget_lines", budget_lines), ("budget_tokens", budget_tokens)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, or None for no such budget")
        budget = None if budget_lines is None and budget_tokens is None else Budget(budget_lines, budget_tokens)
        if limit is None:
            limit = MAX_RESULTS if budget is not None else DEFAULT_LIMIT
        # Command lines may carry bytes that are not UTF-8 (as lone surrogates).
        query = query.encode("utf-8", "replace").decode("utf-8")
        query_vector = None
        if mode != "keyword" and self.store.meta().get("model"):
            self._check_model()
            query_vector = self.embedder.embed([query])[0]
        with self._snapshot():  # one read snapshot: ids found are the ids read back
            vectors = self._vector_source() if query_vector is not None else None
            if mode == "hybrid" and isinstance(vectors, NumpyVectors) and not (filters and filters.narrows_candidates):
                pool = max(CANDIDATES, limit, budget_candidates(budget) if budget is not None else 0)
                vectors = Prefetched(vectors, self._worker(), query_vector, pool)  # overlaps the keyword query
            return run_search(
                self.store, query, mode=mode, limit=limit, query_vector=query_vector, vectors=vectors, filters=filters,
                budget=budget, ranking=ranking,
            )

    def get(self, target: str) -> Lines:
        return read_target(self.settings.root, target, max_bytes=self.settings.max_file_bytes)

    def status(self) -> dict[str, Any]:
        meta = self.store.meta()
        counts = self.store.counts_by_kind()
        return {
            "root": str(self.settings.root),
            "index_path": self.settings.index_location,
            **self._engine_status(),
            "files": sum(c["files"] for c in counts.values()),
            "chunks": sum(c["chunks"] for c in counts.values()),
            "by_kind": counts,
            "model": meta.get("model"),
            "dimensions": int(meta["dimensions"]) if "dimensions" in meta else None,
            "chunker_version": meta.get("chunker_version"),
            "vector_search": self._vector_search_name(),
            "last_sync": float(meta["last_sync"]) if "last_sync" in meta else None,
            "watcher": watcher_status(self.settings.status_path.parent, self.settings.status_path.name),
            "skipped": [{"path": path, "reason": f.reason} for path, f in sorted(self.store.skipped_files().items())],
        }

    def search_info(self) -> dict[str, Any]:
        """The model the index was built with and how vector search runs (cheap; for each search)."""
        return {"model": self.store.meta().get("model"), "vector_search": self._vector_search_name()}

    def _engine_status(self) -> dict[str, Any]:
        """What ``status`` says about the storage engine."""
        sizes = [
            p.stat().st_size
            for p in (self.settings.index_path, Path(f"{self.settings.index_path}-wal"), self.settings.cache_path)
            if p.exists()
        ]
        return {"index_bytes": sum(sizes), "schema_version": db.SCHEMA_VERSION}

    def _vector_search_name(self) -> str:
        return "sqlite-vec" if self._uses_vec0() else "numpy"

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.store.connection.close()
        if self._cache is not None:
            self._cache.close()

    # -- recovery -----------------------------------------------------------------
    def replace_damaged(self, reason: str, *, progress: Progress | None = None) -> SyncReport:
        """Move this index aside (kept for inspection) and rebuild it from the Markdown."""
        self._require_writable()
        return self._recover(reason, progress=progress)

    def _recover(self, problem: BaseException | str, *, progress: Progress | None = None) -> SyncReport:
        """SQLite found the index damaged in the middle of a run: rebuild it from
        the Markdown beside it, move the damaged file aside, carry on with the new one.
        If the rebuild fails, the damaged file stays open and in place."""
        reason = one_line(str(problem)) or type(problem).__name__
        released = False

        def release() -> None:
            nonlocal released
            self.store.connection.close()
            released = True

        try:
            if self.writable:
                report = replace_damaged(
                    self.settings, reason, self.embedder, cache=self.cache, progress=progress, release=release
                )
            else:
                with lock_for_recovery(self.settings, reason, seen=self._identity) as still_damaged:
                    if still_damaged:
                        report = replace_damaged(
                            self.settings, reason, self.embedder, cache=self.cache, progress=progress, release=release
                        )
                    else:  # another process has just rebuilt it
                        release()
                        report = SyncReport()
        finally:
            if released:
                connect = db.connect if self.writable else db.connect_reader
                opened = connect(self.settings.index_path, load_vec=self.settings.use_sqlite_vec)
                self.store = Store(opened.connection, vec_enabled=opened.vec_loaded)
                self._identity = file_identity(self.settings.index_path)
                self._matrix = None
        self.recovered_from = reason
        return report

    def replaced_on_disk(self) -> bool:
        """True when the index file is no longer the one this index has open
        (deleted, or replaced by something other than this index's own recovery)."""
        return file_identity(self.settings.index_path) != self._identity

    # -- helpers ----------------------------------------------------------------
    def _snapshot(self) -> Any:
        return self.store.connection  # ``with connection:`` is one SQLite transaction

    def _require_writable(self) -> None:
        if not self.writable:
            raise ConfigError("this index was opened for reading; use open_index(settings, write=True) to change it")

    def _check_model(self) -> None:
        meta = self.store.meta()
        wanted = self.embedder.model_id
        if meta.get("model") != wanted or meta.get("chunker_version") != str(CHUNKER_VERSION):
            raise ModelError(
                f"the index was built with model {meta.get('model')} (chunker {meta.get('chunker_version')}), "
                f"but {wanted} (chunker {CHUNKER_VERSION}) is configured; run 'memdex index' to re-embed"
            )

    def _uses_vec0(self) -> bool:
        return (
            self.store.vec_enabled
            and self.store.vec_dimensions() is not None
            and self.store.meta().get("vec_stale") != "1"
        )

    def _vector_source(self) -> VectorSource:
        """vec0 for a process's first vector search (a one-shot command: loading every
        vector would cost more than one vec0 scan); from the second on, an exact scan of
        the in-memory matrix, kept current (vectors.LiveMatrix). Without sqlite-vec, the
        matrix from the embedding cache."""
        self.vector_searches += 1
        vec0 = self._uses_vec0()
        if vec0 and self._matrix is None and self.vector_searches < MATRIX_FROM_SEARCH:
            return Vec0Vectors(self.store)
        if self._matrix is None:
            self._matrix = LiveMatrix(int(self.store.meta().get("dimensions") or self.embedder.dimensions))
        return self._matrix.current(self.store, self.store.vectors_by_pairs if vec0 else self._cached_vectors)

    def vector_matrix(self) -> NumpyVectors:
        """The in-memory matrix of every vector as of now (loaded or brought up to date)."""
        self.vector_searches = max(self.vector_searches, MATRIX_FROM_SEARCH - 1)
        with self._snapshot():
            source = self._vector_source()
        assert isinstance(source, NumpyVectors)
        return source

    def _worker(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memdex-vectors")
        return self._executor

    def _cached_vectors(self, pairs: Sequence[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray]:
        found = self.cache.get_many(digest for _, digest in pairs)
        usable = [(cid, digest) for cid, digest in pairs if digest in found]
        rows = [found[digest] for _, digest in usable]
        matrix = np.stack(rows) if rows else np.zeros((0, self.embedder.dimensions), dtype=np.float32)
        return np.asarray([cid for cid, _ in usable], dtype=np.int64), matrix


def make_embedder(settings: Settings) -> Embedder:
    return LazyEmbedder(
        settings.model, batch_size=settings.embed_batch_size, backend=settings.backend,
        query_threads=settings.query_threads, bulk_threads=settings.embed_threads,
    )  # fmt: skip


@contextmanager
def open_index(
    settings: Settings, *, write: bool = False, embedder: Embedder | None = None, recover: bool = True
) -> Iterator[MemoryIndex]:
    """Open the index; ``write=True`` takes the single-writer lock and creates/migrates it.

    An index that is corrupt, truncated, not a database or from a newer
    memdex is moved aside and rebuilt from the Markdown (one warning), unless
    ``recover=False`` (then ``UnusableIndex`` is raised, e.g. for ``check``).
    """
    if not settings.database_url:
        # Refuse a --db (or its cache) that memdex did not make before creating anything beside it.
        db.ownership(settings.index_path, kind=db.INDEX)
        db.ownership(settings.cache_path, kind=db.CACHE)
    # One writer per root (and, with PostgreSQL, per host): the lock file beside the index.
    lock = acquire_lock(settings.lock_path, status_path=settings.status_path) if write else None
    try:
        try:
            if settings.database_url:
                from indexer.store.postgres.index import open_pg  # psycopg only when a server is configured

                index: MemoryIndex = open_pg(settings, write=write, embedder=embedder)
            else:
                if write:
                    rebuild.remove_leftovers(settings.index_path)
                index = _open(settings, write=write, embedder=embedder, recover=recover)
        except Exception as exc:
            _raise_user_error(exc, settings)
            raise
        try:
            yield index
        finally:
            index.close()
    finally:
        if lock is not None:
            lock.close()


def _open(settings: Settings, *, write: bool, embedder: Embedder | None, recover: bool) -> MemoryIndex:
    connect = db.connect if write else db.connect_reader
    recovered_from = None
    seen = file_identity(settings.index_path)
    try:
        opened = connect(settings.index_path, load_vec=settings.use_sqlite_vec)
    except UnusableIndex as exc:
        if not recover:
            raise
        recovered_from = str(exc)
        if embedder is None:  # the rebuild needs the model; the index then keeps it
            embedder = make_embedder(settings)
        if write:
            replace_damaged(settings, recovered_from, embedder)
        else:
            with lock_for_recovery(settings, recovered_from, seen=seen) as still_damaged:
                if still_damaged:
                    replace_damaged(settings, recovered_from, embedder)
        opened = connect(settings.index_path, load_vec=settings.use_sqlite_vec)
    if opened.vec_warning:
        log.warning("%s", opened.vec_warning)
    index = MemoryIndex(settings, Store(opened.connection, vec_enabled=opened.vec_loaded), embedder=embedder, writable=write)
    index.recovered_from = recovered_from
    return index
