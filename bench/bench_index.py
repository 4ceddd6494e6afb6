"""Index benchmark: full index vs raw model.encode, no-op re-index, one-line edit, queries.

    python bench/bench_index.py [--files 1000] [--queries 200] [--backend auto|onnx|torch] [--out bench/out/index.json]

Everything is measured in one run on one generated folder, so the ratios are
comparable on a shared, noisy machine. Model loading is excluded from every
timing (it is loaded once, first).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import edit_one_line, generate_memory  # noqa: E402

from indexer import make_settings, open_index  # noqa: E402
from indexer.api import DEFAULT_BUDGET_LINES, MAX_RESULTS  # noqa: E402
from indexer.embedding.lazy import BACKENDS, LazyEmbedder  # noqa: E402
from indexer.retrieval.budget import Budget  # noqa: E402
from indexer.retrieval.search import run_search  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/index.json"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="memdex-bench-") as tmp:
        root = Path(tmp) / "memory"
        results["corpus"] = generate_memory(root, files=args.files, seed=args.seed)
        settings = make_settings(root, Path(tmp) / "index" / "index.db")
        model = LazyEmbedder(backend=args.backend)
        model.embed(["warm up the model once"])
        model.embed(["warm up the bulk path too"] * 8)
        results["backend"] = {"setting": args.backend, "loaded": model.loaded}

        with open_index(settings, write=True, embedder=model) as index:
            report = index.sync()
            chunk_texts = [
                f"{heading}\n{text}" if heading else text
                for heading, text in index.store.connection.execute("SELECT heading, text FROM chunks ORDER BY id")
            ]
        results["full_index"] = {
            "seconds": round(report.seconds, 2),
            "chunks": len(chunk_texts),
            "chunks_embedded": report.chunks_embedded,
            "chunks_per_second": round(len(chunk_texts) / report.seconds, 1),
            # peak so far: model, generated corpus and the full index run (ru_maxrss is monotonic)
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        unique = list(dict.fromkeys(chunk_texts))
        started = time.perf_counter()
        model.embed(unique)
        raw_seconds = time.perf_counter() - started
        results["raw_encode"] = {"seconds": round(raw_seconds, 2), "texts": len(unique)}
        results["index_vs_raw_throughput"] = round(raw_seconds / report.seconds, 3)

        noop = []
        for _ in range(5):
            with open_index(settings, write=True, embedder=model) as index:
                noop.append(index.sync().seconds)
        results["noop_reindex_seconds_median"] = round(statistics.median(noop), 4)

        files = sorted(root.rglob("*.md"))
        edits = []
        for _ in range(20):
            edit_one_line(rng.choice(files), rng)
            with open_index(settings, write=True, embedder=model) as index:
                edit = index.sync()
            edits.append((edit.seconds, edit.chunks_embedded, edit.reindexed))
        results["one_line_edit"] = {
            "seconds_median": round(statistics.median(e[0] for e in edits), 4),
            "chunks_embedded_per_edit": sorted(e[1] for e in edits),
            "files_reindexed_per_edit": sorted(e[2] for e in edits),
        }

        results["queries"] = measure_queries(settings, model, chunk_texts, rng, args.queries)
    results["peak_rss_mb_whole_run"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def measure_queries(settings, model, chunk_texts, rng, count) -> dict[str, object]:
    """p50/p95 in ms per mode; vector and hybrid exclude the query embedding (reported apart)."""
    words = [w for text in rng.sample(chunk_texts, min(400, len(chunk_texts))) for w in text.split() if w.isalpha()]
    queries = [" ".join(rng.sample(words, rng.randint(2, 6))) for _ in range(count)]
    started = time.perf_counter()
    vectors = model.embed(queries)
    embed_ms = (time.perf_counter() - started) * 1000 / count
    timings: dict[str, object] = {"query_embedding_ms_mean": round(embed_ms, 2)}
    with open_index(settings, embedder=model) as index:
        source = index._vectors.source()
        # "hybrid" is fusion alone, 10 chunks; "hybrid default" what search() does by
        # default: re-ranking stages and a 50-line budget (up to MAX_RESULTS results)
        runs = {
            "keyword": dict(mode="keyword", limit=10, ranking=None),
            "vector": dict(mode="vector", limit=10, ranking=None),
            "hybrid": dict(mode="hybrid", limit=10, ranking=None),
            "hybrid default": dict(mode="hybrid", limit=MAX_RESULTS, budget=Budget(DEFAULT_BUDGET_LINES)),
        }
        for mode, options in runs.items():
            samples = []
            for query, vector in zip(queries, vectors):
                started = time.perf_counter()
                run_search(index.store, query, query_vector=vector, vectors=source, **options)
                samples.append((time.perf_counter() - started) * 1000)
            timings[mode] = {
                "p50_ms": round(percentile(samples, 0.5), 3),
                "p95_ms": round(percentile(samples, 0.95), 3),
            }
    return timings


if __name__ == "__main__":
    main()
