"""What search knows about the query itself: its words, their IDFs, and the snippet
and line weight drawn from them.

``query_terms`` keeps a query's distinct words, stopwords dropped unless nothing
else is left. The IDFs are FTS5's (``log((N - n + 0.5) / (n + 0.5))`` over the
stemmed terms), so that fusion's keyword coverage is on bm25's scale
(fusion.py). A snippet is the line of a result that mentions the most query
words, matched by their first five letters (so "hobbies" finds "hobby"), or a
CJK word by its character pairs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from indexer.store import IndexStore
from indexer.store.records import bm25_idf
from indexer.store.tokenizer import has_cjk, query_pieces

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


def query_terms(query: str) -> list[str]:
    """Distinct words of the query, stopwords dropped unless nothing else is left."""
    words = [word.lower() for word in WORD.findall(query)]
    content = [word for word in words if word not in STOPWORDS]
    chosen = content or words
    return list(dict.fromkeys(chosen))[:MAX_QUERY_TERMS]


def idf_total(store: IndexStore, terms: Sequence[str]) -> float:
    """Sum of FTS5-style IDFs of the query's stemmed terms."""
    return sum(stem_idfs(store, terms).values())


def stem_idfs(store: IndexStore, terms: Sequence[str]) -> dict[str, float]:
    """FTS5-style IDF of each of the query's stemmed terms."""
    stems = list(dict.fromkeys(stem for term in terms for stem in store.stem(term)))
    total, counts = store.term_document_counts(stems)
    return {s: bm25_idf(total, counts.get(s, 0)) for s in stems}


def match_keys(term: str) -> list[str]:
    """How a query word is matched in chunk text: its first five letters (words of more
    than two letters); a CJK word by its character pairs (or its one character), found
    anywhere in unspaced text (tokenizer.query_pieces), with its other parts as words."""
    pieces = [term] if not has_cjk(term) else query_pieces(term)
    return list(dict.fromkeys(p.lower()[:5] if not has_cjk(p) else p for p in pieces if has_cjk(p) or len(p) > 2))


def key_pattern(keys: Sequence[str], flags: int = 0) -> re.Pattern[str] | None:
    """A regex for ``match_keys``: words that start like a key, and CJK keys anywhere."""
    if not keys:
        return None
    ordered = sorted(set(keys), key=len, reverse=True)
    words = [r"\b" + re.escape(k) for k in ordered if not has_cjk(k)]
    return re.compile("(?:" + "|".join(words + [re.escape(k) for k in ordered if has_cjk(k)]) + ")", flags)


# FTS5's bm25 floors a term's IDF at 1e-6 when it is in at least half the chunks
# (log((N - n + 0.5) / (n + 0.5)) <= 0): such a term adds nothing to any score.
FLOOR_IDF = 1e-6


def keyword_query_terms(store: IndexStore, terms: Sequence[str], idfs: dict[str, float]) -> list[str]:
    """The terms worth sending to the keyword index: a term whose every stem is in at least
    half the chunks scores nothing (FLOOR_IDF) yet costs a walk of its whole posting list
    (a speaker's name on every line of a chat log), so it is left out while another term
    remains. The chunks that matched only it had bm25 scores of ~0: at the tail of the pool."""
    kept = [term for term in terms if any(idfs.get(stem, 1.0) > FLOOR_IDF for stem in store.stem(term))]
    return kept or list(terms)


def prefix_idfs(store: IndexStore, terms: Sequence[str], idfs: dict[str, float]) -> dict[str, float]:
    """IDF per snippet key (a query term's first five letters or a CJK pair; see match_keys)."""
    out: dict[str, float] = {}
    for term in terms:
        for key in match_keys(term):
            idf = max((idfs.get(stem, 0.0) for stem in store.stem(key if has_cjk(key) else term)), default=0.0)
            out[key] = max(out.get(key, 0.0), idf)
    return out


def line_weight(pattern: re.Pattern[str] | None) -> Callable[[str], float]:
    """How well a line matches the query: the number of distinct query words it has."""
    if pattern is None:
        return lambda line: 0.0
    return lambda line: float(len({m.lower() for m in pattern.findall(line)}))


def snippet_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    """A regex matching words that start like a query term (its first five letters) and
    a CJK term's character pairs anywhere (match_keys)."""
    return key_pattern([key for term in terms for key in match_keys(term)], re.IGNORECASE)


def snippet(text: str, terms: Sequence[str]) -> str:
    """The line that mentions the most query words (or the first content line), shortened."""
    return best_line(text, snippet_pattern(terms))


def best_line(text: str, pattern: re.Pattern[str] | None) -> str:
    """``snippet`` with the query's ``snippet_pattern`` already built."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        return ""
    content = [line for line in lines if not line.startswith("#")] or lines
    best = content[0]
    if pattern is not None:
        best = max(content, key=lambda line: len({m.lower() for m in pattern.findall(line)}))
    if len(best) > SNIPPET_CHARS:
        found = pattern.search(best) if pattern is not None else None
        start = 0 if found is None or found.start() < SNIPPET_CHARS // 2 else _cut_before(best, found.start())
        end = start + SNIPPET_CHARS - (2 if start else 1)
        best = ("…" if start else "") + best[start:end].strip() + ("…" if end < len(best) else "")
    return best


def _cut_before(line: str, match: int) -> int:
    """Where a shortened line starts so that it shows the match: at a space a quarter of the
    snippet before it, or (text without spaces there, as CJK is) at that point itself."""
    cut = match - SNIPPET_CHARS // 4
    space = line.rfind(" ", 0, cut)
    return space + 1 if space >= 0 and cut - space <= SNIPPET_CHARS // 4 else cut
