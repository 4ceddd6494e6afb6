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

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from .store import ChunkRow

_PATH_WORD = re.compile(r"[\W_]+")
HEADING = re.compile(r"^\s{0,3}#{1,6}(\s|$)")


@dataclass(frozen=True)
class Ranking:
    """Which stages run, and their weights (the defaults are what README measured)."""

    file_prior: float = 0.0  # share of the final score that comes from the chunk's file
    folder_prior: float = 0.0  # the same, from the chunk's folder
    path_prior: float = 0.0  # share from query words naming the chunk's file (its path words)
    file_cosines: int = 3  # the file's cosine: mean of its best this-many chunk cosines
    demote_headings: bool = True
    neighbours: float = 0.0  # add this share of the best adjacent candidate's score
    diversity: float = 0.0  # each earlier result from the same file discounts a chunk by this share
    focus_lines: int = 0  # with a budget: cut longer chunks to their best lines (0: off)
    focus_context: int = 0  # lines kept around each best line


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
    if ranking.path_prior > 0:
        named = path_names(scores, rows, term_pattern)
        share = ranking.path_prior
        scores = {cid: (1 - share) * score + share * named[rows[cid].path] for cid, score in scores.items()}
    if ranking.folder_prior > 0:
        folder = {cid: _folder(rows[cid].path) for cid in scores}
        prior = group_prior(scores, rows, evidence, group=folder, term_idfs=term_idfs, term_pattern=term_pattern, ranking=ranking)
        share = ranking.folder_prior
        scores = {cid: (1 - share) * score + share * prior[folder[cid]] for cid, score in scores.items()}
    if ranking.neighbours > 0:
        scores = neighbour_boost(scores, rows, ranking.neighbours)
    order = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    if ranking.diversity > 0:
        order = diversify(order, rows, ranking.diversity)
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


def _folder(path: str) -> str:
    return path.rpartition("/")[0]


def file_prior(
    scores: Mapping[int, float],
    rows: Mapping[int, ChunkRow],
    evidence: Evidence,
    *,
    term_idfs: Mapping[str, float],
    term_pattern: re.Pattern[str] | None,
    ranking: Ranking,
) -> dict[str, float]:
    """path -> the file's score in [0, 1] (see group_prior)."""
    group = {cid: rows[cid].path for cid in scores}
    return group_prior(scores, rows, evidence, group=group, term_idfs=term_idfs, term_pattern=term_pattern, ranking=ranking)


def group_prior(
    scores: Mapping[int, float],
    rows: Mapping[int, ChunkRow],
    evidence: Evidence,
    *,
    group: Mapping[int, str],
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
        found[group[cid]] |= matched_terms(row.text, term_pattern)
        cosines[group[cid]].append(max(0.0, evidence.cosine.get(cid, 0.0)))
    prior = {}
    for path, terms in found.items():
        coverage = sum(term_idfs.get(term, 0.0) for term in terms) / total_idf if total_idf > 0 else 0.0
        best = sorted(cosines[path], reverse=True)[: ranking.file_cosines]
        cosine = sum(best) / ranking.file_cosines
        prior[path] = evidence.weight * min(1.0, coverage) + (1 - evidence.weight) * cosine
    return prior


def neighbour_boost(scores: Mapping[int, float], rows: Mapping[int, ChunkRow], share: float) -> dict[int, float]:
    """Each chunk gains ``share`` of its best neighbour's score (a candidate of the same
    file that ends or starts within two lines of it)."""
    by_path: dict[str, list[ChunkRow]] = defaultdict(list)
    for cid in scores:
        by_path[rows[cid].path].append(rows[cid])
    boosted = dict(scores)
    for chunks in by_path.values():
        chunks.sort(key=lambda row: row.start_line)
        for left, right in zip(chunks, chunks[1:]):
            if right.start_line - left.end_line <= 2:
                boosted[left.id] = max(boosted[left.id], scores[left.id] + share * scores[right.id])
                boosted[right.id] = max(boosted[right.id], scores[right.id] + share * scores[left.id])
    return boosted


def diversify(order: Sequence[tuple[int, float]], rows: Mapping[int, ChunkRow], share: float) -> list[tuple[int, float]]:
    """Greedy re-ordering: a chunk's score is discounted by ``share`` for each chunk
    of the same file already placed above it (results spread over files and days)."""
    remaining = list(order)
    placed: dict[str, int] = defaultdict(int)
    out: list[tuple[int, float]] = []
    while remaining:
        best = max(range(len(remaining)), key=lambda i: (remaining[i][1] * (1 - share) ** placed[rows[remaining[i][0]].path], -i))
        cid, score = remaining.pop(best)
        out.append((cid, score * (1 - share) ** placed[rows[cid].path]))
        placed[rows[cid].path] += 1
        if len(out) >= 120:  # past what any budget reads: keep the rest in order
            out.extend(remaining)
            break
    return out


def path_names(
    scores: Mapping[int, float], rows: Mapping[int, ChunkRow], term_pattern: re.Pattern[str] | None
) -> dict[str, float]:
    """path -> how specifically the query's words name it, in [0, 1].

    A query word found in the path words of some candidate files but not all
    of them picks those files out (a person's note, a project's folder); its
    weight is log(candidate files / files it names), so a word every candidate
    path shares ("daily", a common folder) weighs nothing. Scaled so the best
    named file scores 1."""
    paths = {rows[cid].path for cid in scores}
    words = {path: matched_terms(" ".join(_PATH_WORD.split(path)), term_pattern) for path in paths}
    naming: dict[str, int] = defaultdict(int)
    for found in words.values():
        for term in found:
            naming[term] += 1
    total = len(paths)
    weight = {path: sum(math.log(total / naming[t]) for t in found) for path, found in words.items()}
    best = max(weight.values(), default=0.0)
    return {path: (w / best if best > 0 else 0.0) for path, w in weight.items()}
