"""The SQLite embedding cache: (model, embedded-text hash) -> vector, in its own
file beside the index, so that a damaged index is rebuilt without embedding
everything again."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from indexer.store.records import batches as _batches
from indexer.store.records import blob as _blob
from indexer.store.records import plausible as _plausible

from .connection import CACHE, connect_cache, quarantine
from .errors import DAMAGE_ERRORS

log = logging.getLogger(__name__)


class EmbeddingCache:
    """(model id, embedded-text hash) -> float32 vector, in its own database file.

    Nothing read from it is trusted blindly: a vector with the wrong size, a
    non-finite value or a norm far from 1 (the model's vectors are normalised)
    counts as missing, and a damaged file is moved aside and started afresh.
    """

    def __init__(self, path: Path, *, model_id: str, dimensions: int, key: str | None = None) -> None:
        self.path = path
        self._key = key
        self.connection = connect_cache(path, key=key)
        self.model_id = model_id
        self.dimensions = dimensions

    def get_many(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        try:
            return self._get_many(hashes)
        except DAMAGE_ERRORS as exc:
            self._start_afresh(exc)
            return {}

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        try:
            self._put_many(vectors)
        except DAMAGE_ERRORS as exc:
            self._start_afresh(exc)
            self._put_many(vectors)

    def close(self) -> None:
        self.connection.close()

    def _get_many(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for batch in _batches(sorted(set(hashes))):
            marks = ",".join("?" * len(batch))
            rows = self.connection.execute(
                f"SELECT hash, vector FROM embeddings WHERE model = ? AND hash IN ({marks})",
                (self.model_id, *batch),
            )
            for digest, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32) if len(blob) == 4 * self.dimensions else None
                if vector is not None and _plausible(vector):
                    found[digest] = vector
        return found

    def _put_many(self, vectors: dict[str, np.ndarray]) -> None:
        with self.connection:
            self.connection.executemany(
                "INSERT OR REPLACE INTO embeddings(model, hash, vector) VALUES (?, ?, ?)",
                ((self.model_id, digest, _blob(vector)) for digest, vector in vectors.items()),
            )

    def _start_afresh(self, exc: Exception) -> None:
        self.connection.close()
        moved = quarantine(self.path, kind=CACHE, key=self._key)
        where = f"moved to {moved.name}" if moved else "removed it"
        log.warning("embedding cache %s is damaged (%s); %s and started afresh", self.path, exc, where)
        self.connection = connect_cache(self.path, key=self._key)
