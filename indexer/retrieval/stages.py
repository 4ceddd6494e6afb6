"""The ranking stages after fusion, as an ordered list built from a ``Ranking``.

``run_search`` (search.py) fuses the keyword and vector candidates (hybrid
mode, fusion.py), then passes the fused ranking through each stage of
``ranking_stages(ranking).ranked`` in order. A stage is a ``Stage``:

    stage(ranked, context) -> ranked

``ranked`` is (chunk id, score) pairs, best first; ``context`` (a
``StageContext``) carries what the search knows: the store, the query's terms
and IDFs, fusion's ``Evidence``, the keyword candidates, the candidate pool,
the filters, and the chunk rows read so far (``context.read``; run_search
reuses them for the results). With a budget, each hit then passes through
``ranking_stages(ranking).hits`` (``HitStage``: hit -> hit) before packing
(budget.py), in every mode. ``ranking=None`` is no stage at all: fusion alone.

To add a stage: write it here (a class or function with the ``Stage``
signature, its setting a ``Ranking`` field) and add it to ``ranking_stages``.

Every stage but keyword feedback is on by default, each kept because it helped
on both benchmarks in README's ablation. The fused score judges a chunk alone;
conversation logs and notes split one topic over many small chunks, so a chunk
is also judged by its context:

- **keyword feedback** (``KeywordFeedback``, off: it helped the dev set but
  cost the fixture's MRR): rare terms shared by the top chunks are searched
  too, and each candidate's score is mixed with its coverage of them.
- **read the head** (``ReadHead``): the rows of the first ``depth``
  candidates are read; they are the ones the next stages re-score (and their
  evidence); the rest keep their order.
- **file prior** (``GroupPrior`` by ``file_of``): how well the chunk's whole
  file answers the query, from the candidates found in it: the share of the
  query's IDF that the file matches anywhere (its *coverage*) and the mean of
  its best three cosines, mixed by the query's keyword weight exactly as a
  chunk's own score is. A day that mentions both "gym" and "video games" lifts
  its chunks for "what are her hobbies?", though no single chunk has both.
- **folder prior** (``GroupPrior`` by ``folder_of``): the same over the file's
  folder, so that in one index over many notebooks or conversations the one
  the query is about leads.
- **date boost** (``DateBoost``): when the query names a day, a month or a
  period (dates.py: "21.01.2024", "in March", "last week"), a dated log in that
  window gains ``date_boost`` of the way to 1: ``score + share * (1 - score)``.
  It never filters: a result from another day keeps its score.
- **recency prior** (``RecencyPrior``, opt-in: ``recency`` > 0; it cost both
  benchmarks, README): a dated log's score is mixed with ``0.5 ** (age /
  half-life)``, its age counted back from the newest dated log among the head
  (so an old archive is not all "old"); undated files get the mean prior.
- **headings only** (``headings_last``, in every mode): a chunk with no line
  besides headings and empty bullets (a file title, an empty template section)
  never outranks content: it goes after every content chunk of the head, its
  score lowered to the last content chunk's, so rank order stays score order.
- **remote re-ranking** (``rerank.RemoteRerank``, off unless ``rerank_url`` is
  set): a cross-encoder behind a ``/rerank`` endpoint re-orders the first
  ``rerank_top`` candidates, after the priors.
- **skip filler** (``without_filler``, a hit stage): blank and heading lines
  at a hit's edges are not read (budget.py).

Each prior takes ``share`` of the final score: ``(1 - share) * score + share * prior``.
"""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from indexer.store import ChunkRow, IndexStore

from .budget import Hit, is_filler, without_filler
from .dates import DateBoost, RecencyPrior, Window, in_windows  # noqa: F401 - the date stages; in_windows re-exported
from .filters import SearchFilters
from .fusion import Evidence, keyword_part  # Evidence: importable from here too, as before
from .query import key_pattern
from .rerank import RemoteRerank

RERANK_DEPTH = 100  # fused candidates re-scored (and evidence for the priors); the rest keep their order

Ranked = list[tuple[int, float]]  # (chunk id, score), best first


@dataclass(frozen=True)
class Ranking:
    """Which stages run and their weights; the defaults are what README measured."""

    file_prior: float = 0.3
    folder_prior: float = 0.3
    demote_headings: bool = True
    date_boost: float = 0.1  # a dated log inside a window the query names: score + this * (1 - score)
    recency: float = 0.0  # opt-in: a dated log's share of recency, 0.5 ** (age / recency_half_life)
    recency_half_life: float = 14.0  # days
    date_told: bool = True  # ... or one whose text names a day in it ("yesterday", resolved against the log's date)
    skip_filler: bool = True  # with a budget: blank and heading lines at a result's edges are not read (budget.py)
    best_cosines: int = 3  # a file's (folder's) cosine: the mean of its best this-many chunk cosines
    depth: int = RERANK_DEPTH  # fused candidates re-scored (and evidence for the priors)
    # Keyword feedback (off: it helped the dev set but cost the fixture's MRR, see README):
    expand_terms: int = 0  # this many rare terms of the top fused chunks are searched too
    expand_chunks: int = 5  # ... taken from this many top chunks (a term must occur in two of them)
    expand_weight: float = 0.3  # ... their coverage's share of the score
    expand_when_unsure: bool = True  # ... times (1 - keyword confidence): paraphrased queries get more
    # A /rerank endpoint re-orders the first rerank_top candidates (off: no URL; the settings fill these):
    rerank_url: str = ""
    rerank_model: str = ""
    rerank_top: int = 30


DEFAULT_RANKING = Ranking()


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


@dataclass
class StageContext:
    """What the stages know about one search (run_search builds it after fusion)."""

    store: IndexStore | None  # None: no rows beyond those given (rerank)
    evidence: Evidence  # fusion's weight, coverages and cosines
    term_idfs: Mapping[str, float]  # IDF per query-word prefix (query.prefix_idfs): how chunk text is matched
    terms: Sequence[str] = ()  # the query's words (query.query_terms)
    query: str = ""  # the query as asked (a remote re-ranker reads it)
    idfs: Mapping[str, float] = field(default_factory=dict)  # IDF of each stemmed query term (query.stem_idfs)
    keyword: Sequence[tuple[int, float]] = ()  # the keyword candidates (bm25), best first
    pool: int = 0  # candidates taken from each list
    filters: SearchFilters | None = None
    rows: dict[int, ChunkRow] = field(default_factory=dict)  # chunk rows read so far
    head: tuple[int, ...] = ()  # the leading candidates the priors re-score, in fused order (ReadHead)
    windows: Sequence[Window] = ()  # the day windows the query names (dates.query_windows)
    _found: dict[int, frozenset[str]] = field(default_factory=dict, repr=False)

    def read(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        """The rows of ``ids`` that exist, each read from the store once."""
        ids = list(ids)
        missing = [cid for cid in ids if cid not in self.rows]
        if missing and self.store is not None:
            self.rows.update(self.store.chunks_by_id(missing))
        return {cid: self.rows[cid] for cid in ids if cid in self.rows}

    def matched(self, cid: int) -> frozenset[str]:
        """The query-word prefixes (``term_idfs``) in the text of a chunk already read."""
        if cid not in self._found:
            self._found[cid] = matched_terms(self.rows[cid].text, self._matcher)
        return self._found[cid]

    @functools.cached_property
    def _matcher(self) -> re.Pattern[str] | None:
        return term_matcher(list(self.term_idfs))


class Stage(Protocol):
    def __call__(self, ranked: Ranked, context: StageContext) -> Ranked:
        """``ranked`` re-ranked (or re-scored, or cut), best first."""
        ...


HitStage = Callable[[Hit], Hit]  # one hit before packing, with a budget (budget.without_filler)


@dataclass(frozen=True)
class Stages:
    """The stages of one ``Ranking``, in order."""

    ranked: tuple[Stage, ...] = ()  # after fusion (hybrid mode)
    hits: tuple[HitStage, ...] = ()  # on each hit before packing (with a budget, every mode)
    single: tuple[Stage, ...] = ()  # on the keyword or vector mode's ranking (one list, no fusion)


@functools.lru_cache(maxsize=64)
def ranking_stages(ranking: Ranking | None) -> Stages:
    """The stages that ``ranking`` turns on, in the order they run (None: none, fusion alone)."""
    if ranking is None:
        return Stages()
    ranked: list[Stage] = []
    if ranking.expand_terms > 0:
        ranked.append(KeywordFeedback(
            ranking.expand_terms, ranking.expand_chunks, ranking.expand_weight, ranking.expand_when_unsure
        ))  # fmt: skip
    ranked.append(ReadHead(ranking.depth))
    for share, group in ((ranking.file_prior, file_of), (ranking.folder_prior, folder_of)):
        if share > 0:
            ranked.append(GroupPrior(share, group, ranking.best_cosines))
    if ranking.date_boost > 0:
        ranked.append(DateBoost(ranking.date_boost, ranking.date_told))
    if ranking.recency > 0:
        ranked.append(RecencyPrior(ranking.recency, ranking.recency_half_life))
    if ranking.rerank_url:
        ranked.append(RemoteRerank(ranking.rerank_url, ranking.rerank_model, ranking.rerank_top))
    if ranking.demote_headings:
        ranked.append(headings_last)
    hits: tuple[HitStage, ...] = (without_filler,) if ranking.skip_filler else ()
    single: tuple[Stage, ...] = (ReadHead(ranking.depth), headings_last) if ranking.demote_headings else ()
    return Stages(tuple(ranked), hits, single)


@dataclass(frozen=True)
class KeywordFeedback:
    """``ranked`` re-scored with keyword feedback (``expansion_terms`` of the top
    ``chunks``): each candidate's score mixed with its coverage of the expansion terms."""

    terms: int
    chunks: int
    weight: float
    when_unsure: bool  # the weight times (1 - keyword confidence)

    def __call__(self, ranked: Ranked, context: StageContext) -> Ranked:
        store = context.store
        if not context.terms or store is None:
            return ranked
        idf_total = sum(context.idfs.values())
        unsure = 1 - max((keyword_part(bm25, idf_total) for _, bm25 in context.keyword), default=0.0)
        top = context.read(chunk_id for chunk_id, _ in ranked[: self.chunks])
        chunk_terms = [store.stem(row.text) for row in top.values()]
        vocabulary = list({term for terms in chunk_terms for term in terms})
        total, counts = store.term_document_counts(vocabulary)
        term_idfs = {t: math.log((total - counts.get(t, 0) + 0.5) / (counts.get(t, 0) + 0.5)) for t in vocabulary}
        extra = expansion_terms(chunk_terms, term_idfs, exclude=frozenset(context.idfs), count=self.terms)
        if not extra:
            return ranked
        found = dict(store.keyword_candidates(extra, context.pool, filters=context.filters))
        extra_total = sum(term_idfs[t] for t in extra)
        share = self.weight * (unsure if self.when_unsure else 1.0)
        rescored = [
            (cid, (1 - share) * score + share * keyword_part(found.get(cid, 0.0), extra_total)) for cid, score in ranked
        ]
        rescored.sort(key=lambda item: (-item[1], item[0]))
        return rescored


@dataclass(frozen=True)
class ReadHead:
    """Reads the rows of the first ``depth`` candidates: they become ``context.head``,
    the ones the next stages re-score. A candidate whose row is gone is dropped."""

    depth: int

    def __call__(self, ranked: Ranked, context: StageContext) -> Ranked:
        rows = context.read(chunk_id for chunk_id, _ in ranked[: self.depth])
        head = [(cid, score) for cid, score in ranked[: self.depth] if cid in rows]
        context.head = tuple(cid for cid, _ in head)
        return head + ranked[self.depth :]


@dataclass(frozen=True)
class GroupPrior:
    """The head's candidates mixed with their group's prior (``group_prior``),
    ``(1 - share) * score + share * prior``, and re-sorted; the rest unchanged."""

    share: float
    group: Callable[[str], str]  # a chunk's path -> its group (file_of, folder_of)
    best_cosines: int

    def __call__(self, ranked: Ranked, context: StageContext) -> Ranked:
        size = len(context.head)
        groups = {cid: self.group(context.rows[cid].path) for cid in context.head}
        found = {cid: context.matched(cid) for cid in context.head}
        evidence, term_idfs = context.evidence, context.term_idfs
        prior = group_prior(groups, found, evidence, term_idfs=term_idfs, best_cosines=self.best_cosines)
        head = [(cid, (1 - self.share) * score + self.share * prior[groups[cid]]) for cid, score in ranked[:size]]
        head.sort(key=lambda item: (-item[1], item[0]))
        return head + ranked[size:]


def headings_last(ranked: Ranked, context: StageContext) -> Ranked:
    """The head's chunks with no line besides headings after its content chunks (order kept).

    A demoted chunk's score is lowered to the last content chunk's (when higher), and
    the scores after it to the one before them, so the order printed is score order."""
    size = len(context.head)
    content = {cid: has_content(context.rows[cid].text) for cid in context.head}
    head = ranked[:size]
    kept = [item for item in head if content[item[0]]]
    demoted = [item for item in head if not content[item[0]]]
    if not kept or not demoted:
        return ranked
    out = kept + demoted + ranked[size:]
    floor = kept[-1][1]
    for i in range(len(kept), len(out)):
        if out[i][1] > floor:
            out[i] = (out[i][0], floor)
        floor = out[i][1]
    return out


def rerank(
    ranked: Sequence[tuple[int, float]],
    rows: Mapping[int, ChunkRow],
    evidence: Evidence,
    *,
    term_idfs: Mapping[str, float],
    ranking: Ranking = DEFAULT_RANKING,
    windows: Sequence[Window] = (),
) -> Ranked:
    """The first ``ranking.depth`` of ``ranked`` (best first) re-scored, then the rest: the
    ranking's stages but keyword feedback, on the ``rows`` given (a candidate without one
    is dropped). ``term_idfs``: IDF of each query word's prefix (query.prefix_idfs);
    ``windows``: the days the query names (dates.query_windows)."""
    context = StageContext(None, evidence, term_idfs, rows=dict(rows), windows=windows)
    out = list(ranked)
    for stage in ranking_stages(replace(ranking, expand_terms=0)).ranked:
        out = stage(out, context)
    return out


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


def has_content(text: str) -> bool:
    """True when the chunk has a line that is not blank, a heading or an empty bullet."""
    return not all(is_filler(line) for line in text.split("\n"))


def term_matcher(prefixes: Sequence[str]) -> re.Pattern[str] | None:
    """A case-sensitive regex for lower-cased text: words starting with a prefix (a CJK
    prefix anywhere, see query.match_keys)."""
    return key_pattern(prefixes)


def matched_terms(text: str, matcher: re.Pattern[str] | None) -> frozenset[str]:
    """The query-term prefixes (see term_matcher) found in ``text``."""
    if matcher is None:
        return frozenset()
    return frozenset(matcher.findall(text.lower()))


def file_of(path: str) -> str:
    return path


def folder_of(path: str) -> str:
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
