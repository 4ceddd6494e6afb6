"""Exact cosine search over an in-memory matrix, reading most rows as one byte per number.

A scan of a float32 matrix is bound by memory: at 100K x 384 it reads 151 MB per query.
Each row also has an int8 copy (``Int8Rows``: a scale per row, and a bound on what the
rounding lost), a quarter of the bytes. A query first scores every row from that copy,
with an error bound that covers the rounding of the copy and of both computations in
float32, then scores exactly (float32, as before) only the rows whose bound can still
reach the k-th best. The top k are the exact scan's: a row left out has an exact score
strictly below the k-th one (``NumpyVectors.nearest``). At 98,450 x 384: ~400 rows scored
in float32 for k = 200, 0.65x the scan's CPU, the same lists (bench/bench_matrix_int8.py).

Small matrices (under ``INT8_FROM_ROWS`` rows) are scanned in float32 alone.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

# From this many rows the matrix keeps an int8 copy and a query reads that first.
INT8_FROM_ROWS = 16384
BLOCK = 2048  # int8 rows turned into float32 at a time: their float32 copy stays in cache
UNIT = 2.0**-24  # float32's unit roundoff
GROUP = 4  # rows a gemv kernel scores together (see NumpyVectors._nearest_int8)


@dataclass(frozen=True)
class Int8Rows:
    """Each row ``x`` as ``scale * codes + r`` with integer codes in [-127, 127] and
    ``|r| <= lost`` (Euclidean norm, rounded up)."""

    codes: np.ndarray  # (rows, dimensions) int8
    scales: np.ndarray  # (rows,) float32: the row's largest absolute value / 127
    lost: np.ndarray  # (rows,) float32

    @classmethod
    def of(cls, matrix: np.ndarray) -> Int8Rows:
        rows, dimensions = matrix.shape
        codes = np.empty((rows, dimensions), dtype=np.int8)
        scales = np.empty(rows, dtype=np.float32)
        lost = np.empty(rows, dtype=np.float32)
        for start in range(0, rows, BLOCK // 2):  # bounded temporaries (float64 below)
            block = matrix[start : start + BLOCK // 2]
            scale = np.abs(block).max(axis=1) / np.float32(127)
            rounded = np.clip(np.rint(block / np.where(scale > 0, scale, 1)[:, None]), -127, 127)
            codes[start : start + len(block)] = rounded
            scales[start : start + len(block)] = scale
            rest = block.astype(np.float64) - scale.astype(np.float64)[:, None] * rounded
            lost[start : start + len(block)] = np.nextafter(np.sqrt(np.square(rest).sum(axis=1)).astype(np.float32), np.inf)
        return cls(codes, scales, lost)

    def take(self, rows: np.ndarray) -> Int8Rows:
        return Int8Rows(self.codes[rows], self.scales[rows], self.lost[rows])

    def kept_then(self, keep: np.ndarray, new: Int8Rows) -> Int8Rows:
        """The rows where ``keep`` holds, then ``new``'s: one copy (``kept_then``)."""
        return Int8Rows(*(kept_then(a, keep, b) for a, b in zip(
            (self.codes, self.scales, self.lost), (new.codes, new.scales, new.lost))))  # fmt: skip

    def bounds(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(approximate score, error bound) of every row: the float32 score of the row,
        ``matrix @ query``, is within ``bound`` of ``approximate``."""
        rows, dimensions = self.codes.shape
        approximate = np.empty(rows, dtype=np.float32)
        buffer = _buffer(dimensions)
        for start in range(0, rows, BLOCK):
            block = buffer[: min(BLOCK, rows - start)]
            block[...] = self.codes[start : start + BLOCK]
            np.matmul(block, query, out=approximate[start : start + len(block)])
        approximate *= self.scales
        # |x.q - s(c.q)| <= |r| |q|; each float32 dot product of d terms is off by at most
        # gamma * sum |x_i q_i| <= gamma * 127 s |q|_1 (both the int8 one and the exact one);
        # and the scaling and the bounds' own arithmetic by a few units of 127 s |q|_1.
        gamma = dimensions * UNIT / (1 - dimensions * UNIT)
        l1 = float(np.abs(query.astype(np.float64)).sum())
        l2 = math.sqrt(float(np.square(query.astype(np.float64)).sum()))
        bound = self.lost * np.float32(l2)
        bound += self.scales * np.float32(127 * l1 * (2 * gamma + 8 * UNIT))
        bound *= np.float32(1 + 2.0**-8)
        # Products and sums that underflow into subnormals lose up to half the smallest
        # subnormal each, whatever their size (review: vectors scaled by 1e-22 broke the bound).
        bound += np.float32((2 * dimensions + 4) * 2.0**-149)
        return approximate, bound


def kept_then(old: np.ndarray, keep: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``concatenate([old[keep], new])`` written straight into its result: a refresh of a large
    matrix holds the old rows and one new array, not a third, temporary copy of the kept ones."""
    kept = int(np.count_nonzero(keep))
    out = np.empty((kept + len(new), *old.shape[1:]), dtype=old.dtype)
    at = 0
    for start in range(0, len(old), BLOCK):  # block by block: the temporaries stay small
        rows = old[start : start + BLOCK][keep[start : start + BLOCK]]
        out[at : at + len(rows)] = rows
        at += len(rows)
    out[kept:] = new
    return out


@functools.cache
def _buffers() -> threading.local:
    return threading.local()


def _buffer(dimensions: int) -> np.ndarray:
    """This thread's float32 block (one per thread: searches may run on several)."""
    local = _buffers()
    buffer = getattr(local, "block", None)
    if buffer is None or buffer.shape[1] != dimensions:
        buffer = local.block = np.empty((BLOCK, dimensions), dtype=np.float32)
    return buffer


class NumpyVectors:
    """Exact cosine search over an in-memory matrix whose rows are the chunks ``ids`` (ascending).
    ``int8``: the rows' int8 copy when the caller has it (vectors.LiveMatrix keeps it across
    refreshes); else it is made here for a matrix of at least ``int8_from`` rows."""

    def __init__(
        self, ids: Sequence[int], matrix: np.ndarray, *, int8: Int8Rows | None = None, int8_from: int | None = None
    ) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        if np.any(order != np.arange(len(ids))):
            ids, matrix = ids[order], matrix[order]
            int8 = int8.take(order) if int8 is not None else None
        self.ids = ids
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if int8 is None and len(ids) >= (INT8_FROM_ROWS if int8_from is None else int8_from) and self.matrix.shape[1]:
            int8 = Int8Rows.of(self.matrix)
        self.int8 = int8

    def nearest(self, query: np.ndarray, k: int, *, only: Sequence[int] | None = None) -> list[tuple[int, float]]:
        if len(self.ids) == 0 or k < 1:
            return []
        query = np.asarray(query, dtype=np.float32)
        blas = _blas_threads()
        with blas.limit(limits=1) if blas is not None else nullcontext():
            if only is None and self.int8 is not None and 4 * k <= len(self.ids):
                found = self._nearest_int8(query, k)
                if found is not None:
                    return found
            return self._nearest(query, k, only)

    def _nearest(self, query: np.ndarray, k: int, only: Sequence[int] | None) -> list[tuple[int, float]]:
        if only is None:
            ids, scores = self.ids, self.matrix @ query
        else:
            wanted = np.unique(np.asarray(list(only), dtype=np.int64))
            rows = np.searchsorted(self.ids, wanted)
            rows = rows[(rows < len(self.ids)) & (self.ids[np.minimum(rows, len(self.ids) - 1)] == wanted)]
            if len(rows) == 0:
                return []
            ids, scores = self.ids[rows], (self.matrix @ query)[rows]  # no copy of the allowed rows
        return _best(ids, scores, k)

    def _nearest_int8(self, query: np.ndarray, k: int) -> list[tuple[int, float]] | None:
        """The exact top k from the int8 copy and the float32 rows that can reach them;
        None when the bounds say nothing (a query that is not finite, or too many rows)."""
        assert self.int8 is not None
        approximate, bound = self.int8.bounds(query)
        lower = approximate - bound
        # At least k rows score at least ``floor`` exactly: a row whose best possible score
        # is below it scores below the k-th, ties included.
        floor = np.partition(lower, len(lower) - k)[len(lower) - k]
        if not np.isfinite(floor):
            return None
        approximate += bound
        rows = np.flatnonzero(approximate >= floor)
        if 4 * len(rows) > len(self.ids):  # bounds this loose save nothing: read every row
            return None
        # The rows are scored in the aligned groups a full scan scores them in, so that each
        # score is bitwise the full scan's (OpenBLAS's gemv handles rows 4 at a time, and the
        # last len % 4 apart): near ties keep their order.
        groups = np.unique(rows // GROUP)
        rows = (groups[:, None] * GROUP + np.arange(GROUP)).ravel()
        rows = rows[rows < len(self.ids)]
        return _best(self.ids[rows], self.matrix[rows] @ query, k)


def _best(ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(id, score) of the k best, best first; ties by id, as a rebuild would order them
    (ties across the k-th score too: the lowest ids are kept)."""
    k = min(k, len(scores))
    kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
    top = np.flatnonzero(scores >= kth)
    if len(top) < k:  # never expected (scores that are not numbers)
        top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.lexsort((ids[top], -scores[top]))][:k]
    return [(int(ids[i]), float(scores[i])) for i in top]


@functools.cache
def _blas_threads():  # -> threadpoolctl's BLAS pools, or None
    """The matrix scan runs on one BLAS thread: on a loaded 2-core machine two
    threads took 10.5 ms per 100K vectors against 4.8 ms for one (bench notes, README)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController().select(user_api="blas")
