"""Pure re-ranking stages after fusion (hybrid mode), each measured on its own.

The fused score judges a chunk alone. Conversational logs and notes split one
topic over many small chunks, so a chunk is also judged by its context:

- **file prior**: how much of the query the chunk's whole file answers, from
  the candidates found in it: the share of the query's IDF mass that the file
  matches anywhere (``file_coverage``) and its best cosine, fused with the
  query's keyword weight like a chunk. A day that mentions both "gym" and
  "video games" lifts its chunks for "what are her hobbies?", though no single
  chunk has both.
- **headings only**: a chunk with no line besides headings (a file title, an
  empty section) never outranks content: it goes after every content chunk.

See README (Ranking) for the ablation on both benchmarks.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .store import ChunkRow

HEADING = re.compile(r"^\s{0,3}#{1,6}(\s|$)")


@dataclass(frozen=True)
class Ranking:
    """Which stages run, and their weights (the defaults are what README measured)."""

    file_prior: float = 0.0  # share of the final score that comes from the chunk's file
    file_cosines: int = 3  # the file's cosine: mean of its best this-many chunk cosines
    demote_headings: bool = True
    focus_lines: int = 0  # with a budget: cut longer chunks to their best lines (0: off)
    focus_context: int = 0  # lines kept around each best line


DEFAULT_RANKING = Ranking()


@dataclass(frozen=True)
class Evidence:
    """What fusion knew about each candidate (see search.fusion_parts)."""

    weight: float  # the query's keyword weight
    coverage: Mapping[int, float]  # chunk id -> share of the query's IDF its bm25 reaches
    cosine: Mapping[int, float]  # chunk id -> cosine (the list's floor if missing)


def rerank(
    ranked: Sequence[tuple[int, float]],
    rows: Mapping[int, ChunkRow],
    evidence: Evidence,
    *,
    term_idfs: Mapping[str, float],
    term_pattern: re.Pattern[str] | None,
    ranking: Ranking = DEFAULT_RANKING,
) -> list[tuple[int, float]]:
    """``ranked`` (best first) re-scored by the enabled stages, best first."""
    scores = {cid: score for cid, score in ranked if cid in rows}
    if ranking.file_prior > 0:
        prior = file_prior(scores, rows, evidence, term_idfs=term_idfs, term_pattern=term_pattern, ranking=ranking)
        share = ranking.file_prior
        scores = {cid: (1 - share) * score + share * prior[rows[cid].path] for cid, score in scores.items()}
    order = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    if ranking.demote_headings:
        content = [item for item in order if has_content(rows[item[0]].text)]
        order = content + [item for item in order if not has_content(rows[item[0]].text)]
    return order


def has_content(text: str) -> bool:
    """True when the chunk has a non-blank line that is not a heading."""
    return any(line.strip() and not HEADING.match(line) for line in text.split("\n"))


def matched_terms(text: str, term_pattern: re.Pattern[str] | None) -> set[str]:
    """The query-term prefixes (see search.snippet_pattern) found in ``text``, lower-cased."""
    if term_pattern is None:
        return set()
    return {match.lower() for match in term_pattern.findall(text)}


def file_prior(
    scores: Mapping[int, float],
    rows: Mapping[int, ChunkRow],
    evidence: Evidence,
    *,
    term_idfs: Mapping[str, float],
    term_pattern: re.Pattern[str] | None,
    ranking: Ranking,
) -> dict[str, float]:
    """path -> the file's score in [0, 1]: IDF share of the query matched anywhere in
    its candidates, fused with its best cosines by the query's keyword weight."""
    total_idf = sum(term_idfs.values())
    found: dict[str, set[str]] = defaultdict(set)
    cosines: dict[str, list[float]] = defaultdict(list)
    for cid in scores:
        row = rows[cid]
        found[row.path] |= matched_terms(row.text, term_pattern)
        cosines[row.path].append(max(0.0, evidence.cosine.get(cid, 0.0)))
    prior = {}
    for path, terms in found.items():
        coverage = sum(term_idfs.get(term, 0.0) for term in terms) / total_idf if total_idf > 0 else 0.0
        best = sorted(cosines[path], reverse=True)[: ranking.file_cosines]
        cosine = sum(best) / ranking.file_cosines
        prior[path] = evidence.weight * min(1.0, coverage) + (1 - evidence.weight) * cosine
    return prior
