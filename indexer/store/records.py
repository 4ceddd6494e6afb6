"""The rows every store engine reads and writes, as frozen dataclasses, and the
small helpers both engines share (vector blobs, batches, the bm25 parameters).

Engine-neutral: nothing here imports an engine or its library.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.sources.discover import FileStamp

SQL_VARIABLES_PER_QUERY = 500
# bm25 column weights for (text, heading, title): a heading or a file title
# that matches says a little more about the chunk than one word of its body.
BM25_WEIGHTS = (1.0, 2.0, 1.0)
# FTS5's bm25 parameters (the PostgreSQL store scores with the same formula).
BM25_K1 = 1.2
BM25_B = 0.75


def bm25_idf(total: int, frequency: int) -> float:
    """FTS5's IDF of a term in ``frequency`` of ``total`` chunks, floored at 1e-6 as FTS5
    floors it (a term in over half the chunks adds next to nothing)."""
    return max(1e-6, math.log((total - frequency + 0.5) / (frequency + 0.5)))


@dataclass(frozen=True)
class FileState:
    stamp: FileStamp
    hash: str
    indexed_at_ns: int
    # Shared indexes (PostgreSQL) have several writers (host and root) per namespace:
    # ``seen``: this writer indexed or confirmed the file (only then may its sync remove it);
    # ``rewritten_elsewhere``: another writer replaced it since (this writer's stat is stale).
    seen: bool = True
    rewritten_elsewhere: bool = False


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
class SearchedHashes:
    """(chunk id, text hash) of searched chunks with a vector: the in-memory matrix's rows
    (retrieval/vectors.py). ``groups``: each pair's group (a server's namespace; None: one
    group). ``changed`` None: every searched chunk is in ``pairs``; else only the chunks of
    the groups ``changed`` (changed since the state the matrix asked about): the other
    groups' rows are as they were."""

    pairs: list[tuple[int, str]]
    groups: list[int] | None = None
    changed: frozenset[int] | None = None


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
