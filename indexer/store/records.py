"""What every store engine reads and writes: the rows as dataclasses, and the
``IndexStore`` / ``VectorCache`` protocols that sync, search and the API use.

An engine (``sqlite.py``, ``postgres.py``) implements the protocols with its
own SQL; nothing above the store knows which engine it talks to.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import apsw
import numpy as np

from indexer.retrieval.filters import SearchFilters
from indexer.sources.base import Chunk
from indexer.sources.discover import FileStamp
from indexer.store.sqlite.connection import FTS_TOKENIZE

SQL_VARIABLES_PER_QUERY = 500
# bm25 column weights for (text, heading, title): a heading or a file title
# that matches says a little more about the chunk than one word of its body.
BM25_WEIGHTS = (1.0, 2.0, 1.0)
# FTS5's bm25 parameters (the PostgreSQL store scores with the same formula).
BM25_K1 = 1.2
BM25_B = 0.75


@dataclass(frozen=True)
class FileState:
    stamp: FileStamp
    hash: str
    indexed_at_ns: int


@dataclass(frozen=True)
class SkippedFile:
    """A memory file skipped with a warning, as it was then: unchanged, it is skipped silently."""

    stamp: FileStamp
    reason: str
    skipped_at_ns: int


@dataclass(frozen=True)
class FileRecord:
    path: str
    kind: str
    date: str | None
    stamp: FileStamp
    hash: str
    frontmatter: dict[str, Any]
    title: str  # searchable words naming the file (path words, date)


@dataclass(frozen=True)
class ChunkRow:
    id: int
    path: str
    start_line: int
    end_line: int
    heading: str
    text: str
    kind: str
    date: str | None
    namespace: str | None = None  # the memory root's namespace (PostgreSQL); None in SQLite


class IndexStore(Protocol):
    """One memory root's index as sync, search and the API see it."""

    vec_enabled: bool

    def read_snapshot(self) -> AbstractContextManager[None]: ...
    def meta(self) -> dict[str, str]: ...
    def set_meta(self, **values: str | int | float) -> None: ...
    def file_states(self, under: Iterable[str] | None = None) -> dict[str, FileState]: ...
    def skipped_files(self, under: Iterable[str] | None = None) -> dict[str, SkippedFile]: ...
    def record_skipped(self, path: str, stamp: FileStamp, *, reason: str, skipped_at_ns: int) -> None: ...
    def forget_skipped(self, path: str) -> None: ...
    def touch_file(self, path: str, stamp: FileStamp, *, indexed_at_ns: int) -> None: ...
    def replace_file(
        self, record: FileRecord, chunks: Sequence[Chunk], vectors: np.ndarray, *, indexed_at_ns: int
    ) -> None: ...
    def invalidate_files(self, paths: Sequence[str]) -> None: ...
    def remove_file(self, path: str) -> None: ...
    def clear(self) -> None: ...
    def rebuild_vectors(self, dimensions: int, vectors_by_hash: dict[str, np.ndarray]) -> None: ...
    def vec_dimensions(self) -> int | None: ...
    def chunk_hashes(self) -> list[tuple[int, str]]: ...
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
    def data_version(self) -> tuple[int, int]: ...
    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, ChunkRow]: ...
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


@functools.cache
def _tokenizer() -> apsw.FTS5Tokenizer:
    name, *args = FTS_TOKENIZE.split()
    return apsw.Connection(":memory:").fts5_tokenizer(name, args)


def stems(text: str, *, query: bool = False) -> list[str]:
    """The terms FTS5 indexes (or, with ``query``, looks up) for ``text``: chunks_fts's
    tokenizer, so both engines stem queries and chunks alike."""
    reason = apsw.FTS5_TOKENIZE_QUERY if query else apsw.FTS5_TOKENIZE_DOCUMENT
    return [token[2] for token in _tokenizer()(text.encode("utf-8"), reason, None)]


def plausible(vector: np.ndarray) -> bool:
    """A stored vector worth trusting: finite, and normalised as the model's vectors are."""
    if not np.all(np.isfinite(vector)):
        return False
    norm = float(np.linalg.norm(vector))
    return abs(norm - 1.0) < 1e-3


def blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def batches(items: list[Any], size: int = SQL_VARIABLES_PER_QUERY) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
