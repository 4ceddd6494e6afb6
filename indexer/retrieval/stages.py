"""Pure re-ranking stages after fusion (hybrid mode); each one kept because it
helped on both benchmarks in README's ablation.

The fused score judges a chunk alone. Conversation logs and notes split one
topic over many small chunks, so a chunk is also judged by its context:

- **file prior**: how well the chunk's whole file answers the query, from the
  candidates found in it: the share of the query's IDF that the file matches
  anywhere (its *coverage*) and the mean of its best three cosines, mixed by
  the query's keyword weight exactly as a chunk's own score is. A day that
  mentions both "gym" and "video games" lifts its chunks for "what are her
  hobbies?", though no single chunk has both.
- **folder prior**: the same over the file's folder, so that in one index over
  many notebooks or conversations the one the query is about leads.
- **headings only**: a chunk with no line besides headings (a file title, an
  empty section) never outranks content: it goes after every content chunk.

Each prior takes ``share`` of the final score: ``(1 - share) * score + share * prior``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from indexer.store import ChunkRow

from .budget import is_filler

RERANK_DEPTH = 100  # fused candidates re-scored (and evidence for the priors); the rest keep their order


@dataclass(frozen=True)
class Ranking:
    """Which stages run and their weights; the defaults are what README measured."""

    file_prior: float = 0.3
    folder_prior: float = 0.3
    demote_headings: bool = True
    skip_filler: bool = True  # with a budget: blank and heading lines at a result's edges are not read (budget.py)
    best_cosines: int = 3  # a file's (folder's) cosine: the mean of its best this-many chunk cosines
    depth: int = RERANK_DEPTH  # fused candidates re-scored (and evidence for the priors)
    # Keyword feedback (off: it helped the dev set but cost the fixture's MRR, see README):
    expand_terms: int = 0  # this many rare terms of the top fused chunks are searched too
    expand_chunks: int = 5  # ... taken from this many top chunks (a term must occur in two of them)
    expand_weight: float = 0.3  # ... their coverage's share of the score
    expand_when_unsure: bool = True  # ... times (1 - keyword confidence): paraphrased queries get more


DEFAULT_RANKING = Ranking()


@dataclass(frozen=True)
class Evidence:
    """What fusion knew about each candidate (see search.fusion_parts)."""

    weight: float  # the query's keyword weight
    coverage: Mapping[int, float]  # chunk id -> share of the query's IDF its bm25 reaches
    cosine: Mapping[int, float]  # chunk id -> cosine (the list's floor if missing)


def expansion_terms(
    chunk_terms: Sequence[Sequence[str]], idfs: Mapping[str, float], *, exclude: frozenset[str], count: int
) -> list[str]:
    """RM3-style feedback: the ``count`` indexed terms that occur in at least two of
    the top chunks (``chunk_terms``: each chunk's stemmed terms), best by
    (chunks containing it) x IDF; query terms and terms with digits (times, counts) left out."""
    seen: dict[str, int] = defaultdict(int)
    for terms in chunk_terms:
        for term in set(terms):
            if term not in exclude and len(term) > 2 and not any(ch.isdigit() for ch in term):
                seen[term] += 1
    scored = [(n * idfs.get(term, 0.0), term) for term, n in seen.items() if n >= 2]
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [term for score, term in scored[:count] if score > 0]


def parse_ranking(text: str) -> Ranking | None:
    """``none``, ``default`` or ``field:value,...`` over the default (for benchmarks)."""
    if text == "none":
        return None
    changes: dict[str, object] = {}
    for item in filter(None, text.split(",")):
        if item == "default":
            continue
        name, _, value = item.partition(":")
        if name not in Ranking.__dataclass_fields__:
            raise ValueError(f"unknown ranking field {name!r}")
        kind = type(getattr(DEFAULT_RANKING, name))
        changes[name] = bool(int(value)) if kind is bool else kind(value)
    return replace(DEFAULT_RANKING, **changes)


def rerank(
    ranked: Sequence[tuple[int, float]],
    rows: Mapping[int, ChunkRow],
    evidence: Evidence,
    *,
    term_idfs: Mapping[str, float],
    ranking: Ranking = DEFAULT_RANKING,
) -> list[tuple[int, float]]:
    """The first ``ranking.depth`` of ``ranked`` (best first) re-scored, then the rest.
    ``term_idfs``: IDF of each query word's prefix (search.prefix_idfs)."""
    term_pattern = term_matcher(list(term_idfs))
    head = [(cid, score) for cid, score in ranked[: ranking.depth] if cid in rows]
    scores = dict(head)
    found = {cid: matched_terms(rows[cid].text, term_pattern) for cid in scores}
    content = {cid: has_content(rows[cid].text) for cid in scores} if ranking.demote_headings else {}
    for share, group in ((ranking.file_prior, _file), (ranking.folder_prior, _folder)):
        if share > 0:
            groups = {cid: group(rows[cid].path) for cid in scores}
            prior = group_prior(groups, found, evidence, term_idfs=term_idfs, best_cosines=ranking.best_cosines)
            scores = {cid: (1 - share) * score + share * prior[groups[cid]] for cid, score in scores.items()}
    order = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    if ranking.demote_headings:
        order = [item for item in order if content[item[0]]] + [item for item in order if not content[item[0]]]
    return order + [item for item in ranked[ranking.depth :]]


def has_content(text: str) -> bool:
    """True when the chunk has a non-blank line that is not a heading."""
    return not all(is_filler(line) for line in text.split("\n"))


def term_matcher(prefixes: Sequence[str]) -> re.Pattern[str] | None:
    """A case-sensitive regex for lower-cased text: words starting with a prefix."""
    if not prefixes:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True)) + ")")


def matched_terms(text: str, matcher: re.Pattern[str] | None) -> frozenset[str]:
    """The query-term prefixes (see term_matcher) found in ``text``."""
    if matcher is None:
        return frozenset()
    return frozenset(matcher.findall(text.lower()))


def _file(path: str) -> str:
    return path


def _folder(path: str) -> str:
    return path.rpartition("/")[0]


def group_prior(
    groups: Mapping[int, str],
    found: Mapping[int, frozenset[str]],
    evidence: Evidence,
    *,
    term_idfs: Mapping[str, float],
    best_cosines: int,
) -> dict[str, float]:
    """group (file or folder) -> its score in [0, 1]: the IDF share of the query
    matched anywhere in its candidates, and the mean of its best cosines, mixed
    by the query's keyword weight."""
    total_idf = sum(term_idfs.values())
    terms: dict[str, set[str]] = defaultdict(set)
    cosines: dict[str, list[float]] = defaultdict(list)
    for cid, group in groups.items():
        terms[group] |= found[cid]
        cosines[group].append(max(0.0, evidence.cosine.get(cid, 0.0)))
    prior = {}
    for group, matched in terms.items():
        coverage = sum(term_idfs.get(term, 0.0) for term in matched) / total_idf if total_idf > 0 else 0.0
        cosine = sum(sorted(cosines[group], reverse=True)[:best_cosines]) / best_cosines
        prior[group] = evidence.weight * min(1.0, coverage) + (1 - evidence.weight) * cosine
    return prior

