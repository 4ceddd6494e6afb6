"""Where an open index's searches get their vectors, and the worker thread that scans them.

A process's first vector search asks the engine's own index (a one-shot command: loading
every vector would cost more than one index scan); from the second on, an exact scan of
the in-memory matrix, kept current (vectors.LiveMatrix). An engine that keeps no vectors
in memory (a server's HNSW index) is always asked. A warm matrix search starts on a worker
thread (with the query's embedding, for a local model) so that it overlaps the keyword
query (vectors.Prefetched); the engine's own index may run in parallel its own way.
A server's engine (PostgreSQL) keeps the matrix only while the searched namespaces hold
at most ``MATRIX_MAX_CHUNKS`` chunks (``matrix_fits``; once loaded, until a tenth more): above,
its HNSW index, and memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from indexer.errors import IndexerError, UsageError
from indexer.store import Engine, VectorCache

from .matrix import NumpyVectors
from .search import Vec0Vectors, VectorSource
from .vectors import LiveMatrix, Prefetched

# The vector search (counted per open index) from which every vector is kept in memory.
MATRIX_FROM_SEARCH = 2
# An engine with ``matrix_fits`` (a server's, shared by many namespaces) keeps its searched
# vectors in memory up to this many chunks of MATRIX_DIMENSIONS: about 380 MB (307 MB of
# float32 rows, 77 MB of their int8 copy); proportionally fewer of a larger model (review:
# 200K chunks of 1,024 dimensions would be 1 GB).
MATRIX_MAX_CHUNKS = 200_000
MATRIX_DIMENSIONS = 384
# A loaded matrix is kept until the namespaces hold a tenth more than the bound (hysteresis:
# a set hovering at the bound would load and drop every vector again and again).
MATRIX_MARGIN = 10


def matrix_bound(dimensions: int) -> int:
    """The most chunks of ``dimensions`` whose vectors a server's engine keeps in memory."""
    return MATRIX_MAX_CHUNKS * MATRIX_DIMENSIONS // max(int(dimensions), MATRIX_DIMENSIONS)


class VectorPath:
    """An open index's vector sources: the matrix (once searched twice) and the worker thread."""

    def __init__(self, engine: Engine, *, dimensions: Callable[[], int], cache: Callable[[], VectorCache]) -> None:
        self.engine = engine
        self._dimensions, self._cache = dimensions, cache  # the model's: asked only when needed
        self.matrix: LiveMatrix | None = None  # every vector in memory, once searched twice
        self.searches = 0
        self.executor: ThreadPoolExecutor | None = None

    @property
    def warm(self) -> bool:
        """The matrix is loaded: the next vector search scans it."""
        return self.matrix is not None

    def forget(self) -> None:
        """The index was replaced (a rebuild or a repair): load the matrix again when needed."""
        self.matrix = None

    def run_again(self, exc: IndexerError) -> bool:
        """After a search (or matrix read) failed with ``exc``: whether to run it once more
        (a server's lost connection replaced, or a snapshot that found the state changed).
        A replaced connection may meet another server's data (a restore): the matrix is
        loaded again; changed meta is not a reason (the matrix's version sees what matters)."""
        if not self.engine.reconnected(exc):
            return False
        if self.engine.connection_replaced:
            self.engine.connection_replaced = False
            self.forget()
        return True

    def source(self) -> VectorSource:
        """This search's vector source (call inside the search's read snapshot): the engine's
        index (``Vec0Vectors``) or the current matrix (``NumpyVectors``); without a usable
        vector index, the matrix from the embedding cache."""
        self.searches += 1
        store = self.engine.store
        if not self.engine.keeps_vectors_in_memory:
            return Vec0Vectors(store)
        if self.matrix is None and self.searches < MATRIX_FROM_SEARCH and self.engine.uses_vector_index():
            return Vec0Vectors(store)
        bound = matrix_bound(self._dimensions())
        if self.matrix is not None:  # a loaded matrix is dropped only well over the bound, not at each chunk across it
            bound += bound // MATRIX_MARGIN
        if not self.engine.matrix_fits(bound):
            # Memory stays bounded: a server's index while the namespaces are this large
            # (and a server's store without vectors has none to load).
            self.matrix = None
            return Vec0Vectors(store)
        indexed = self.engine.uses_vector_index()
        if self.matrix is None:
            self.matrix = LiveMatrix(int(store.meta().get("dimensions") or self._dimensions()))
        fetch = store.vectors_by_pairs if indexed else self._cached_vectors
        return self.matrix.current(store, fetch, hashes=store.search_chunk_hashes)

    def matrix_now(self) -> NumpyVectors:
        """The in-memory matrix of every vector as of now (loaded or brought up to date); a
        snapshot that found the index changed since it began (PostgreSQL) is read again once,
        as a search is. Raises UsageError when no matrix is kept (over the bound, no vectors)."""
        self.searches = max(self.searches, MATRIX_FROM_SEARCH - 1)
        try:
            source = self._source_now()
        except IndexerError as exc:
            if not self.run_again(exc):
                raise
            source = self._source_now()
        if not isinstance(source, NumpyVectors):
            raise UsageError(
                "the searched vectors are not kept in memory: over the in-memory matrix's bound "
                f"({matrix_bound(self._dimensions())} chunks of this model), or no vectors are stored"
            )
        return source

    def _source_now(self) -> VectorSource:
        with self.engine.search_snapshot():
            return self.source()

    def started(
        self, source: VectorSource, *, query_vector: np.ndarray | None, embed: Callable[[], np.ndarray] | None, k: int
    ) -> tuple[VectorSource, np.ndarray | None]:
        """(vector source, query vector) of a hybrid search whose vectors run beside its
        keyword query: ``embed`` (not None) embeds the query on the worker before the scan;
        the returned vector then stands for it (``Prefetched.nearest``)."""
        if embed is not None:
            if isinstance(source, NumpyVectors):
                prefetched = Prefetched.embedding(source, self.worker(), embed, k)
                return prefetched, prefetched.query
            query_vector = embed()  # the matrix was dropped (over the bound): embed here
        if isinstance(source, NumpyVectors):
            return Prefetched(source, self.worker(), query_vector, k), query_vector  # type: ignore[arg-type]
        # the engine's own index, in parallel where it can (PostgreSQL: a second connection)
        return self.engine.start_nearest(source, query_vector, k), query_vector

    def worker(self) -> ThreadPoolExecutor:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memdex-vectors")
        return self.executor

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    def _cached_vectors(self, pairs: Sequence[tuple[int, str]]) -> tuple[np.ndarray, np.ndarray]:
        found = self._cache().get_many(digest for _, digest in pairs)
        usable = [(cid, digest) for cid, digest in pairs if digest in found]
        rows = [found[digest] for _, digest in usable]
        matrix = np.stack(rows) if rows else np.zeros((0, self._dimensions()), dtype=np.float32)
        return np.asarray([cid for cid, _ in usable], dtype=np.int64), matrix


def once(embedded: dict[str, Any], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The query's vector, computed at most once for all the runs of one search (they share
    ``embedded``; a run again after a changed state, a reconnect or a recovery embeds nothing
    again, and a model or endpoint that failed is not asked again: a second 10 s wait)."""
    if "failed" in embedded:
        raise embedded["failed"]
    if "vector" not in embedded:
        try:
            embedded["vector"] = compute()
        except IndexerError as exc:
            embedded["failed"] = exc
            raise
    return embedded["vector"]
