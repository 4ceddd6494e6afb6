"""Keyword search's top k by FTS5 bm25, without scoring every chunk that has a common word.

An OR query scores every chunk that has any of its words: at 100K chunks a word in a
third of them ("Ines" stems to "in") costs tens of thousands of bm25 calls for chunks
that rarely reach the top k. Here the top k stay exactly the full query's (max-score
pruning), found with fewer chunks scored:

- a phrase adds less than ``idf * (k1 + 1)`` to any chunk's bm25 (FTS5's formula,
  ``idf * f * (k1 + 1) / (f + k1 * (1 - b + b * D / avgdl))``): a chunk that has only
  the phrases ``S`` scores below ``ceiling(S)``, the sum of theirs;
- ``R``, the rarest phrases (every one in under ``COMMON_SHARE`` of the chunks, and more
  until they reach ``REACH`` times k chunks), is searched first: ``R`` scores the chunks
  with no other phrase, ``(R) AND (rest)`` those with both, so the chunks with a phrase
  of ``R`` get their full scores. Their k-th best is a floor for the full query's k-th;
- the most common of the rest whose ceilings together stay under that floor are ``S``,
  skipped: a chunk with only those cannot reach the top k. The others (``M``) are scored
  over the chunks without ``R``, the same way (``(M) NOT (R)``, ``(M) AND (S) NOT (R)``).

A query without a common phrase, or whose common phrases are in fewer than
``SPLIT_FROM_ROWS`` chunks together, or whose rare phrases find fewer than k chunks,
or with nothing to skip, is the plain OR query. The scores are FTS5's own (a sum over
the phrases in another order: equal to ~1e-16); ties are ordered by chunk id.

First of all, when a piece is a common word, ``whole`` (phrases.py: the common words
scored in NumPy from FTS5's data) answers the plain OR query itself, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from indexer.store.records import BM25_K1, bm25_idf
from indexer.store.tokenizer import query_pieces

# A phrase in at least this share of the chunks is "common": left out of the first query.
COMMON_SHARE = 0.1
# Below this many chunks with a common phrase, the plain query is cheap enough: one query.
SPLIT_FROM_ROWS = 5000
# The rare pieces: at least those, in at least this many times k chunks together.
REACH = 2

Ranked = list[tuple[int, float]]  # (chunk id, bm25 where higher is better), best first
# run(match expression, limit) -> the top ``limit`` chunks of that FTS5 MATCH, best first
Run = Callable[[str, int], Ranked]


def top_bm25(pieces: Sequence[str], tokens: Sequence[Sequence[str]], limit: int, *, run: Run,
             counts: Callable[[Sequence[str]], tuple[int, dict[str, int]]],
             whole: Callable[[int, dict[str, int]], Ranked | None] | None = None) -> Ranked:  # fmt: skip
    """The top ``limit`` chunks of the OR of the query ``pieces`` (``tokens``: each
    piece's terms as FTS5 looks them up; ``counts``: (chunks, chunks per term)).
    ``whole(limit, chunks per term)``: the plain OR query's result another way (phrases.py),
    or None to run it."""
    full = either(pieces, range(len(pieces)))
    if whole is None and (len(pieces) < 2 or limit < 1):
        return run(full, limit)
    total, found = counts(sorted({term for terms in tokens for term in terms}))

    def plain(count: int) -> Ranked:
        return run(full, count)

    ranked = whole(limit, found) if whole is not None else None
    if ranked is not None:
        return ranked
    if len(pieces) < 2 or limit < 1:
        return plain(limit)
    # A piece of one term: FTS5's IDF is that term's (chunks_vocab). A phrase of several
    # terms is in fewer chunks than any of them: it is never skipped (its count unknown).
    frequency = [found.get(terms[0], 0) if len(terms) == 1 else None for terms in tokens]
    rare, rest = split_rare(frequency, limit, common=COMMON_SHARE * total)
    if not rest or sum(frequency[i] or 0 for i in rest) < SPLIT_FROM_ROWS:
        return plain(limit)
    # The exact top k of the chunks with a rare piece: its k-th score is a floor for the k-th.
    with_rest = f"({either(pieces, rare)}) AND ({either(pieces, rest)})"
    scores = best_of(run(either(pieces, rare), limit), run(with_rest, limit))
    if len(scores) < limit:  # the chunks with only common pieces are needed to fill k
        return plain(limit)
    floor = sorted(scores.values(), reverse=True)[limit - 1]
    skipped: list[int] = []
    ceiling = 0.0
    for i in sorted(rest, key=lambda i: frequency[i] or 0, reverse=True):  # most common (costliest) first
        if frequency[i] is None or ceiling + phrase_ceiling(total, frequency[i] or 0) > floor:
            break
        skipped.append(i)
        ceiling += phrase_ceiling(total, frequency[i] or 0)
    if not skipped:
        return plain(limit)
    middle = [i for i in rest if i not in skipped]
    if middle:  # the chunks with a middle piece and no rare one, scored exactly too
        without = f"NOT ({either(pieces, rare)})"
        scores = best_of(
            list(scores.items()), run(f"({either(pieces, middle)}) {without}", limit),
            run(f"({either(pieces, middle)}) AND ({either(pieces, skipped)}) {without}", limit),
        )  # fmt: skip
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]
    if len(ranked) < limit or ranked[-1][1] < ceiling:  # never expected (floor <= k-th); stay exact
        return plain(limit)
    return ranked


def split_rare(frequency: Sequence[int | None], limit: int, *, common: float) -> tuple[list[int], list[int]]:
    """(rare, rest) piece indexes: the rarest pieces, all those under ``common`` chunks and
    then more, rarest first, until they are in at least ``REACH * limit`` chunks together."""
    order = sorted(range(len(frequency)), key=lambda i: frequency[i] or 0)
    rare: list[int] = []
    reach = 0
    for i in order:
        n = frequency[i]
        if rare and n is not None and n >= common and reach >= REACH * limit:
            break
        rare.append(i)
        reach += n or 0
    return sorted(rare), [i for i in range(len(frequency)) if i not in rare]


def best_of(*lists: Ranked) -> dict[int, float]:
    """chunk id -> its best score in ``lists`` (a query without some of a chunk's pieces
    scores it lower: the highest is its full score)."""
    scores: dict[int, float] = {}
    for ranked in lists:
        for chunk_id, score in ranked:
            if score > scores.get(chunk_id, -math.inf):
                scores[chunk_id] = score
    return scores


def phrase_ceiling(total: int, frequency: int) -> float:
    """More than a phrase in ``frequency`` of ``total`` chunks adds to any chunk's bm25:
    FTS5's IDF (floored at 1e-6) times ``k1 + 1``, with a margin for rounding."""
    return bm25_idf(total, frequency) * (BM25_K1 + 1) * (1 + 1e-9) + 1e-12


def either(pieces: Sequence[str], which: Iterable[int]) -> str:
    return " OR ".join(quoted(pieces[i]) for i in which)


def quoted(piece: str) -> str:
    """A piece as one FTS5 string (so no operator survives)."""
    return '"' + piece.replace('"', '""') + '"'


def match_expression(terms: Sequence[str]) -> str | None:
    """An FTS5 MATCH string that ORs the terms' pieces (a CJK word's character pairs:
    tokenizer.query_pieces), each quoted so no operator survives. A piece two words share
    counts twice, as PostgreSQL's bm25 counts it (and as two words of one stem always have)."""
    pieces = [piece for term in terms for piece in query_pieces(term)]
    if not pieces:
        return None
    return " OR ".join(quoted(piece) for piece in pieces)
