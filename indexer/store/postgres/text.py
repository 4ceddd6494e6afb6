"""What the PostgreSQL store computes on the client: the column-weighted term
frequencies bm25 needs (terms from ``tokenizer.stems``, FTS5's own tokenizer, so
both engines index the same terms), pgvector's text form of a vector, and the SQL
conditions of path prefixes and search filters. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from indexer.retrieval.filters import SearchFilters
from indexer.store.records import BM25_WEIGHTS
from indexer.store.tokenizer import stems

# tsvector-free limits of our own: a term longer than this is not indexed (it
# is almost always an id or base64 run; FTS5 keeps it, PostgreSQL's btree would not).
MAX_TERM_BYTES = 1000
# Between the terms of a chunk as they travel to the server: a control character, which
# unicode61 never keeps in a token (a term holding it would not be indexed).
SEPARATOR = "\x1f"
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
ALL = "*"  # search every namespace on the server


def chunk_terms(text: str, heading: str, title: str) -> tuple[dict[str, float], int]:
    """(term -> column-weighted frequency, length in tokens) of a chunk's text, heading and title,
    as FTS5 counts them for bm25 (length: every token of every column)."""
    freq: dict[str, float] = {}
    length = 0
    for column, weight in zip((text, heading, title), BM25_WEIGHTS):
        for term in stems(column):
            length += 1
            if (len(term) * 4 <= MAX_TERM_BYTES or len(term.encode("utf-8")) <= MAX_TERM_BYTES) and SEPARATOR not in term:
                freq[term] = freq.get(term, 0.0) + weight
    return freq, length


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form; 9 significant digits give back the same float32."""
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(vector, dtype=np.float32).tolist()) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.asarray(json.loads(text), dtype=np.float32)


def under_clause(under: Iterable[str] | None, column: str) -> tuple[str, list[Any]]:
    """`` AND (column is or lies below one of the paths)``, or nothing for None."""
    if under is None:
        return "", []
    prefixes = sorted(set(under))
    if not prefixes:
        return " AND false", []
    return (
        f" AND ({column} = ANY(%s) OR EXISTS (SELECT 1 FROM unnest(%s::text[]) AS u(p) WHERE starts_with({column}, u.p)))",
        [prefixes, [p + "/" for p in prefixes]],
    )


def filter_clause(filters: SearchFilters | None) -> tuple[str, dict[str, Any]]:
    """Conditions over ``chunks c JOIN files f`` for a filter (named parameters)."""
    if filters is None or not filters.narrows_candidates:
        return "", {}
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if filters.kinds:
        conditions.append("f.kind = ANY(%(kinds)s)")
        params["kinds"] = list(filters.kinds)
    if filters.path_prefix is not None:
        conditions.append("starts_with(c.path, %(prefix)s)")
        params["prefix"] = filters.path_prefix
    if filters.after is not None:
        conditions.append("coalesce(c.date, f.date) >= %(after)s")
        params["after"] = filters.after.isoformat()
    if filters.before is not None:
        conditions.append("coalesce(c.date, f.date) <= %(before)s")
        params["before"] = filters.before.isoformat()
    return " AND ".join(conditions), params
