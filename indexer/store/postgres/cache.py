"""The embedding cache of one namespace: (model id, text hash) -> float32 vector.

Per namespace (``vector_cache``, row-level security like every namespaced table):
a cache shared across namespaces would tell an agent whether another namespace
holds a text it guesses, and let it write the vector another namespace then
takes for that text. Hosts of one namespace share it, so a second host of the
same memory embeds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from indexer.store.records import plausible

from . import connection as pg


class PgEmbeddingCache:
    """The cache of ``store``'s namespace (a ``PgStore``: its ``url``, ``ns`` and ``connection``).

    Writes go through a connection of its own and commit at once, in hash order: a
    rebuild's long transaction must not hold cache rows that other hosts of the
    namespace write too, which would make them wait for it or deadlock with it; and
    what a failed rebuild embedded stays cached."""

    def __init__(self, store: Any, *, model_id: str, dimensions: int) -> None:
        self.store = store
        self.model_id = model_id
        self.dimensions = dimensions
        self._conn: Any = None

    def get_many(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        # A sync asks before each group of texts goes to the model: a bulk load's files
        # written so far commit first, so no transaction waits open through the embedding.
        self.store.commit_batch()
        rows = self.store.connection.execute(
            "SELECT hash, vector FROM vector_cache WHERE ns = %s AND model = %s AND hash = ANY(%s)",
            (self.store.ns, self.model_id, sorted(set(hashes))),
        )
        found: dict[str, np.ndarray] = {}
        for digest, blob in rows:
            if len(blob) == 4 * self.dimensions:
                vector = np.frombuffer(bytes(blob), dtype=np.float32)
                if plausible(vector):
                    found[digest] = vector
        return found

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = pg.connect(self.store.url)
        conn = self._conn
        digests = sorted(vectors)
        with conn.transaction():  # one statement; rows go in hash order (the order their locks are taken)
            conn.execute(
                "INSERT INTO vector_cache(ns, model, hash, vector) SELECT %s, %s, u.hash, u.vector "
                "FROM unnest(%s::text[], %s::bytea[]) AS u(hash, vector) ORDER BY u.hash "
                "ON CONFLICT (ns, model, hash) DO UPDATE SET vector = excluded.vector",
                (self.store.ns, self.model_id, digests,
                 [np.ascontiguousarray(vectors[digest], dtype=np.float32).tobytes() for digest in digests]),
            )  # fmt: skip

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
