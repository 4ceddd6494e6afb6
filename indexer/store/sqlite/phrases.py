"""Keyword search's full OR query as the sum of its phrases' bm25, common words scored in NumPy.

FTS5's bm25 of an OR query is a sum over its phrases, in query order, from 0.0: phrase
``i`` adds ``idf_i * ((f * (k1 + 1)) / (f + k1 * (1 - b + b * D / avgdl)))``, where
``idf_i = log((N - n_i + 0.5) / (n_i + 0.5))`` (at least 1e-6) counts the ``n_i`` rows
with the phrase among ``N``, ``avgdl`` is the table's tokens per row, ``f`` the chunk's
weighted count of the phrase (each hit adds its column's weight) and ``D`` its tokens; a
chunk without the phrase adds exactly 0.0. So the OR query's scores are the sums, in query
order, of each phrase's own scores, and FTS5 orders equal scores by chunk id.

FTS5 calls bm25 once per chunk, ~0.6 us each: a word in a third of 100K chunks costs
~20 ms per search. Here a one-term phrase in at least ``COMMON_SHARE`` of the chunks is
scored in NumPy from FTS5's own data, the same arithmetic in the same order: its hits
(an fts5vocab 'instance' table: chunk and column of each), the chunks' token counts
(``%_docsize``) and the table's totals (the averages record), read once per state of
the index, from its second search on (the first runs FTS5's own query: cheaper once). Its scores are kept (``KEEP_ENTRIES`` at most, least recently used dropped).
The other phrases are scored by FTS5 alone (few chunks each). The result is the plain OR
query's top k with identical scores and order (tests/test_keyword_phrases.py); each
word's first scores are checked against FTS5's bm25 (its count and three chunks), and a
mismatch (another SQLite build) turns the NumPy scoring off for the connection.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence

import apsw
import numpy as np

from indexer.store.records import BM25_B, BM25_K1, BM25_WEIGHTS

log = logging.getLogger(__name__)

# A one-term phrase in at least this share of the chunks, and at least COMMON_FROM_ROWS
# of them, is scored in NumPy.
COMMON_SHARE = 0.02
COMMON_FROM_ROWS = 1000
KEEP_ENTRIES = 600_000  # (chunk id, score) pairs kept at most: 7 MB
DENSE_SPAN = 8  # ids up to this many times the chunks: summed in a dense array
COLUMNS = ("text", "heading", "title")  # chunks_fts's columns, in order (BM25_WEIGHTS's)
VOCAB = "temp.memdex_instances"

Ranked = list[tuple[int, float]]
Part = tuple[np.ndarray, np.ndarray]  # (chunk ids, bm25 where higher is better)
WEIGHTS = ", ".join(str(w) for w in BM25_WEIGHTS)
ALONE = f"SELECT rowid, bm25(chunks_fts, {WEIGHTS}) FROM chunks_fts WHERE chunks_fts MATCH ?"


class PhraseScores:
    """Common words' bm25 from FTS5's data, for one state of the index (``version``)."""

    def __init__(self, connection: apsw.Connection) -> None:
        self.connection = connection
        self.usable = True  # False: a check failed; FTS5 scores every phrase
        self._failed: object = None  # a state of the index in which reading FTS5's data failed
        self.forget()

    def forget(self) -> None:
        self._version: object = None
        self._kept: OrderedDict[str, Part] = OrderedDict()
        self._entries = 0
        self._lengths: tuple[np.ndarray | None, np.ndarray, int, float] | None = None  # ids, D, N, avgdl

    def top(
        self, pieces: Sequence[str], tokens: Sequence[Sequence[str]], limit: int, *, total: int,
        found: dict[str, int], version: object,
    ) -> Ranked | None:  # fmt: skip
        """The top ``limit`` chunks of the OR of ``pieces`` (``tokens``: their terms;
        ``found``: chunks per term, of ``total``), best first, ties by chunk id; None when
        no piece is common (FTS5's own query is as cheap) or the NumPy scoring is off."""
        least = max(COMMON_FROM_ROWS, COMMON_SHARE * total)
        common = [len(terms) == 1 and found.get(terms[0], 0) >= least for terms in tokens]
        if not self.usable or not any(common) or limit < 1:
            return None
        if version != self._version:
            # The first search of a state of the index: FTS5's own query. Reading every chunk's
            # length and scoring a common word costs 2-3 times that once; from the second search
            # of the same state (a warm process) they are read once and kept (review).
            self.forget()
            self._version = version
            return None
        if self._failed == version:
            return None
        parts = []
        for piece, terms, is_common in zip(pieces, tokens, common):
            part = self._common(piece, terms[0]) if is_common else None
            if part is None and (not self.usable or self._failed == version):
                return None
            parts.append(part if part is not None else self.alone(piece))
        return ranked(parts, limit, total)

    def alone(self, piece: str, among: Sequence[int] | None = None) -> Part:
        """FTS5's own bm25 of the chunks with the phrase ``piece`` (only those ``among``)."""
        match = '"' + piece.replace('"', '""') + '"'
        if among is None:
            return from_rows(self.connection.execute(ALONE, (match,)).fetchall())
        marks = ",".join("?" * len(among))
        return from_rows(self.connection.execute(f"{ALONE} AND rowid IN ({marks})", (match, *among)).fetchall())

    def _common(self, piece: str, term: str) -> Part | None:
        kept = self._kept.get(term)
        if kept is not None:
            self._kept.move_to_end(term)
            return kept
        try:
            part = self._score(term)
        except apsw.Error as exc:  # a read-only temp schema, busy: FTS5 scores until the index changes
            log.debug("common words scored by FTS5 in this state of the index: %s", exc)
            self._failed = self._version
            return None
        except ValueError as exc:  # an unexpected format: never again on this connection
            log.debug("common words scored by FTS5: %s", exc)
            self.usable = False
            return None
        if not self._agrees(piece, part):
            log.debug("common words scored by FTS5: NumPy's bm25 of %r differs", piece)
            self.usable = False
            return None
        size = len(part[0])
        if size and part[0][-1] < 2**31:
            part = part[0].astype(np.int32), part[1]  # kept: 12 bytes a chunk
        if size <= KEEP_ENTRIES:
            while self._entries + size > KEEP_ENTRIES:
                _, (ids, _) = self._kept.popitem(last=False)
                self._entries -= len(ids)
            self._kept[term] = part
            self._entries += size
        return part

    def _score(self, term: str) -> Part:
        """FTS5's bm25 of the one-term phrase ``term``, for every chunk that has it."""
        self.connection.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {VOCAB} USING fts5vocab(main, chunks_fts, 'instance')")
        which = " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(COLUMNS))
        (hits,) = self.connection.execute(
            f"SELECT group_concat(doc * 4 + (CASE col {which} ELSE 3 END)) FROM {VOCAB} WHERE term = ?", (term,)
        ).fetchone()  # fmt: skip
        if not hits:
            return np.zeros(0, np.int64), np.zeros(0)
        hits = np.fromstring(hits, dtype=np.int64, sep=",")  # in chunk order, then column
        columns = hits & 3
        if (columns == 3).any():
            raise ValueError("a hit in an unknown column")
        chunks = hits >> 2
        starts = np.flatnonzero(np.concatenate(([True], chunks[1:] != chunks[:-1])))
        ids = chunks[starts]
        f = np.add.reduceat(np.asarray(BM25_WEIGHTS, dtype=np.float64)[columns], starts)  # exact: small sums
        lengths = self._lengths or self._read_lengths()
        doc_ids, sizes, rows, avgdl = lengths
        d = sizes[ids] if doc_ids is None else sizes[np.searchsorted(doc_ids, ids)]
        idf = math.log((rows - len(ids) + 0.5) / (len(ids) + 0.5))  # as fts5_aux.c, in the same order
        if idf <= 0.0:
            idf = 1e-6
        k1, b = BM25_K1, BM25_B
        return ids, idf * ((f * (k1 + 1.0)) / (f + k1 * (1 - b + b * d / avgdl)))

    def _read_lengths(self) -> tuple[np.ndarray | None, np.ndarray, int, float]:
        """Every chunk's tokens (dense by id, or with its ids when they are far apart), the
        row count and the average tokens per row, as FTS5 stores them."""
        ids_text, sizes_hex = self.connection.execute(
            "SELECT group_concat(id), group_concat(hex(sz), '') FROM chunks_fts_docsize"
        ).fetchone()  # fmt: skip
        ids = np.fromstring(ids_text, dtype=np.int64, sep=",") if ids_text else np.zeros(0, np.int64)
        sizes = varints(bytes.fromhex(sizes_hex or ""))
        del ids_text, sizes_hex
        if len(sizes) != len(COLUMNS) * len(ids) or (len(ids) and (np.diff(ids) <= 0).any()):
            raise ValueError("unexpected %_docsize rows")
        per_chunk = sizes.reshape(-1, len(COLUMNS)).sum(axis=1, dtype=np.int64).astype(np.float64)
        (averages,) = self.connection.execute("SELECT block FROM chunks_fts_data WHERE id = 1").fetchone()
        totals = wide_varints(bytes(averages))
        rows = max(totals[0], 1)
        avgdl = float(sum(totals[1 : 1 + len(COLUMNS)])) / float(rows)
        if len(ids) and ids[-1] <= DENSE_SPAN * max(len(ids), 1024):
            dense = np.zeros(int(ids[-1]) + 1)
            dense[ids] = per_chunk
            self._lengths = (None, dense, rows, avgdl)
        else:
            self._lengths = (ids, per_chunk, rows, avgdl)
        return self._lengths

    def _agrees(self, piece: str, part: Part) -> bool:
        """FTS5's count of the phrase and its bm25 of three of the chunks equal NumPy's."""
        ids, scores = part
        match = '"' + piece.replace('"', '""') + '"'
        (count,) = self.connection.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (match,)).fetchone()
        if count != len(ids):
            return False
        if not len(ids):
            return True
        picks = sorted({0, len(ids) // 2, len(ids) - 1})
        check_ids, check_scores = self.alone(piece, [int(ids[i]) for i in picks])
        return check_ids.tolist() == [int(ids[i]) for i in picks] and check_scores.tolist() == [
            float(scores[i]) for i in picks
        ]


def varints(data: bytes) -> np.ndarray:
    """SQLite's varints (7 bits a byte, high bit set: more follow), up to 4 bytes each."""
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw < 128).astype(np.int32)
    if len(raw) and (not len(ends) or ends[-1] != len(raw) - 1):
        raise ValueError("a truncated varint")
    lengths = np.diff(ends, prepend=-1)
    if len(ends) and lengths.max() > 4:
        raise ValueError("a varint over 4 bytes")
    values = (raw[ends] & 127).astype(np.int32)  # the last byte holds the lowest 7 bits
    for k in range(1, int(lengths.max()) if len(ends) else 0):
        longer = np.flatnonzero(lengths > k)
        values[longer] |= (raw[ends[longer] - k] & 127).astype(np.int32) << (7 * k)
    return values


def wide_varints(data: bytes) -> list[int]:
    """The same, one by one, any length (the averages record: totals over every chunk)."""
    values, value, count = [], 0, 0
    for byte in data:
        count += 1
        if count == 9:  # the ninth byte holds 8 bits
            values.append((value << 8) | byte)
            value, count = 0, 0
        elif byte & 128:
            value = (value << 7) | (byte & 127)
        else:
            values.append((value << 7) | byte)
            value, count = 0, 0
    return values


def ranked(parts: Sequence[Part], limit: int, total: int) -> Ranked:
    """The top ``limit`` (chunk id, score) of the sums of ``parts``, added in order from
    0.0 as FTS5 does; best first, equal scores by chunk id."""
    parts = [(ids, values) for ids, values in parts if len(ids)]
    if not parts:
        return []
    high = max(int(ids.max()) for ids, _ in parts)
    if high <= DENSE_SPAN * max(total, 1024):
        sums = np.zeros(high + 1)
        seen = np.zeros(high + 1, dtype=bool)
        for ids, values in parts:
            sums[ids] += values  # a phrase's chunks are distinct: one addition each
            seen[ids] = True
        ids = np.flatnonzero(seen)
        sums = sums[ids]
    else:  # ids spread far apart (many rewrites): sum over their union
        ids = np.unique(np.concatenate([ids for ids, _ in parts]))
        sums = np.zeros(len(ids))
        for part_ids, values in parts:
            sums[np.searchsorted(ids, part_ids)] += values
    if len(ids) > limit:
        kth = np.partition(sums, len(sums) - limit)[len(sums) - limit]
        keep = sums >= kth  # the top ``limit`` and every chunk tied with the last
        ids, sums = ids[keep], sums[keep]
    order = np.lexsort((ids, -sums))[:limit]
    return list(zip(ids[order].tolist(), sums[order].tolist()))


def from_rows(rows: Sequence[tuple[int, float]]) -> Part:
    """(ids, scores) of FTS5 rows (rowid, bm25 rank: lower is better), in rowid order."""
    ids = np.fromiter((row[0] for row in rows), np.int64, count=len(rows))
    scores = np.fromiter((row[1] for row in rows), np.float64, count=len(rows))
    return ids, -scores
