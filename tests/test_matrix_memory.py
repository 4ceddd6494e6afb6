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
