"""The one tokenizer both engines index and search with: FTS5's porter stemmer
over unicode61 (diacritics removed), run through APSW's tokenizer API, after
``fts_text`` has split Chinese, Japanese and Korean runs into words.

unicode61 splits on spaces and punctuation, so an unspaced CJK sentence would be
one token and ``牙医`` would never be found inside ``我的牙医预约``. ``fts_text``
therefore rewrites each CJK run (NFKC-normalised) as its characters and its
overlapping character pairs, ``牙医预约`` -> ``牙 牙医 医 医预 预 预约 约``; a
query's CJK run looks up its pairs (``query_pieces``), or the character itself
when it is one character long. Each pair is a term of its own, so a query never
needs every pair to match (bench/bench_cjk.py measured this against a trigram
index and a dictionary segmenter). ASCII text is left exactly as it is.

SQLite's ``chunks_fts`` holds ``fts_text`` of each column and is declared with
``FTS_TOKENIZE``; PostgreSQL's postings are built on the client with ``stems``,
so one definition serves both engines. APSW is used here as a text library, not
as a database: no engine is named.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

import apsw

FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"
# What the keyword index was built with (meta "tokenizer"). Changing FTS_TOKENIZE, fts_text or
# query_pieces means a new version: every index is then rebuilt once from the embedding cache
# (a rebuild makes a new SQLite file, whose chunks_fts is declared with FTS_TOKENIZE).
# 1 (or no record): FTS_TOKENIZE alone; 2: NFKC and CJK runs as characters and pairs.
TOKENIZER_VERSION = "2"

# Scripts written without spaces between words (Korean puts particles on its words):
# Hangul Jamo, Hiragana, Katakana (not its middle dot), Hangul compatibility Jamo,
# Katakana extensions, CJK ideographs (extension A, the main block, compatibility,
# extensions B-H), Hangul syllables and Jamo extensions, the iteration marks 々 and 〇.
_CJK = (
    "\u1100-\u11ff\u3005\u3007\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u3130-\u318f"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff"
    "\U00020000-\U0003347f"
)
CJK_RUN = re.compile(f"[{_CJK}]+")
# A query word looks up at most this many pieces (as a query has at most 32 words): a pasted
# page of Chinese would otherwise OR thousands of pairs (20,000 characters took 3 s).
MAX_QUERY_PIECES = 64


def has_cjk(text: str) -> bool:
    return not text.isascii() and CJK_RUN.search(text) is not None


def fts_text(text: str) -> str:
    """The text the keyword index holds for ``text``: ASCII as it is; anything else
    NFKC-normalised (fullwidth letters, halfwidth kana, composed accents) with each
    CJK run written as its characters and their overlapping pairs."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    return CJK_RUN.sub(lambda run: " " + " ".join(_document_grams(run.group())) + " ", text)


def query_pieces(term: str) -> list[str]:
    """The parts of a query word that are looked up separately (ORed): the word itself
    when it has no CJK; else its other-script parts and each CJK run's pairs (or the
    run when it is one character), the first ``MAX_QUERY_PIECES`` distinct ones."""
    if term.isascii():
        return [term]
    term = unicodedata.normalize("NFKC", term)
    pieces: list[str] = []
    at = 0
    for run in CJK_RUN.finditer(term):
        if term[at : run.start()].strip():
            pieces.append(term[at : run.start()])
        chars = run.group()
        pieces.extend([chars] if len(chars) == 1 else [chars[i : i + 2] for i in range(len(chars) - 1)])
        at = run.end()
    if term[at:].strip():
        pieces.append(term[at:])
    return list(dict.fromkeys(pieces))[:MAX_QUERY_PIECES]


def _document_grams(run: str) -> Iterator[str]:
    for i, char in enumerate(run):
        yield char
        if i + 1 < len(run):
            yield run[i : i + 2]


@functools.cache
def _tokenizer() -> apsw.FTS5Tokenizer:
    name, *args = FTS_TOKENIZE.split()
    return apsw.Connection(":memory:").fts5_tokenizer(name, args)


def stems(text: str, *, query: bool = False) -> list[str]:
    """The terms FTS5 indexes for ``text`` (what ``chunks_fts`` holds for it), or, with
    ``query``, looks up for it (``query_pieces``): both engines stem alike."""
    tokenize = _tokenizer()
    if not query:
        return [token[2] for token in tokenize(fts_text(text).encode("utf-8"), apsw.FTS5_TOKENIZE_DOCUMENT, None)]
    return [
        token[2]
        for piece in query_pieces(text)
        for token in tokenize(piece.encode("utf-8"), apsw.FTS5_TOKENIZE_QUERY, None)
    ]
