"""Loading the in-memory vector matrix costs about the matrix itself, not several copies of it."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
from conftest import RecordingEmbedder, write

from indexer import make_settings, open_index


def test_the_matrix_loads_without_a_second_copy(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    for f in range(30):
        write(root, f"note-{f:02d}.md", "\n\n".join(f"## Part {i}\n\nfact {f} {i} about item{f * 100 + i}" for i in range(100)))
    embedder = RecordingEmbedder(dimensions=384)
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    with open_index(settings, embedder=embedder) as index:
        index.search("warm up", mode="keyword")
        tracemalloc.start()
        try:
            matrix = index.vector_matrix()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(matrix.ids) == 3000 and matrix.matrix.shape == (3000, 384)
        # The rows themselves: 4.6 MB. Blobs gathered, joined, filtered and concatenated peaked at ~4x.
        assert peak < 1.6 * matrix.matrix.nbytes, (peak, matrix.matrix.nbytes)
        # ... and the matrix is the same as the stored vectors.
        ids = matrix.ids[:5].tolist()
        expected = {cid: row for cid, row in zip(*index.store.vectors_of(ids))}
        assert all(np.array_equal(matrix.matrix[i], expected[cid]) for i, cid in enumerate(ids))


def test_a_refresh_that_finds_no_vector_for_a_new_chunk_keeps_searching(tmp_path: Path, caplog) -> None:
    root = tmp_path / "memory"
    write(root, "a.md", "# A\n\nthe boat is blue\n")
    write(root, "c.md", "# C\n\nthe car is red\n")
    embedder = RecordingEmbedder()
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as writer:
        writer.sync()
        with open_index(settings, embedder=embedder) as reader:
            assert len(reader.vector_matrix().ids) == 2
            write(root, "b.md", "# B\n\nthe cat is grey\n")
            (root / "c.md").unlink()  # a row dropped (not all kept) ...
            writer.sync()
            ids = [row[0] for row in writer.store.connection.execute("SELECT id FROM chunks WHERE path = 'b.md'")]
            marks = ",".join("?" * len(ids))
            writer.store.connection.execute(f"DELETE FROM chunks_vec WHERE rowid IN ({marks})", ids)  # ... none found
            results = reader.search("cat", budget_lines=None)  # was: ValueError from np.concatenate
            assert [r.path for r in results][:1] == ["b.md"]
            assert reader.vector_matrix().matrix.shape == (1, embedder.dimensions)
    assert "1 chunks have no stored vector" in caplog.text
