"""Vector sources: vec0, the exact NumPy matrix and the live in-memory matrix agree,
honour ``only=`` (a restriction to some chunk ids), and the matrix follows writes
made by other processes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import RecordingEmbedder, age_files, write

from indexer import make_filters, make_settings, open_index
from indexer.api import MATRIX_FROM_SEARCH
from indexer.retrieval.search import NumpyVectors, Vec0Vectors

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def fill(root, files: int = 12) -> None:
    for n in range(files):
        sections = [f"# Part {s}\n\n" + " ".join(WORDS[(n + s + k) % len(WORDS)] for k in range(6)) for s in range(3)]
        write(root, f"notes/n{n:02}.md", "\n\n".join(sections) + "\n")
    age_files(root)


@pytest.fixture
def index(root, embedder):
    fill(root)
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as writer:
        writer.sync()
    with open_index(settings, embedder=embedder) as reader:
        yield reader


def query(embedder: RecordingEmbedder) -> np.ndarray:
    return embedder.embed(["charlie delta echo"])[0]


def test_every_source_returns_the_exact_neighbours_best_first(index, embedder):
    q = query(embedder)
    with index.store.connection:
        vec0 = Vec0Vectors(index.store).nearest(q, 10)
    matrix = index.vector_matrix()
    exact = sorted(((float(row @ q), int(cid)) for cid, row in zip(matrix.ids, matrix.matrix)), reverse=True)
    assert [cid for cid, _ in vec0] == [cid for _, cid in exact[:10]]
    assert [cid for cid, _ in matrix.nearest(q, 10)] == [cid for _, cid in exact[:10]]
    assert [s for _, s in matrix.nearest(q, 10)] == pytest.approx([s for _, s in vec0], abs=1e-5)


@pytest.mark.parametrize("source", ["vec0", "matrix"])
def test_only_restricts_the_search_to_the_given_chunks(index, embedder, source):
    q = query(embedder)
    matrix = index.vector_matrix()
    ids = [int(cid) for cid in matrix.ids]
    allowed = ids[::3] + [10**9]  # an id that does not exist is ignored
    with index.store.connection:
        vectors = Vec0Vectors(index.store) if source == "vec0" else matrix
        got = vectors.nearest(q, 5, only=allowed)
        everything = vectors.nearest(q, len(ids), only=None)
        assert vectors.nearest(q, 5, only=[]) == []
    expected = [(cid, score) for cid, score in everything if cid in set(allowed)][:5]
    assert [cid for cid, _ in got] == [cid for cid, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5)
    assert len(everything) == len(ids)


def test_numpy_vectors_sort_their_rows_by_id():
    rows = np.eye(3, dtype=np.float32)
    vectors = NumpyVectors([30, 10, 20], rows)
    assert vectors.ids.tolist() == [10, 20, 30]
    assert vectors.nearest(np.array([1, 0, 0], dtype=np.float32), 1) == [(30, 1.0)]
    assert vectors.nearest(np.array([0, 1, 0], dtype=np.float32), 1, only=[10, 20]) == [(10, 1.0)]


def test_the_matrix_follows_writes_by_another_process(root, embedder):
    fill(root)
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as writer:
        writer.sync()
    with open_index(settings, embedder=embedder) as reader:
        before = reader.vector_matrix()
        refreshes = reader._vectors.matrix.refreshes
        assert reader.vector_matrix() is before and reader._vectors.matrix.refreshes == refreshes  # nothing changed
        write(root, "notes/n00.md", "# Changed\n\nzulu yankee xray\n")
        (root / "notes/n01.md").unlink()
        second = RecordingEmbedder()
        with open_index(settings, write=True, embedder=second) as writer:
            writer.sync()
        [new_text] = second.embedded
        after = reader.vector_matrix()
        with reader.store.connection:
            ids, rows = reader.store.vectors_of([cid for cid, _ in reader.store.chunk_hashes()])
            stored = dict(zip(ids.tolist(), rows))
        assert sorted(after.ids.tolist()) == sorted(stored)
        for cid, row in zip(after.ids.tolist(), after.matrix):
            assert np.array_equal(row, stored[cid])
        [(top, score)] = after.nearest(embedder.embed([new_text])[0], 1)
        assert score == pytest.approx(1.0, abs=1e-5)


def test_searches_switch_to_the_matrix_and_keep_their_results(index, embedder):
    results = [index.search("charlie delta", mode="vector", limit=5) for _ in range(MATRIX_FROM_SEARCH + 1)]
    assert index._vectors.matrix is not None  # from the second vector search on
    assert results[0] == results[-1]
    hybrid = [index.search("charlie delta", mode="hybrid", limit=5) for _ in range(2)]
    assert hybrid[0] == hybrid[1]


def test_without_sqlite_vec_the_matrix_comes_from_the_cache(root, embedder):
    fill(root)
    with open_index(make_settings(root), write=True, embedder=embedder) as writer:
        writer.sync()
        expected = writer.search("charlie delta", mode="vector", limit=5)
    settings = make_settings(root, use_sqlite_vec=False)
    with open_index(settings, embedder=embedder) as reader:
        assert reader.search("charlie delta", mode="vector", limit=5) == expected
        assert reader._vectors.matrix is not None


def test_the_prefetched_hybrid_search_equals_the_plain_one(index, embedder):
    from indexer.retrieval.search import run_search

    index.search("warm", mode="vector")
    index.search("warm", mode="vector")  # the matrix from now on
    for text in ("charlie delta", "kilo lima mike", "alpha"):
        got = index.search(text, mode="hybrid", limit=7, budget_lines=None)
        with index.store.connection:
            plain = run_search(index.store, text, mode="hybrid", limit=7,
                               query_vector=embedder.embed([text])[0], vectors=index.vector_matrix())  # fmt: skip
        assert got == plain and len(got) == 7
    assert index._vectors.executor is not None


class ThreadRecordingEmbedder(RecordingEmbedder):
    """Records the thread each text was embedded on; raises for the text ``fail``."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[tuple[str, str]] = []

    def embed(self, texts):
        import threading

        self.threads.extend((text, threading.current_thread().name) for text in texts)
        if "fail" in texts:
            raise RuntimeError("the model broke")
        return super().embed(texts)


def test_a_warm_hybrid_search_embeds_the_query_beside_the_keyword_query(root):
    """With the matrix loaded, the query is embedded on the worker thread (then the matrix is
    scanned there) while the keyword query runs; results are those of embedding first, and an
    embedding error is the search's error."""
    fill(root)
    settings = make_settings(root)
    embedder = ThreadRecordingEmbedder()
    with open_index(settings, write=True, embedder=embedder) as writer:
        writer.sync()
    with open_index(settings, embedder=embedder) as index:
        first = index.search("charlie delta", mode="hybrid", limit=7)  # the index's vec0: embedded here
        index.vector_matrix()
        embedder.threads.clear()
        assert index.search("charlie delta", mode="hybrid", limit=7) == first
        assert [name.startswith("memdex-vectors") for _, name in embedder.threads] == [True]
        embedder.threads.clear()
        index.search("charlie delta", mode="vector", limit=7)
        index.search("charlie delta", mode="hybrid", limit=7, filters=make_filters(path_prefix="notes/"))
        assert [name.startswith("memdex-vectors") for _, name in embedder.threads] == [False, False]  # embedded first
        with pytest.raises(RuntimeError, match="the model broke"):
            index.search("fail", mode="hybrid")


def test_a_warm_server_embeds_the_query_beside_the_keyword_query_too(root):
    """The MCP server's shared model (serve/service.py) is local: embedded on the worker
    thread, under the model's lock; a remote one is asked first (a model that is down makes
    the search a keyword search)."""
    from indexer.serve.service import SharedEmbedder

    fill(root)
    settings = make_settings(root)
    local = ThreadRecordingEmbedder()
    with open_index(settings, write=True, embedder=local) as writer:
        writer.sync()
    shared = SharedEmbedder(lambda: local)
    with open_index(settings, embedder=shared) as index:
        expected = index.search("charlie delta", mode="hybrid", limit=7)
        index.vector_matrix()
        local.threads.clear()
        assert index.search("charlie delta", mode="hybrid", limit=7) == expected
        assert [name.startswith("memdex-vectors") for _, name in local.threads] == [True]

    class Remote(ThreadRecordingEmbedder):
        def embed_query(self, text):
            return self.embed([text])[0]

    remote = Remote()
    with open_index(settings, embedder=SharedEmbedder(lambda: remote)) as index:
        index.vector_matrix()
        assert index.search("charlie delta", mode="hybrid", limit=7) == expected
        assert [name.startswith("memdex-vectors") for _, name in remote.threads] == [False]
