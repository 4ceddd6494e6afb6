"""Search: query building, candidate retrieval and score fusion.

Keyword mode ranks by FTS5 bm25; vector mode by cosine similarity (vec0 KNN,
or an exact NumPy scan when sqlite-vec is unavailable). Hybrid mode takes the
union of the top CANDIDATES of each list. A candidate missing from one list
gets that list's last score if the list is full (the most it could have
scored) and 0 otherwise. The two scores are combined on absolute scales,
weighted per query:

    coverage   = bm25 / (sum of the query terms' IDFs), capped at 1: how much
                 of the query's rare-word information the chunk matches
    confidence = the best coverage among the candidates: did keyword search
                 find anything that really answers this query?
    weight     = KEYWORD_WEIGHT * confidence
    score      = weight * coverage + (1 - weight) * max(cosine, 0)

When a chunk matches the query's rare words (names, dates, ids), keyword
evidence leads; when the best keyword hit matches only incidental words (a
paraphrase), the weight falls and the cosine decides. Plain reciprocal rank
fusion, which ignores scores, ranked below keyword search alone on the
labelled fixture (see README), as DESIGN.md predicted.

After fusion, hybrid results are re-ranked by rank.py (file and folder priors,
heading-only chunks last); with a budget, every mode's ranked chunks are packed
by budget.py (adjacent hits merged, oversized ones trimmed, total bounded).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from indexer.store import ChunkRow, IndexStore
from indexer.store.sqlite.store import match_expression  # noqa: F401 - FTS5's query syntax, re-exported

from .budget import Budget, Hit, Packed, pack, without_filler
from .filters import SearchFilters
from .stages import DEFAULT_RANKING, Evidence, Ranking, expansion_terms, rerank

Mode = Literal["keyword", "vector", "hybrid"]
MODES: tuple[str, ...] = ("keyword", "vector", "hybrid")
KEYWORD_WEIGHT = 0.7
CANDIDATES = 200
MAX_QUERY_TERMS = 32
SNIPPET_CHARS = 240
WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    """a about above after again all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves""".split()
)


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


class NumpyVectors:
    """Exact cosine search over an in-memory matrix whose rows are the chunks ``ids`` (ascending)."""

    def __init__(self, ids: Sequence[int], matrix: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        if np.any(order != np.arange(len(ids))):
            ids, matrix = ids[order], matrix[order]
        self.ids = ids
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)

    def nearest(self, query: np.ndarray, k: int, *, only: Sequence[int] | None = None) -> list[tuple[int, float]]:
        if len(self.ids) == 0 or k < 1:
            return []
        query = np.asarray(query, dtype=np.float32)
        blas = _blas_threads()
        with blas.limit(limits=1) if blas is not None else nullcontext():
            return self._nearest(query, k, only)

    def _nearest(self, query: np.ndarray, k: int, only: Sequence[int] | None) -> list[tuple[int, float]]:
        if only is None:
            ids, scores = self.ids, self.matrix @ query
        else:
            wanted = np.unique(np.asarray(list(only), dtype=np.int64))
            rows = np.searchsorted(self.ids, wanted)
            rows = rows[(rows < len(self.ids)) & (self.ids[np.minimum(rows, len(self.ids) - 1)] == wanted)]
            if len(rows) == 0:
                return []
            ids, scores = self.ids[rows], (self.matrix @ query)[rows]  # no copy of the allowed rows
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((ids[top], -scores[top]))]  # best first; ties by id, as a rebuild would order them
        return [(int(ids[i]), float(scores[i])) for i in top]


@functools.cache
def _blas_threads():  # -> threadpoolctl's BLAS pools, or None
    """The matrix scan runs on one BLAS thread: on a loaded 2-core machine two
    threads took 10.5 ms per 100K vectors against 4.8 ms for one (bench notes, README)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController().select(user_api="blas")


def query_terms(query: str) -> list[str]:
    """Distinct words of the query, stopwords dropped unless nothing else is left."""
    words = [word.lower() for word in WORD.findall(query)]
    content = [word for word in words if word not in STOPWORDS]
    chosen = content or words
    return list(dict.fromkeys(chosen))[:MAX_QUERY_TERMS]


def keyword_part(bm25: float, idf_total: float) -> float:
    """bm25 as a share of the query's total IDF, in [0, 1]."""
    if idf_total <= 0:
        return 0.0
    return max(0.0, min(1.0, bm25 / idf_total))


def fuse(
    keyword: list[tuple[int, float]],
    vector: list[tuple[int, float]],
    *,
    idf_total: float,
    pool: int,
    keyword_weight: float = KEYWORD_WEIGHT,
) -> list[tuple[int, float]]:
    """Combine bm25 and cosine candidate lists (best first, at most ``pool`` each)."""
    return fused_ranking(fusion_parts(keyword, vector, idf_total=idf_total, pool=pool, keyword_weight=keyword_weight))


def fused_ranking(evidence: Evidence) -> list[tuple[int, float]]:
    """Candidates by ``weight * coverage + (1 - weight) * cosine``, best first."""
    weight = evidence.weight
    fused = [
        (cid, weight * cov + (1 - weight) * max(0.0, evidence.cosine[cid]))
        for cid, cov in evidence.coverage.items()
    ]
    fused.sort(key=lambda item: (-item[1], item[0]))
    return fused


def fusion_parts(
    keyword: list[tuple[int, float]],
    vector: list[tuple[int, float]],
    *,
    idf_total: float,
    pool: int,
    keyword_weight: float = KEYWORD_WEIGHT,
) -> Evidence:
    """The query's keyword weight and each candidate's coverage and cosine."""
    keyword_floor = keyword[-1][1] if len(keyword) >= pool else 0.0
    vector_floor = vector[-1][1] if len(vector) >= pool else 0.0
    bm25 = dict(keyword)
    cosine = dict(vector)
    ids = bm25.keys() | cosine.keys()
    coverage = {cid: keyword_part(bm25.get(cid, keyword_floor), idf_total) for cid in ids}
    weight = keyword_weight * max(coverage.values(), default=0.0)
    return Evidence(weight, coverage, {cid: cosine.get(cid, vector_floor) for cid in ids})


def idf_total(store: IndexStore, terms: Sequence[str]) -> float:
    """Sum of FTS5-style IDFs of the query's stemmed terms."""
    return sum(stem_idfs(store, terms).values())


def stem_idfs(store: IndexStore, terms: Sequence[str]) -> dict[str, float]:
    """FTS5-style IDF of each of the query's stemmed terms."""
    stems = list(dict.fromkeys(stem for term in terms for stem in store.stem(term)))
    total, counts = store.term_document_counts(stems)
    return {s: max(1e-6, math.log((total - counts.get(s, 0) + 0.5) / (counts.get(s, 0) + 0.5))) for s in stems}


def prefix_idfs(store: IndexStore, terms: Sequence[str], idfs: dict[str, float]) -> dict[str, float]:
    """IDF per snippet prefix (a query term's first five letters; see snippet_pattern)."""
    out: dict[str, float] = {}
    for term in terms:
        if len(term) > 2:
            idf = max((idfs.get(stem, 0.0) for stem in store.stem(term)), default=0.0)
            out[term[:5]] = max(out.get(term[:5], 0.0), idf)
    return out


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
    adjacent hits of a file merged, results in rank order until the budget is spent."""
    terms = query_terms(query)
    match = bool(terms)
    rows: dict[int, ChunkRow] = {}
    wanted = limit if budget is None else max(limit, budget_candidates(budget))
    pool = max(CANDIDATES, wanted)
    # Filters narrow the candidate queries themselves, so a filtered search still fills ``limit``.
    narrowed = filters is not None and filters.narrows_candidates and mode != "keyword"
    only = store.filtered_chunk_ids(filters) if narrowed else None  # type: ignore[arg-type]
    use_vectors = vectors is not None and query_vector is not None and (only is None or len(only) > 0)
    if mode == "keyword":
        ranked = store.keyword_candidates(terms, wanted, filters=filters) if match else []
    elif mode == "vector":
        ranked = vectors.nearest(query_vector, wanted, only=only) if use_vectors else []  # type: ignore[union-attr,arg-type]
    else:
        keyword = store.keyword_candidates(terms, pool, filters=filters) if match else []
        vector = vectors.nearest(query_vector, pool, only=only) if use_vectors else []  # type: ignore[union-attr,arg-type]
        idfs = stem_idfs(store, terms) if match else {}
        if ranking is None:  # fusion alone (bench/fusion_variants.py swaps ``fuse`` for other rules)
            ranked = fuse(keyword, vector, idf_total=sum(idfs.values()), pool=pool)
        else:  # the re-ranking reuses what fusion knew about each candidate
            evidence = fusion_parts(keyword, vector, idf_total=sum(idfs.values()), pool=pool)
            ranked = fused_ranking(evidence)
        if ranking is not None and ranking.expand_terms > 0 and match:
            unsure = 1 - max((keyword_part(b, sum(idfs.values())) for _, b in keyword), default=0.0)
            ranked = expanded(store, ranked, idfs, ranking, pool=pool, filters=filters, unsure=unsure)
        if ranking is not None:
            rows = store.chunks_by_id([chunk_id for chunk_id, _ in ranked[: ranking.depth]])
            prefixes = prefix_idfs(store, terms, idfs)
            ranked = rerank(ranked, rows, evidence, term_idfs=prefixes, ranking=ranking)
    ranked = ranked[:wanted]
    if filters is not None and filters.min_score is not None:  # on the final scores, after fusion and ranking
        ranked = [(chunk_id, score) for chunk_id, score in ranked if score >= filters.min_score]
    missing = [chunk_id for chunk_id, _ in ranked if chunk_id not in rows]
    if missing:
        rows.update(store.chunks_by_id(missing))
    pattern = snippet_pattern(terms)
    if budget is None:
        return [_result(rows[chunk_id], score, pattern) for chunk_id, score in ranked if chunk_id in rows]
    hits = [_hit(rows[chunk_id], score) for chunk_id, score in ranked if chunk_id in rows]
    if ranking is not None and ranking.skip_filler:
        hits = [without_filler(hit) for hit in hits]
    packed = pack(hits, budget=budget, limit=limit, line_weight=line_weight(pattern))
    return [_packed_result(item, rows[item.keys[0]], pattern) for item in packed]


def expanded(
    store: IndexStore, ranked: list[tuple[int, float]], idfs: dict[str, float], ranking: Ranking, *, pool: int,
    filters: SearchFilters | None, unsure: float = 1.0,
) -> list[tuple[int, float]]:
    """``ranked`` re-scored with keyword feedback (rank.expansion_terms): each
    candidate's score mixed with its coverage of the expansion terms."""
    top = store.chunks_by_id([chunk_id for chunk_id, _ in ranked[: ranking.expand_chunks]])
    chunk_terms = [store.stem(row.text) for row in top.values()]
    vocabulary = list({term for terms in chunk_terms for term in terms})
    total, counts = store.term_document_counts(vocabulary)
    term_idfs = {t: math.log((total - counts.get(t, 0) + 0.5) / (counts.get(t, 0) + 0.5)) for t in vocabulary}
    extra = expansion_terms(chunk_terms, term_idfs, exclude=frozenset(idfs), count=ranking.expand_terms)
    if not extra:
        return ranked
    found = dict(store.keyword_candidates(extra, pool, filters=filters))
    extra_total = sum(term_idfs[t] for t in extra)
    share = ranking.expand_weight * (unsure if ranking.expand_when_unsure else 1.0)
    rescored = [(cid, (1 - share) * score + share * keyword_part(found.get(cid, 0.0), extra_total)) for cid, score in ranked]
    rescored.sort(key=lambda item: (-item[1], item[0]))
    return rescored


def budget_candidates(budget: Budget) -> int:
    """How many ranked chunks to read to fill a budget: each one taken costs at
    least a line, and some are merged or skipped."""
    lines = budget.lines if budget.lines is not None else max(1, (budget.tokens or 0) // 10)
    return min(2 * lines, 4 * CANDIDATES)


def line_weight(pattern: re.Pattern[str] | None) -> Callable[[str], float]:
    """How well a line matches the query: the number of distinct query words it has."""
    if pattern is None:
        return lambda line: 0.0
    return lambda line: float(len({m.lower() for m in pattern.findall(line)}))


def _hit(row: ChunkRow, score: float) -> Hit:
    size = row.end_line - row.start_line + 1
    lines = row.text.split("\n")
    if len(lines) != size:  # never expected (a chunk's text is its lines); keep the span's length honest
        lines = (lines + [""] * size)[:size]
    # Hits merge by path: the same path in two namespaces (PostgreSQL) is two files.
    path = row.path if row.namespace is None else f"{row.namespace}\0{row.path}"
    return Hit(path, row.start_line, row.end_line, float(score), tuple(lines), row.heading, row.id)


def _packed_result(item: Packed, row: ChunkRow, pattern: re.Pattern[str] | None) -> SearchResult:
    return SearchResult(
        path=row.path, start_line=item.start_line, end_line=item.end_line, heading=item.heading,
        kind=row.kind, date=row.date, score=round(item.score, 6), snippet=_snippet("\n".join(item.lines), pattern),
        namespace=row.namespace,
    )  # fmt: skip


def _result(row: ChunkRow, score: float, pattern: re.Pattern[str] | None) -> SearchResult:
    return SearchResult(
        path=row.path, start_line=row.start_line, end_line=row.end_line, heading=row.heading,
        kind=row.kind, date=row.date, score=round(float(score), 6), snippet=_snippet(row.text, pattern),
        namespace=row.namespace,
    )  # fmt: skip


def snippet_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    """A regex matching words that start like a query term (its first five letters)."""
    prefixes = sorted({term[:5] for term in terms if len(term) > 2}, key=len, reverse=True)
    if not prefixes:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in prefixes) + ")", re.IGNORECASE)


def snippet(text: str, terms: Sequence[str]) -> str:
    """The line that mentions the most query words (or the first content line), shortened."""
    return _snippet(text, snippet_pattern(terms))


def _snippet(text: str, pattern: re.Pattern[str] | None) -> str:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        return ""
    content = [line for line in lines if not line.startswith("#")] or lines
    best = content[0]
    if pattern is not None:
        best = max(content, key=lambda line: len({m.lower() for m in pattern.findall(line)}))
    if len(best) > SNIPPET_CHARS:
        best = best[: SNIPPET_CHARS - 1].rstrip() + "…"
    return best
