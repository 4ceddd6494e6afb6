"""Search: candidate retrieval per mode, then ranking, then results (packed into a budget).

Keyword mode ranks by FTS5 bm25; vector mode by cosine similarity (vec0 KNN,
or an exact NumPy scan when sqlite-vec is unavailable). Hybrid mode takes the
union of the top CANDIDATES of each list and fuses their scores (fusion.py),
then runs the ranking stages of the ``Ranking`` in order (stages.py: file and
folder priors, heading-only chunks last; ``ranking=None``: fusion alone);
keyword and vector modes put heading-only chunks last too.
With a budget, every mode's ranked chunks pass the ranking's hit stages
(blank and heading lines at their edges skipped) and are packed by budget.py
(adjacent hits merged, oversized ones trimmed, total bounded). Hybrid results
carry a confidence (confidence.py), computed for the results returned only.

The query's words, IDFs and snippets are query.py's. Names of query.py and
fusion.py that callers import from here (``fuse``, ``keyword_part``,
``query_terms``, ``snippet``...) are re-exported; bench/fusion_variants.py
swaps this module's ``fuse`` for other fusion rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from indexer.store import ChunkRow, IndexStore

from . import confidence as confidence_model
from .budget import Budget, Hit, Packed, pack
from .dates import query_windows
from .filters import SearchFilters
from .fusion import KEYWORD_WEIGHT, Evidence, fuse, fused_ranking, fusion_parts, keyword_part  # noqa: F401 - re-exported
from .matrix import NumpyVectors  # noqa: F401 - re-exported
from .query import (  # noqa: F401 - re-exported
    STOPWORDS,
    best_line,
    idf_total,
    keyword_query_terms,
    line_weight,
    prefix_idfs,
    query_terms,
    snippet,
    snippet_pattern,
    stem_idfs,
)
from .stages import DEFAULT_RANKING, Ranked, Ranking, StageContext, Stages, matched_terms, ranking_stages, term_matcher

Mode = Literal["keyword", "vector", "hybrid"]
MODES: tuple[str, ...] = ("keyword", "vector", "hybrid")
CANDIDATES = 200
# The default (hybrid) search leaves terms in at least half the chunks out of its keyword
# query (query.keyword_query_terms); False sends every term (bench/bench_keyword_prune.py).
PRUNE_COMMON_TERMS = True


@dataclass(frozen=True)
class SearchResult:
    path: str
    start_line: int
    end_line: int
    heading: str
    kind: str
    date: str | None
    score: float
    snippet: str
    namespace: str | None = None  # the memory root's namespace on a PostgreSQL server; None with SQLite
    # With a token budget, a line too long for it is shown as its best-matching part: the
    # result's text to read (its lines, the long one cut, "…" where text was left out); the
    # citation stays the whole line. None: read the cited lines.
    excerpt: str | None = None
    confidence: float | None = None  # 0-1, hybrid only (confidence.py); below 0.5: probably not relevant


class VectorSource(Protocol):
    def nearest(self, query: np.ndarray, k: int, *, only: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the k nearest chunks, best first; ``only`` restricts the
        search to those chunk ids (None: every chunk)."""
        ...


class Vec0Vectors:
    """Vector search through the store's own index: sqlite-vec's ``chunks_vec`` (KNN; an exact
    scan of the listed ids for ``only``), or pgvector's HNSW index on PostgreSQL."""

    def __init__(self, store: IndexStore) -> None:
        self.store = store

    def nearest(self, query: np.ndarray, k: int, *, only: Sequence[int] | None = None) -> list[tuple[int, float]]:
        return self.store.vector_candidates(query, k, only=only)


def run_search(
    store: IndexStore,
    query: str,
    *,
    mode: Mode,
    limit: int,
    query_vector: np.ndarray | None,
    vectors: VectorSource | None,
    filters: SearchFilters | None = None,
    budget: Budget | None = None,
    ranking: Ranking | None = DEFAULT_RANKING,
) -> list[SearchResult]:
    """The best chunks for ``query``; with a ``budget``, packed into it (see budget.py):
    adjacent hits of a file merged, results in rank order until the budget is spent.
    ``ranking`` selects the stages after fusion (stages.ranking_stages; None: fusion alone)."""
    terms = query_terms(query)
    stages = ranking_stages(ranking)
    wanted = limit if budget is None else max(limit, budget_candidates(budget))
    rows: dict[int, ChunkRow] = {}  # chunks read while ranking, reused for the results
    found: dict[str, object] = {}  # hybrid: what confidence needs (the candidate lists, evidence, IDFs)
    ranked = _ranked(
        store, query, terms, mode=mode, wanted=wanted, query_vector=query_vector, vectors=vectors, filters=filters,
        stages=stages, rows=rows, found=found,
    )[:wanted]  # fmt: skip
    if filters is not None and filters.min_score is not None:  # on the final scores, after fusion and ranking
        ranked = [(chunk_id, score) for chunk_id, score in ranked if score >= filters.min_score]
    missing = [chunk_id for chunk_id, _ in ranked if chunk_id not in rows]
    if missing:
        rows.update(store.chunks_by_id(missing))
    pattern = snippet_pattern(terms)
    if budget is None:
        sure = _confidences(store, [chunk_id for chunk_id, _ in ranked], rows, found)
        return [
            _result(rows[chunk_id], score, pattern, sure.get(chunk_id)) for chunk_id, score in ranked if chunk_id in rows
        ]
    hits = [_hit(rows[chunk_id], score) for chunk_id, score in ranked if chunk_id in rows]
    for hit_stage in stages.hits:
        hits = [hit_stage(hit) for hit in hits]
    packed = pack(hits, budget=budget, limit=limit, line_weight=line_weight(pattern))
    sure = _confidences(store, [key for item in packed for key in item.keys], rows, found)
    return [
        _packed_result(item, rows[item.keys[0]], pattern, max((sure[k] for k in item.keys if k in sure), default=None))
        for item in packed
    ]


def _confidences(store: IndexStore, ids: list[int], rows: dict[int, ChunkRow], found: dict[str, object]) -> dict[int, float]:
    """chunk id -> its confidence (confidence.py), for the chunks ``ids`` of a hybrid search ({} otherwise)."""
    if not found or not ids:
        return {}
    idfs: dict[str, float] = found["idfs"]  # type: ignore[assignment]
    term_idfs: dict[str, float] = found["term_idfs"]  # type: ignore[assignment]
    evidence: Evidence = found["evidence"]  # type: ignore[assignment]
    _, counts = store.term_document_counts(list(idfs))
    signals = confidence_model.query_signals(counts, idfs, found["keyword"], found["vector"])  # type: ignore[arg-type]
    matcher = term_matcher(list(term_idfs))
    out = {}
    for chunk_id in ids:
        if chunk_id in rows:
            share = confidence_model.matched_share(matched_terms(rows[chunk_id].text, matcher), term_idfs)
            out[chunk_id] = confidence_model.confidence(confidence_model.result_features(signals, evidence, chunk_id, share))
    return out


def _ranked(
    store: IndexStore,
    query: str,
    terms: list[str],
    *,
    mode: Mode,
    wanted: int,
    query_vector: np.ndarray | None,
    vectors: VectorSource | None,
    filters: SearchFilters | None,
    stages: Stages,
    rows: dict[int, ChunkRow],
    found: dict[str, object],
) -> Ranked:
    """The candidates of ``mode``, best first: keyword or vector alone, or hybrid's fusion
    of both lists followed by the ranking stages (which add the rows they read to ``rows``).
    Hybrid mode puts into ``found`` what confidence needs (run_search)."""
    match = bool(terms)
    pool = max(CANDIDATES, wanted)
    # Filters narrow the candidate queries themselves, so a filtered search still fills ``limit``.
    narrowed = filters is not None and filters.narrows_candidates and mode != "keyword"
    only = store.filtered_chunk_ids(filters) if narrowed else None  # type: ignore[arg-type]
    use_vectors = vectors is not None and query_vector is not None and (only is None or len(only) > 0)
    if mode in ("keyword", "vector"):
        if mode == "keyword":
            single = store.keyword_candidates(terms, wanted, filters=filters) if match else []
        else:
            single = vectors.nearest(query_vector, wanted, only=only) if use_vectors else []  # type: ignore[union-attr,arg-type]
        if stages.single and single:  # heading-only chunks after content here too
            context = StageContext(store, Evidence(0.0, {}, {}), {}, terms=terms, rows=rows)
            for stage in stages.single:
                single = stage(single, context)
        return single
    idfs = stem_idfs(store, terms) if match else {}
    searched = keyword_query_terms(store, terms, idfs) if match and PRUNE_COMMON_TERMS else terms
    keyword = store.keyword_candidates(searched, pool, filters=filters) if match else []
    vector = vectors.nearest(query_vector, pool, only=only) if use_vectors else []  # type: ignore[union-attr,arg-type]
    evidence = fusion_parts(keyword, vector, idf_total=sum(idfs.values()), pool=pool)  # the stages reuse it
    term_idfs = prefix_idfs(store, terms, idfs)
    found.update(terms=terms, idfs=idfs, term_idfs=term_idfs, evidence=evidence, keyword=keyword, vector=vector)
    if not stages.ranked:  # fusion alone (bench/fusion_variants.py swaps ``fuse`` for other rules)
        return fuse(keyword, vector, idf_total=sum(idfs.values()), pool=pool)
    context = StageContext(
        store, evidence, term_idfs, terms=terms, query=query, idfs=idfs, keyword=keyword,
        pool=pool, filters=filters, rows=rows, windows=query_windows(query),
    )  # fmt: skip
    ranked = fused_ranking(evidence)
    for stage in stages.ranked:
        ranked = stage(ranked, context)
    return ranked


def budget_candidates(budget: Budget) -> int:
    """How many ranked chunks to read to fill a budget: each one taken costs at
    least a line, and some are merged or skipped."""
    lines = budget.lines if budget.lines is not None else max(1, (budget.tokens or 0) // 10)
    return min(2 * lines, 4 * CANDIDATES)


def _hit(row: ChunkRow, score: float) -> Hit:
    size = row.end_line - row.start_line + 1
    lines = row.text.split("\n")
    if len(lines) != size:  # never expected (a chunk's text is its lines); keep the span's length honest
        lines = (lines + [""] * size)[:size]
    # Hits merge by path: the same path in two namespaces (PostgreSQL) is two files.
    path = row.path if row.namespace is None else f"{row.namespace}\0{row.path}"
    return Hit(path, row.start_line, row.end_line, float(score), tuple(lines), row.heading, row.id)


def _packed_result(
    item: Packed, row: ChunkRow, pattern: re.Pattern[str] | None, confidence: float | None
) -> SearchResult:
    return SearchResult(
        path=row.path, start_line=item.start_line, end_line=item.end_line, heading=item.heading,
        kind=row.kind, date=row.date, score=round(item.score, 6), snippet=best_line("\n".join(item.lines), pattern),
        namespace=row.namespace, excerpt=item.excerpt, confidence=confidence,
    )  # fmt: skip


def _result(row: ChunkRow, score: float, pattern: re.Pattern[str] | None, confidence: float | None) -> SearchResult:
    return SearchResult(
        path=row.path, start_line=row.start_line, end_line=row.end_line, heading=row.heading,
        kind=row.kind, date=row.date, score=round(float(score), 6), snippet=best_line(row.text, pattern),
        namespace=row.namespace, confidence=confidence,
    )  # fmt: skip
