"""Peak RSS of a warm process while it loads the in-memory vector matrix.

    python bench/bench_matrix_rss.py [--chunks 100000] [--dims 384] [--workdir /tmp/memdex-bench-matrix]

Builds (once, kept in ``--workdir``) an index of ``--chunks`` chunks whose vectors
are deterministic random unit vectors (the model plays no part in what is measured:
a matrix of chunks x dims float32), then, in a fresh process: opens the index,
records VmRSS, loads the matrix (``MemoryIndex.vector_matrix``, what a warm
process does on its second vector search) and reports the peak (VmHWM) and the
RSS after, next to the matrix's own size. ``--with-model`` first loads the real
model with one query, as a warm server has. Run it on two commits to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402


class RandomEmbedder:
    """Unit vectors from each text's hash; token counts by whitespace."""

    def __init__(self, dimensions: int) -> None:
        self.model_id, self.dimensions, self.max_tokens = f"bench/random-{dimensions}", dimensions, 10_000

    def count_tokens(self, texts):
        return [len(text.split()) for text in texts]

    def embed(self, texts):
        rows = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            rows[i] = np.random.default_rng(seed).standard_normal(self.dimensions)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def status() -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM")}


def build(root: Path, chunks: int, dims: int) -> None:
    from indexer import make_settings, open_index

    if (root / ".memdex" / "index.db").exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    per_file = 100
    for f in range((chunks + per_file - 1) // per_file):
        sections = [f"## Section {i}\n\nnote {f} {i} " + " ".join(f"w{(f * 7919 + i * 31 + k) % 50000}" for k in range(12))
                    for i in range(min(per_file, chunks - f * per_file))]  # fmt: skip
        (root / f"note-{f:05d}.md").write_text("\n\n".join(sections) + "\n")
    with open_index(make_settings(root), write=True, embedder=RandomEmbedder(dims)) as index:
        index.sync()


def measure(root: Path, dims: int, with_model: bool) -> dict[str, float]:
    from indexer import make_settings, open_index

    model = None
    if with_model:  # what a warm server also holds: the real model, loaded by a query
        from indexer.embedding.lazy import LazyEmbedder

        model = LazyEmbedder()
        model.embed(["a query to load the model"])
    with open_index(make_settings(root), embedder=RandomEmbedder(dims)) as index:
        index.search("warm up", mode="keyword")
        before = status()
        matrix = index.vector_matrix()
        after = status()
        return {"chunks": len(matrix.ids), "matrix_mb": round(matrix.matrix.nbytes / 2**20, 1),
                "rss_before_mb": round(before["VmRSS"], 1), "peak_rss_mb": round(after["VmHWM"], 1),
                "rss_after_mb": round(after["VmRSS"], 1),
                "peak_minus_before_mb": round(after["VmHWM"] - before["VmRSS"], 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/memdex-bench-matrix"))
    parser.add_argument("--with-model", action="store_true", help="also load the real model first (a warm server)")
    parser.add_argument("--measure-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_child:
        print(json.dumps(measure(args.measure_child, args.dims, args.with_model)))
        return
    root = args.workdir / f"memory-{args.chunks}-{args.dims}"
    build(root, args.chunks, args.dims)
    flags = ["--with-model"] if args.with_model else []
    done = subprocess.run([sys.executable, __file__, "--measure-child", str(root), "--dims", str(args.dims), *flags],
                          check=True, capture_output=True, text=True)  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
