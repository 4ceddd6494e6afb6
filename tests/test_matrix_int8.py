"""The in-memory matrix's int8 first pass (retrieval/matrix.py): its bounds hold for every
row, and the top k it returns are the float32 scan's, ids, order and scores."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RecordingEmbedder, write

import indexer.retrieval.matrix as matrix_module
from indexer import make_settings, open_index
from indexer.retrieval.matrix import Int8Rows, NumpyVectors


def clustered(rows: int, dimensions: int = 384, seed: int = 0) -> np.ndarray:
    """Unit rows in tight clusters (noisy copies of a few hundred centres, as bench_scale's
    100K index): many near ties around any k-th score."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((300, dimensions)).astype(np.float32)
    matrix = centres[rng.integers(300, size=rows)] + rng.standard_normal((rows, dimensions)).astype(np.float32) * 0.02
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def queries(matrix: np.ndarray, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    picked = [matrix[i] for i in rng.integers(len(matrix), size=4)]  # a stored row: a score of 1
    noisy = [row + rng.standard_normal(matrix.shape[1]).astype(np.float32) * s for row, s in zip(picked, (0.01, 0.1, 1.0, 3.0))]
    return picked + noisy + [rng.standard_normal(matrix.shape[1]).astype(np.float32) * 40]  # not unit length too


def test_the_bounds_hold_for_every_row_even_odd_ones():
    rng = np.random.default_rng(2)
    matrix = np.concatenate([
        clustered(3000),
        np.zeros((3, 384), np.float32),  # an empty row
        np.eye(384, dtype=np.float32)[:5] * 7.5,  # one large number, the rest zero
        rng.standard_normal((50, 384)).astype(np.float32) * rng.uniform(1e-4, 1e3, (50, 1)).astype(np.float32),
        np.where(rng.random((20, 384)) < 0.5, 1e-3, 1.0).astype(np.float32),  # two magnitudes in one row
    ])  # fmt: skip
    int8 = Int8Rows.of(matrix)
    # A query along what a row's rounding lost: there the bound is reached (Cauchy-Schwarz).
    lost = [matrix[i].astype(np.float64) - int8.scales[i] * int8.codes[i].astype(np.float64) for i in (0, 3004, 3060)]
    for query in queries(matrix) + [(r / np.linalg.norm(r)).astype(np.float32) for r in lost]:
        query = query.astype(np.float32)
        approximate, bound = int8.bounds(query)
        exact = matrix @ query
        assert np.all(np.abs(exact.astype(np.float64) - approximate) <= bound)
        assert np.all(bound < 0.02 * np.linalg.norm(matrix, axis=1) * np.linalg.norm(query) + 1e-30)  # and useful


@pytest.mark.parametrize("k", [1, 10, 200, 1000])
def test_the_int8_pass_returns_the_float32_scans_top_k(k):
    matrix = clustered(20000)
    ids = np.arange(5, 5 + 3 * len(matrix), 3)
    fast = NumpyVectors(ids, matrix, int8_from=1)
    plain = NumpyVectors(ids, matrix, int8_from=10**9)
    assert fast.int8 is not None and plain.int8 is None
    fast._nearest = lambda *args: pytest.fail("the int8 pass gave up: every row was read")  # type: ignore[method-assign]
    for query in queries(matrix):
        found = fast.nearest(query, k)
        assert found == plain.nearest(query, k)  # the same floats: the rows are scored as a full scan does


def test_exact_ties_are_ordered_by_id_as_before():
    matrix = clustered(20000)
    matrix[100:400] = matrix[7]  # 301 rows with the same vector: ties across the k-th score
    ids = np.arange(len(matrix))[::-1].copy()  # rows given in descending id order
    fast = NumpyVectors(ids, matrix, int8_from=1)
    found = fast.nearest(matrix[7], 200)
    assert found == NumpyVectors(ids, matrix, int8_from=10**9).nearest(matrix[7], 200)
    assert {cid for cid, _ in found} <= {int(ids[i]) for i in [7, *range(100, 400)]}
    assert all(a[0] < b[0] for a, b in zip(found, found[1:]) if a[1] == b[1])  # equal scores: by id


def test_a_refreshed_matrix_keeps_an_int8_copy_equal_to_a_fresh_one(tmp_path, monkeypatch):
    """vectors.LiveMatrix keeps the kept rows' int8 copy and quantizes only new rows."""
    monkeypatch.setattr(matrix_module, "INT8_FROM_ROWS", 1)
    root = tmp_path / "memory"
    for f in range(6):
        write(root, f"notes/n{f}.md", "\n\n".join(f"## Part {i}\n\nfact {f} {i} item{f * 100 + i}" for i in range(20)))
    settings = make_settings(root)
    embedder = RecordingEmbedder(dimensions=384)
    with open_index(settings, write=True, embedder=embedder) as writer:
        writer.sync()
    with open_index(settings, embedder=embedder) as reader:
        before = reader.vector_matrix()
        assert before.int8 is not None
        write(root, "notes/n0.md", "## Changed\n\nzulu yankee xray\n")
        (root / "notes/n1.md").unlink()
        with open_index(settings, write=True, embedder=RecordingEmbedder(dimensions=384)) as writer:
            writer.sync()
        after = reader.vector_matrix()
        assert after is not before and len(after.ids) != len(before.ids)
        fresh = Int8Rows.of(after.matrix)
        assert after.int8 is not None
        for got, want in zip((after.int8.codes, after.int8.scales, after.int8.lost), (fresh.codes, fresh.scales, fresh.lost)):
            assert np.array_equal(got, want)
        query = embedder.embed(["zulu yankee"])[0]
        assert after.nearest(query, 5) == NumpyVectors(after.ids, after.matrix, int8_from=10**9).nearest(query, 5)


def test_a_refresh_holds_one_new_copy_of_the_matrix_at_a_time() -> None:
    """A write then a search: the refreshed matrix (and its int8 copy) is written straight into
    its new array. Review: the kept rows were copied, then copied again with the new ones, so a
    refresh of a 100K matrix peaked ~106 MB above the code before the int8 copy."""
    import tracemalloc

    from indexer.retrieval.vectors import LiveMatrix

    rows, dimensions = 20_000, 384
    data = clustered(rows + 1, dimensions)

    class Store:
        version = 0
        hashes = {i: f"h{i}" for i in range(rows)}

        def data_version(self) -> int:
            return self.version

        def meta(self) -> dict[str, str]:
            return {"model": "m", "dimensions": str(dimensions)}

        def chunk_hashes(self) -> list[tuple[int, str]]:
            return list(self.hashes.items())

    def fetch(pairs):
        ids = np.array([cid for cid, _ in pairs], dtype=np.int64)
        return ids, data[ids]

    store, live = Store(), LiveMatrix(dimensions)
    tracemalloc.start()
    try:
        live.current(store, fetch)
        assert live.vectors.int8 is not None
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        del store.hashes[7]  # a chunk rewritten: a new id, above every other (as both engines assign them)
        store.hashes[rows] = "h-new"
        store.version = 1
        live.current(store, fetch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    matrix_bytes = rows * dimensions * 4
    # The old matrix and int8 copy (held), the new matrix, the new int8 copy, small blocks.
    assert peak - held < 1.5 * matrix_bytes, (peak - held) / matrix_bytes
    assert live.vectors.ids.tolist() == sorted(store.hashes)
    np.testing.assert_array_equal(live.vectors.matrix, data[sorted(store.hashes)])
    fresh = Int8Rows.of(data[sorted(store.hashes)])
    np.testing.assert_array_equal(live.vectors.int8.codes, fresh.codes)


def test_the_bounds_hold_where_scores_underflow_into_subnormals() -> None:
    """Rows and a query scaled by 1e-22: every product underflows, and rounding is absolute,
    not relative (review: 24,627 rows broke the bound and 8 of 12 result lists differed)."""
    rng = np.random.default_rng(3)
    unit = rng.standard_normal((20000, 384)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    matrix = (unit * np.float32(1e-22)).astype(np.float32)
    fast = NumpyVectors(np.arange(len(matrix)), matrix, int8_from=1)
    plain = NumpyVectors(np.arange(len(matrix)), matrix, int8_from=10**9)
    for query in [unit[0] * np.float32(1e-22), rng.standard_normal(384).astype(np.float32) * np.float32(1e-22)]:
        query = query.astype(np.float32)
        approximate, bound = fast.int8.bounds(query)
        assert np.all(np.abs((matrix @ query).astype(np.float64) - approximate) <= bound)
        for k in (1, 10, 200):
            assert fast.nearest(query, k) == plain.nearest(query, k)
