"""Score fusion for hybrid search: one ranking from the keyword and vector candidate lists.

Hybrid mode takes the union of the top CANDIDATES of each list (search.py). A
candidate missing from one list gets that list's last score if the list is
full (the most it could have scored) and 0 otherwise. The two scores are
combined on absolute scales, weighted per query:

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

``Evidence`` keeps what fusion knew about each candidate, for the ranking
stages that follow it (stages.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

KEYWORD_WEIGHT = 0.7


@dataclass(frozen=True)
class Evidence:
    """What fusion knew about each candidate (see fusion_parts)."""

    weight: float  # the query's keyword weight
    coverage: Mapping[int, float]  # chunk id -> share of the query's IDF its bm25 reaches
    cosine: Mapping[int, float]  # chunk id -> cosine (the list's floor if missing)


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
