"""The storage seam: what sync, search and the API ask of an engine.

- ``IndexStore``: one memory root's rows (files, chunks, keyword and vector
  indexes), read and written through the engine's own SQL.
- ``VectorCache``: (model, embedded-text hash) -> vector, so a text is embedded once.
- ``Engine``: an open index as a whole: its store, its cache, how it is
  rebuilt, repaired, checked and described, and how its errors read.
- ``Build``: what the indexing layer hands an engine to fill a fresh, empty
  store from the Markdown (the engine decides where that store lives and how
  it takes the old one's place).

Engine-neutral: nothing here imports an engine or its library. The registry
(``registry.py``) is the only module outside the engines that names one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

import numpy as np

from indexer.errors import IndexerError
from indexer.retrieval.filters import SearchFilters
from indexer.sources.base import Chunk
from indexer.sources.discover import FileStamp

from .records import ChunkRow, FileRecord, FileState, SearchedHashes, SkippedFile

Report = TypeVar("Report", covariant=True)
TakeLock = Callable[[], Any]  # takes the root's writer lock (a handle to close), or raises LockedError


class IndexStore(Protocol):
    """One memory root's index as sync, search and the API see it."""

    vec_enabled: bool

    def read_snapshot(self) -> AbstractContextManager[None]: ...
    def meta(self) -> dict[str, str]: ...
    # A search's meta, before its read snapshot: ``meta()``, or (a server) as the last search read
    # it, checked by the snapshot; ``fresh``: read from the index now (what the search would stop on).
    def search_meta(self, *, fresh: bool = False) -> dict[str, str]: ...
    # One transaction; a value of None removes its key.
    def set_meta(self, **values: str | int | float | None) -> None: ...
    def file_states(self, under: Iterable[str] | None = None) -> dict[str, FileState]: ...
    def skipped_files(self, under: Iterable[str] | None = None) -> dict[str, SkippedFile]: ...
    def record_skipped(self, path: str, stamp: FileStamp, *, reason: str, skipped_at_ns: int) -> None: ...
    def forget_skipped(self, path: str) -> None: ...
    def touch_file(self, path: str, stamp: FileStamp, *, indexed_at_ns: int) -> None: ...
    def replace_file(
        self, record: FileRecord, chunks: Sequence[Chunk], vectors: np.ndarray, *, indexed_at_ns: int,
        keep_before: int | None = None,
    ) -> None: ...
    def bulk_load(self, *, files: int) -> AbstractContextManager[None]:
        """Around a sync's writes of ``files`` files (an engine may load in bulk)."""
        ...
    def commit_batch(self) -> None:
        """Before a sync waits for the model: commit files a bulk load holds uncommitted."""
        ...
    def last_chunk_start(self, path: str) -> int | None: ...
    def files_over(self, kind: str, size: int) -> dict[str, str]:
        """Indexed files of ``kind`` whose (this writer's) size is over ``size``: path -> hash."""
        ...
    def invalidate_files(self, paths: Sequence[str]) -> None: ...
    def remove_file(self, path: str) -> None: ...
    def clear(self) -> None: ...
    def rebuild_vectors(self, dimensions: int, vectors_by_hash: dict[str, np.ndarray]) -> None: ...
    def vec_dimensions(self) -> int | None: ...
    def chunk_hashes(self) -> list[tuple[int, str]]: ...
    # The searched chunks' (the matrix's rows); ``since``: a ``data_version`` the matrix is
    # at (an engine may then send only what changed since; SQLite sends every chunk).
    def search_chunk_hashes(self, since: Any = None) -> SearchedHashes: ...
    def keyword_candidates(
        self, terms: Sequence[str], limit: int, *, filters: SearchFilters | None = None
    ) -> list[tuple[int, float]]: ...
    def filtered_chunk_ids(self, filters: SearchFilters) -> Sequence[int]: ...
    def term_document_counts(self, terms: Sequence[str]) -> tuple[int, dict[str, int]]: ...
    def stem(self, text: str) -> list[str]: ...
    def vector_candidates(
        self, vector: np.ndarray, limit: int, *, only: Sequence[int] | None = None
    ) -> list[tuple[int, float]]: ...
    def vectors_by_pairs(self, pairs: Sequence[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray]: ...
    def vectors_of(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]: ...
    def vectors_by_chunk(self) -> dict[int, bytes]: ...
    def data_version(self) -> Any: ...
    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, ChunkRow]: ...
    def chunks_with_fts(self) -> dict[str, list[tuple[int, int, str, str, tuple[str, str, str]]]]: ...
    def counts_by_kind(self) -> dict[str, dict[str, int]]: ...
    def consistency_counts(self) -> dict[str, int]: ...
    def chunk_texts(self) -> Iterator[tuple[str, int, str, str, str]]: ...
    def file_descriptions(self) -> dict[str, tuple[str, str | None, dict[str, Any]]]: ...
    def snapshot(self) -> dict[str, Any]: ...


class VectorCache(Protocol):
    """(model id, embedded-text hash) -> vector: texts embedded once are never embedded again."""

    def get_many(self, hashes: Iterable[str]) -> dict[str, np.ndarray]: ...
    def put_many(self, vectors: dict[str, np.ndarray]) -> None: ...
    def close(self) -> None: ...


class Build(Protocol[Report]):
    """Fills a fresh, empty store from the Markdown (indexing.rebuild.FromMarkdown)."""

    model_id: str  # the embedding model: which cache the build reads and fills
    dimensions: int

    def __call__(self, store: IndexStore, cache: VectorCache) -> Report: ...


class Engine(Protocol):
    """An open index on one storage engine; ``MemoryIndex`` composes one."""

    name: str  # "sqlite", "postgresql"
    store: IndexStore  # replaced when a repair swaps the index underneath
    recovered_from: str | None  # why the index was rebuilt when it was opened, if it was
    keeps_vectors_in_memory: bool  # a long-lived process scans an in-memory matrix (else: the engine's index)
    # Set by ``reconnected`` when it replaced a lost connection (what was read before may be
    # gone: a restored server); the caller that reloads what it keeps resets it.
    connection_replaced: bool

    def open_cache(self, *, model_id: str, dimensions: int) -> VectorCache:
        """The embedding cache for this model (created if needed)."""
        ...

    def existing_cache(self, *, model_id: str, dimensions: int) -> VectorCache | None:
        """The embedding cache if one exists, without creating one (for ``check``)."""
        ...

    def search_snapshot(self) -> AbstractContextManager[Any]:
        """One read snapshot for a whole search: the ids found are the ids read back."""
        ...

    def start_nearest(self, source: Any, query: Any, k: int) -> Any:
        """Inside ``search_snapshot``: a vector source (``source`` or one wrapping it) whose
        ``nearest(query, k)`` may already be running in that snapshot while the keyword
        half runs (PostgreSQL: a second connection); ``source`` itself where it cannot."""
        ...

    def rebuild(self, build: Build[Report], cache: VectorCache) -> Report:
        """Fill a fresh store with ``build`` and put it in place at once: searches
        see the old rows until then; a failed build leaves the index as it was."""
        ...

    def repair(
        self, reason: str, build: Build[Report], cache: VectorCache, *, writable: bool
    ) -> Report | None:
        """The index is damaged (``is_damage``) or its rows disagree with the Markdown:
        replace it with one ``build`` makes, keeping the damaged copy where the engine
        can. None when another process had already repaired it."""
        ...

    def is_damage(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the stored index is damaged (a rebuild fixes it)."""
        ...

    def user_error(self, exc: BaseException) -> IndexerError | None:
        """The one-line error for an engine failure a user can act on (disk full,
        server down), or None for anything else."""
        ...

    def reconnected(self, exc: BaseException) -> bool:
        """True when ``exc`` was a lost connection that the next call replaces (retry once)."""
        ...

    def matrix_fits(self, bound: int) -> bool:
        """Inside a search's snapshot: whether a warm process keeps the searched vectors in memory
        (at most ``bound`` chunks; a server's engine above it uses its own index)."""
        ...

    def uses_vector_index(self) -> bool:
        """Whether the engine's own vector index is built and current."""
        ...

    def status(self) -> dict[str, Any]:
        """What ``status`` says about the engine (size, schema version, ...)."""
        ...

    def vector_search_name(self) -> str: ...

    def storage_checks(self) -> list[str]:
        """The engine's own integrity checks; each string is a "corrupt" finding."""
        ...

    def storage_notes(self) -> list[str]:
        """What the engine finds as it should be but worth knowing (``check``'s notes)."""
        ...

    def replaced_on_disk(self) -> bool:
        """True when another process has replaced the index this engine has open."""
        ...

    def stored_lines(self, namespace: str, path: str) -> list[tuple[int, int, str]] | None:
        """(first, last, text) of each stored chunk of ``path`` in another namespace,
        or None when it is not indexed there (an engine without namespaces raises)."""
        ...

    def close(self) -> None: ...
