"""What the default search costs over fusion alone, at 10K chunks, without the model's time.

    python bench/bench_search_cost.py [--files 1000] [--queries 300] [--out bench/out/search_cost.json]

Indexes the generated folder of bench_index.py (1,000 files, 9,931 chunks) with
deterministic random unit vectors of the model's size (384: the vec0 scan costs
what it costs with real vectors; the chunking uses the model's tokenizer), then
times ``run_search`` per query, interleaved: fusion alone with 10 chunks (the
old default) against the default search (re-ranking and the 50-line budget).
The query embedding is excluded. The index is kept in ``--work`` for re-runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate_memory  # noqa: E402

from indexer import make_settings, open_index  # noqa: E402
from indexer.api import DEFAULT_BUDGET_LINES, MAX_RESULTS  # noqa: E402
from indexer.embedding.torch_backend import SentenceTransformerEmbedder  # noqa: E402
from indexer.retrieval.budget import Budget  # noqa: E402
from indexer.retrieval.search import run_search  # noqa: E402


class HashVectors:
    """Random unit vectors keyed by the text's hash, the real model's size and tokenizer."""

    def __init__(self, real: SentenceTransformerEmbedder) -> None:
        self.real = real
        self.model_id, self.dimensions, self.max_tokens = "bench/hash-vectors", real.dimensions, real.max_tokens

    def count_tokens(self, texts):
        return self.real.count_tokens(texts)

    def embed(self, texts):
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
            vector = np.random.default_rng(seed).standard_normal(self.dimensions)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimensions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--work", type=Path, default=Path("bench/out/search_cost"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/search_cost.json"))
    args = parser.parse_args()
    root = args.work / f"memory-{args.files}"
    if not root.exists():
        root.mkdir(parents=True)
        generate_memory(root, files=args.files, seed=0)
    model = HashVectors(SentenceTransformerEmbedder())
    settings = make_settings(root, args.work / f"index-{args.files}" / "index.db")
    with open_index(settings, write=True, embedder=model) as index:
        index.sync()
    rng = random.Random(0)
    runs = {
        "fusion alone, 10 chunks": dict(mode="hybrid", limit=10, ranking=None),
        "default: re-ranking + 50-line budget": dict(mode="hybrid", limit=MAX_RESULTS, budget=Budget(DEFAULT_BUDGET_LINES)),
    }
    with open_index(settings, embedder=model) as index:
        texts = [text for (text,) in index.store.connection.execute("SELECT text FROM chunks")]
        words = [w for text in rng.sample(texts, min(400, len(texts))) for w in text.split() if w.isalpha()]
        queries = [" ".join(rng.sample(words, rng.randint(2, 6))) for _ in range(args.queries)]
        vectors = model.embed(queries)
        source = index._vectors.source()
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for query, vector in zip(queries, vectors):
            for name, options in runs.items():
                started = time.perf_counter()
                run_search(index.store, query, query_vector=vector, vectors=source, **options)
                samples[name].append((time.perf_counter() - started) * 1000)
    results: dict[str, object] = {"chunks": len(texts), "queries": len(queries)}
    for name, values in samples.items():
        values.sort()
        results[name] = {"p50_ms": round(statistics.median(values), 2), "p95_ms": round(values[int(0.95 * (len(values) - 1))], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
