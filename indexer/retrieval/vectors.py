"""An in-memory matrix of every chunk's vector, derived from the index and kept current.

A long-lived process (the Python API, an MCP server) searches many times: an
exact NumPy scan of a float32 matrix is several times faster than a vec0 scan
of the same vectors, and exact. The matrix is never a second source of truth:
it is loaded from the index's ``chunks_vec`` table (or, without sqlite-vec,
from the embedding cache by text hash), and before each search the index's
``data_version`` (bumped by every commit, from any connection) says whether
it is still current. When it is not, the chunk ids and text hashes are read
again and only rows whose (id, hash) is new are fetched: a vector is a
function of the model and the embedded text, so a row whose id and hash are
unchanged still has the same vector. A different model or dimension reloads
everything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np

from indexer.store import IndexStore
from indexer.store.records import SearchedHashes

from .matrix import Int8Rows, NumpyVectors, kept_then

log = logging.getLogger(__name__)

# fetch(pairs of (chunk id, text hash)) -> (chunk ids found, their vectors as matrix rows)
Fetch = Callable[[Sequence[tuple[int, str]]], tuple[np.ndarray, np.ndarray]]


class LiveMatrix:
    """The current ``NumpyVectors`` of an index, refreshed incrementally when the index changes."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self.version: object = None
        self.identity: tuple[str | None, str | None] | None = None
        self.hashes: dict[int, str] = {}
        self.vectors = NumpyVectors([], np.zeros((0, dimensions), dtype=np.float32))
        self.groups = np.zeros(0, dtype=np.int64)  # each row's group (SearchedHashes.groups), in row order
        self.refreshes = 0  # how many times the index had changed (for tests and benchmarks)

    def current(
        self, store: IndexStore, fetch: Fetch, *, hashes: Callable[[Any], SearchedHashes] | None = None
    ) -> NumpyVectors:
        """The matrix as of the caller's read snapshot (call inside it); ``hashes(since)``: the
        searched chunks' (chunk id, text hash), or only those changed since the version
        ``since`` (default: every chunk's, ``store.chunk_hashes``)."""
        version = store.data_version()
        if version == self.version:
            return self.vectors
        meta = store.meta()
        identity = (meta.get("model"), meta.get("dimensions"))
        since = self.version
        if identity != self.identity:  # another model (maybe of another size): every row anew
            self.dimensions = int(identity[1]) if str(identity[1]).isdigit() else self.dimensions
            self.hashes, self.vectors = {}, NumpyVectors([], np.zeros((0, self.dimensions), dtype=np.float32))
            self.groups, since = self.groups[:0], None
        self._refresh(hashes(since) if hashes is not None else SearchedHashes(store.chunk_hashes()), fetch)
        self.version, self.identity = version, identity
        self.refreshes += 1
        return self.vectors

    def _refresh(self, found: SearchedHashes, fetch: Fetch) -> None:
        old_ids, old_matrix = self.vectors.ids, self.vectors.matrix
        current = dict(found.pairs)
        # Rows of the groups read again keep their place when their hash is unchanged; rows
        # of the other groups are not looked at (a write changes one namespace's chunks).
        if found.changed is None:
            looked = np.arange(len(old_ids))
            keep = np.zeros(len(old_ids), dtype=bool)
        else:
            looked = np.flatnonzero(np.isin(self.groups, np.fromiter(found.changed, dtype=np.int64)))
            keep = np.ones(len(old_ids), dtype=bool)
        keep[looked] = np.fromiter(
            (self.hashes.get(cid) == current.get(cid) for cid in old_ids[looked].tolist()), dtype=bool, count=len(looked)
        )
        gone = old_ids[looked[~keep[looked]]].tolist()
        added = [(cid, digest) for cid, digest in current.items() if self.hashes.get(cid) != digest]
        new_ids, new_rows = fetch(added) if added else (np.zeros(0, np.int64), old_matrix[:0])
        if not len(new_ids) or new_rows.shape[1] != self.dimensions:  # none found: (0, 0) rows would not stack
            new_ids, new_rows = new_ids[:0], old_matrix[:0]
        if len(new_ids) < len(added):
            log.warning("%d chunks have no stored vector; run 'memdex index'", len(added) - len(new_ids))
        group_of = dict(zip((cid for cid, _ in found.pairs), found.groups)) if found.groups is not None and len(new_ids) else {}
        new_groups = np.fromiter((group_of.get(cid, 0) for cid in new_ids.tolist()), dtype=np.int64, count=len(new_ids))
        kept_ids = old_ids[keep]
        ids = np.concatenate([kept_ids, new_ids])
        groups = np.concatenate([self.groups[keep], new_groups])
        int8 = self.vectors.int8  # the rows' int8 copy (matrix.py): kept rows keep theirs
        if not len(kept_ids):  # the first load (or nothing kept): the fetched matrix as it is, not a copy
            matrix, int8 = (new_rows if len(new_ids) else old_matrix[:0]), None
        elif not len(new_ids) and keep.all():
            matrix = old_matrix
        else:
            matrix = kept_then(old_matrix, keep, new_rows)
            int8 = int8.kept_then(keep, Int8Rows.of(new_rows)) if int8 is not None else None
        self.vectors = NumpyVectors(ids, matrix, int8=int8)  # rows in id order (as ``groups``, below)
        self.groups = groups[np.argsort(ids, kind="stable")]
        for cid in gone:
            self.hashes.pop(cid, None)
        self.hashes.update((cid, current[cid]) for cid in new_ids.tolist())


class Prefetched:
    """A matrix search for one query already running on a worker thread, so that it
    overlaps the keyword query (NumPy and SQLite both release the GIL). ``nearest``
    returns its result when asked for that query without ``only``; anything else
    is computed directly.

    ``Prefetched.embedding``: the query's embedding runs on the worker too, before the
    scan (ONNX Runtime releases the GIL as well); ``query`` then stands for the vector."""

    def __init__(self, source: NumpyVectors, executor: Executor, query: np.ndarray, k: int) -> None:
        self.source, self.query, self.k = source, query, k
        self._vector: np.ndarray | None = query
        self.future = executor.submit(source.nearest, query, k)

    @classmethod
    def embedding(cls, source: NumpyVectors, executor: Executor, embed: Callable[[], np.ndarray], k: int) -> Prefetched:
        self = cls.__new__(cls)
        self.source, self.query, self.k = source, np.empty(0, dtype=np.float32), k
        self._vector = None

        def embed_then_scan() -> list[tuple[int, float]]:
            self._vector = np.asarray(embed(), dtype=np.float32)
            return source.nearest(self._vector, k)

        self.future = executor.submit(embed_then_scan)
        return self

    def nearest(self, query: np.ndarray, k: int, *, only: Sequence[int] | None = None) -> list[tuple[int, float]]:
        if query is self.query:
            found = self.future.result()  # the embedding's error, if any, is raised here
            if only is None and k <= self.k:
                return found[:k]
            query = self._vector  # type: ignore[assignment]
        return self.source.nearest(query, k, only=only)
