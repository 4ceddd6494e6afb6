"""The one tokenizer both engines index and search with: FTS5's porter stemmer
over unicode61 (diacritics removed), run through APSW's tokenizer API.

SQLite's ``chunks_fts`` is declared with ``FTS_TOKENIZE``; PostgreSQL's postings
are built on the client with ``stems``, so one definition serves both engines.
APSW is used here as a text library, not as a database: no engine is named.
"""

from __future__ import annotations

import functools

import apsw

# Changing it needs a new migration in each engine that rebuilds its keyword index.
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"


@functools.cache
def _tokenizer() -> apsw.FTS5Tokenizer:
    name, *args = FTS_TOKENIZE.split()
    return apsw.Connection(":memory:").fts5_tokenizer(name, args)


def stems(text: str, *, query: bool = False) -> list[str]:
    """The terms FTS5 indexes (or, with ``query``, looks up) for ``text``: chunks_fts's
    tokenizer, so both engines stem queries and chunks alike."""
    reason = apsw.FTS5_TOKENIZE_QUERY if query else apsw.FTS5_TOKENIZE_DOCUMENT
    return [token[2] for token in _tokenizer()(text.encode("utf-8"), reason, None)]
