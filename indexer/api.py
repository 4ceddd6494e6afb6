"""The Python API: open an index, sync it, search it, read lines back.

    from indexer import make_settings, open_index
    settings = make_settings("~/assistant-memory")
    with open_index(settings, write=True) as index:
        index.sync()
    with open_index(settings) as index:
        for hit in index.search("what editor do I use"):
            print(hit.path, hit.start_line, hit.end_line, hit.snippet)

``MemoryIndex`` composes a storage engine (``store.registry`` picks it from the
settings): the same sync, search, rebuild and recovery run on every engine.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from indexer.config.settings import (  # the budget defaults: also importable from here (bench)
    CHUNKER_VERSION, DEFAULT_BUDGET_LINES, DEFAULT_BUDGET_TOKENS, Settings,  # noqa: F401
)  # fmt: skip
from indexer.embedding.configured import make_embedder
from indexer.embedding.http_client import EndpointError
from indexer.embedding.protocol import Embedder
from indexer.indexing.lock import lock_root
from indexer.indexing.rebuild import FromMarkdown
from indexer.indexing.report import Progress, SyncReport
from indexer.indexing.sync import configuration_change, keyword_index_only, rebuild_message, sync
from indexer.indexing.status import index_status
from indexer.indexing.tail import index_bound
from indexer.retrieval.budget import Budget
from indexer.retrieval.filters import SearchFilters
from indexer.retrieval.options import DEFAULT_LIMIT, MAX_LIMIT, MAX_RESULTS, checked_search  # noqa: F401 - re-exported
from indexer.retrieval.search import CANDIDATES, Mode, NumpyVectors, SearchResult, budget_candidates, run_search
from indexer.retrieval.stages import DEFAULT_RANKING, Ranking
from indexer.retrieval.warm import MATRIX_FROM_SEARCH, VectorPath, once  # noqa: F401 - MATRIX_FROM_SEARCH re-exported
from indexer.sources.read import Lines, parse_target, read_target, stored_range
from indexer.store import Engine, IndexStore, VectorCache, registry

from .errors import ConfigError, IndexerError, ModelError, PathError, one_line

log = logging.getLogger(__name__)



class MemoryIndex:
    """An open index. Use through ``open_index``."""

    def __init__(self, settings: Settings, engine: Engine, *, embedder: Embedder | None, writable: bool = False) -> None:
        self.settings = settings
        self.writable = writable
        self.engine = engine
        self.recovered_from = engine.recovered_from  # why the index was rebuilt when opened, if it was
        self._embedder = embedder
        self._cache: VectorCache | None = None
        # vector sources: the engine's index, then (searched twice) the matrix; the worker thread
        self._vectors = VectorPath(engine, dimensions=lambda: self.embedder.dimensions, cache=lambda: self.cache)
        # Why the last search answered with keyword results only although another mode was
        # asked for (a remote embedding endpoint was down), or None: front ends show it.
        self.degraded: str | None = None

    # -- components, created on first use -----------------------------------
    @property
    def store(self) -> IndexStore:
        """The engine's rows (a repair may replace them: never keep a reference)."""
        return self.engine.store

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:  # knows the model from its files; loads weights on the first embed
            self._embedder = make_embedder(self.settings)
        return self._embedder

    @property
    def cache(self) -> VectorCache:
        if self._cache is None:
            embedder = self.embedder
            self._cache = self.engine.open_cache(model_id=embedder.model_id, dimensions=embedder.dimensions)
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
            meta = self.store.meta()
            reason = configuration_change(meta, self.embedder)
            if reason:
                keyword_only = keyword_index_only(meta, self.embedder)
                message = one_line(
                    f"rebuilding the index once from the embedding cache: keyword search now splits Chinese, "
                    f"Japanese and Korean text into words ({reason})"
                    if keyword_only
                    else rebuild_message(reason)
                )
                log.warning("%s", message)
                report = self.rebuild(progress=progress)
                report.full_reembed_reason = None if keyword_only else reason
                report.warnings.insert(0, message)
                return report
            report = sync(
                self.settings, self.store, self.cache, self.embedder, progress=progress, paths=paths, rehash=rehash
            )
        except Exception as exc:
            if not self.engine.is_damage(exc):
                self._raise_user_error(exc)
                raise
            return self._recover(exc, progress=progress)
        return report  # the live matrix follows this connection's own writes (vectors.LiveMatrix)

    def rebuild(self, *, progress: Progress | None = None) -> SyncReport:
        """Build a complete index from the Markdown and put it in place at once
        (searches answer from the old one until then)."""
        self._require_writable()
        try:
            report = self.engine.rebuild(self._build(progress), self.cache)
        except Exception as exc:
            if not self.engine.is_damage(exc):
                self._raise_user_error(exc)
                raise
            return self._recover(exc, progress=progress)
        self._vectors.forget()
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
        or ``budget_tokens`` estimated tokens are filled, whichever comes first: adjacent hits
        of a file merge into one result, an oversized one is trimmed to its best lines, and a
        line too long for the tokens left is shown as its best part (``SearchResult.excerpt``).
        ``budget_tokens=None`` is ``DEFAULT_BUDGET_TOKENS`` with a line budget (none without
        one); 0 is no token bound.
        ``limit`` caps the number of results (default: as many as the budget holds,
        or 10 without a budget). ``budget_lines=None`` (and no token budget) returns
        whole chunks, one result each. ``filters`` (``make_filters(...)``) narrow the
        candidates. ``ranking`` selects the re-ranking stages after fusion (retrieval/stages.py;
        None: fusion alone), for experiments."""
        query, limit, budget = checked_search(
            query, mode=mode, limit=limit, budget_lines=budget_lines, budget_tokens=budget_tokens
        )
        # The query's vector (or its endpoint's failure) is kept across the runs of one search:
        # a run again (PostgreSQL's changed state, a reconnect, a recovery) embeds nothing again.
        options = dict(mode=mode, limit=limit, budget=budget, filters=filters, ranking=ranking, embedded={})
        try:
            return self._search_or_recover(query, options)
        except IndexerError as exc:
            if not self._vectors.run_again(exc):  # a server that dropped the connection, a changed state
                raise
        return self._search_or_recover(query, options)  # once: a second failure is raised

    def _search_or_recover(self, query: str, options: dict[str, Any]) -> list[SearchResult]:
        try:
            return self._search(query, **options)
        except Exception as exc:
            if not self.engine.is_damage(exc):
                self._raise_user_error(exc)
                raise
            self._recover(exc)
        return self._search(query, **options)  # once: a second failure is raised

    def _search(
        self,
        query: str,
        *,
        mode: Mode,
        limit: int,
        budget: Budget | None,
        filters: SearchFilters | None,
        ranking: Ranking | None,
        embedded: dict[str, Any],
    ) -> list[SearchResult]:
        self.degraded = None
        if ranking is not None and self.settings.rerank_url and not ranking.rerank_url:
            ranking = replace(
                ranking, rerank_url=self.settings.rerank_url, rerank_model=self.settings.rerank_model or "",
                rerank_top=self.settings.rerank_top,
            )  # fmt: skip
        query_vector = None
        narrowed = filters is not None and filters.narrows_candidates
        embed_query = getattr(self.embedder, "embed_query", None)  # a remote model: a short wait
        # A warm process's local model embeds the query on the worker thread, then scans the
        # matrix there, while this thread runs the keyword query (both release the GIL). Not a
        # remote model: one that is down turns the search into a keyword search, decided first.
        embed_later = (
            mode == "hybrid" and self._vectors.warm and not narrowed
            and not getattr(self.embedder, "remote", embed_query is not None)  # asked last: it may load a model
        )  # fmt: skip

        def embed() -> np.ndarray:  # once per search, whichever thread and run asks first
            return once(embedded, lambda: embed_query(query) if embed_query is not None else self.embedder.embed([query])[0])

        # PostgreSQL: meta as its last search read it, checked by this search's snapshot (no round
        # trip). What the search would stop on (no model yet, another model) is read again first.
        meta = self.store.search_meta() if mode != "keyword" else {}
        if mode != "keyword" and (not meta.get("model") or not self._model_matches(meta)):
            meta = self.store.search_meta(fresh=True)
        if meta.get("model"):
            self._check_model(meta)
            try:
                if not embed_later:
                    query_vector = embed()
            except EndpointError as exc:  # a remote model that is down: keyword results, flagged, never silently
                log.warning("%s; keyword results only", exc)
                self.degraded, mode = f"{exc}; keyword results only", "keyword"
        else:
            embed_later = False

        with self.engine.search_snapshot():  # one read snapshot: ids found are the ids read back
            vectors = self._vectors.source() if query_vector is not None or embed_later else None
            pool = max(CANDIDATES, limit, budget_candidates(budget) if budget is not None else 0)
            if vectors is not None and mode == "hybrid" and not narrowed:  # beside the keyword query
                vectors, query_vector = self._vectors.started(
                    vectors, query_vector=query_vector, embed=embed if embed_later else None, k=pool
                )
            return run_search(
                self.store, query, mode=mode, limit=limit, query_vector=query_vector, vectors=vectors, filters=filters,
                budget=budget, ranking=ranking,
            )

    def get(self, target: str) -> Lines:
        return read_target(
            self.settings.root, target, max_bytes=self.settings.max_file_bytes,
            sessions=self.settings.session_labels, session_tools=self.settings.session_tools,
            session_max_bytes=index_bound(self.settings, self.store.meta()),  # the bound its lines were indexed within
        )  # fmt: skip

    def get_stored(self, namespace: str, target: str) -> tuple[str, int, int, list[str]]:
        """Lines of a file of another namespace (another host's Markdown, PostgreSQL),
        from the text the engine stores: (path, start, end, lines); lines between chunks are blank."""
        path = parse_target(target)[0]
        chunks = self.engine.stored_lines(namespace, path)
        if chunks is None:
            raise PathError(f"{path}: not indexed in namespace {namespace!r}")
        return stored_range(target, chunks, namespace)

    def status(self) -> dict[str, Any]:
        return index_status(self.settings, self.engine)

    def prepare_model(self) -> None:
        """Before a first index or a full re-embed with no embedding cache to reuse (the runs
        that embed every chunk), do the model's one-time preparation (the ONNX export) now,
        e.g. before a progress bar starts. Nothing when it is done already, and nothing when the
        sync may embed nothing (then it loads nothing; if it does embed, the export is made then)."""
        prepare = getattr(self.embedder, "prepare", None)
        if prepare is None or getattr(self.embedder, "prepared", False):
            return
        meta = self.store.meta()
        if "model" in meta and (not configuration_change(meta, self.embedder) or keyword_index_only(meta, self.embedder)):
            return  # an index of this model: a sync embeds only what changed, if anything
        if self._cache is None:
            embedder = self.embedder
            self._cache = self.engine.existing_cache(model_id=embedder.model_id, dimensions=embedder.dimensions)
        if self._cache is None:  # no vectors to reuse: every chunk goes through the model
            prepare()

    def search_info(self) -> dict[str, Any]:
        """The model the index was built with and how vector search runs (cheap; for each search)."""
        return {"model": self.store.meta().get("model"), "vector_search": self.engine.vector_search_name()}

    def close(self) -> None:
        self._vectors.close()
        if self._cache is not None:
            self._cache.close()
        self.engine.close()

    # -- recovery -----------------------------------------------------------------
    def replace_damaged(self, reason: str, *, progress: Progress | None = None) -> SyncReport:
        """Replace this index with one built from the Markdown (``check --repair``);
        SQLite keeps the damaged file beside it for inspection."""
        self._require_writable()
        return self._recover(reason, progress=progress)

    def _recover(self, problem: BaseException | str, *, progress: Progress | None = None) -> SyncReport:
        """The engine found the index damaged in the middle of a run: it rebuilds it
        from the Markdown and carries on with the new one."""
        reason = one_line(str(problem)) or type(problem).__name__
        report = self.engine.repair(reason, self._build(progress), self.cache, writable=self.writable)
        self._vectors.forget()
        self.recovered_from = reason
        return report if report is not None else SyncReport()  # None: another process had repaired it

    def replaced_on_disk(self) -> bool:
        """True when the index is no longer the one this index has open
        (deleted, or replaced by something other than this index's own recovery)."""
        return self.engine.replaced_on_disk()

    # -- helpers ----------------------------------------------------------------
    def _build(self, progress: Progress | None) -> FromMarkdown:
        return FromMarkdown(self.settings, self.embedder, progress)

    def _raise_user_error(self, exc: BaseException) -> None:
        """Disk full, read-only index, I/O error, server down: a one-line error
        instead of the engine's exception."""
        error = self.engine.user_error(exc)
        if error is not None:
            raise error from exc

    def _require_writable(self) -> None:
        if not self.writable:
            raise ConfigError("this index was opened for reading; use open_index(settings, write=True) to change it")

    def _model_matches(self, meta: dict[str, str]) -> bool:
        return meta.get("model") == self.embedder.model_id and meta.get("chunker_version") == str(CHUNKER_VERSION)

    def _check_model(self, meta: dict[str, str]) -> None:
        wanted = self.embedder.model_id
        if not self._model_matches(meta):
            raise ModelError(
                f"the index was built with model {meta.get('model')} (chunker {meta.get('chunker_version')}), "
                f"but {wanted} (chunker {CHUNKER_VERSION}) is configured; run 'memdex index' to re-embed"
            )

    def vector_matrix(self) -> NumpyVectors:
        """The in-memory matrix of every vector as of now (loaded or brought up to date)."""
        return self._vectors.matrix_now()


@contextmanager
def open_index(
    settings: Settings,
    *,
    write: bool = False,
    embedder: Embedder | None = None,
    recover: bool = True,
    replace_newer: bool = False,
) -> Iterator[MemoryIndex]:
    """Open the index; ``write=True`` takes the single-writer lock and creates/migrates it.

    An index that is corrupt, truncated or not a database is moved aside and
    rebuilt from the Markdown (one warning), unless ``recover=False`` (then
    ``UnusableIndex`` is raised, e.g. for ``check``). An index from a newer
    memdex raises ``NewerIndex`` and is left as it is; with ``write`` and
    ``replace_newer`` (``memdex rebuild``) a SQLite one is moved aside, kept, and rebuilt.
    """
    registry.refuse_foreign_files(settings)
    # One writer per root (and, with PostgreSQL, per host): the lock file beside the index.
    lock = lock_root(settings) if write else None
    try:
        try:
            index = _open(settings, write=write, embedder=embedder, recover=recover, replace_newer=replace_newer)
        except Exception as exc:
            error = registry.user_error(exc, settings)
            if error is not None:
                raise error from exc
            raise
        try:
            yield index
        finally:
            index.close()
    finally:
        if lock is not None:
            lock.close()


def _open(
    settings: Settings, *, write: bool, embedder: Embedder | None, recover: bool, replace_newer: bool
) -> MemoryIndex:
    made: list[Embedder] = [embedder] if embedder is not None else []

    def make_build() -> FromMarkdown:  # only when an unusable index must be rebuilt on the way
        if not made:
            made.append(make_embedder(settings))  # the rebuild needs the model; the index then keeps it
        return FromMarkdown(settings, made[0])

    engine = registry.open_engine(
        settings, write=write, take_lock=lambda: lock_root(settings), make_build=make_build if recover else None,
        replace_newer=replace_newer,
    )  # fmt: skip
    return MemoryIndex(settings, engine, embedder=made[0] if made else None, writable=write)
