"""Scale benchmark: a 100K-chunk index, and cold-start figures per backend.

    python bench/bench_scale.py [--chunks 100000] [--real 2000] [--workdir /tmp/memdex-bench-scale]

A fully real index (every vector from the model): ``--chunks 20000 --real 20000``
(add ``--small-files 0 --cold-files 0`` for the index figures alone); the build time
is then also extrapolated to 100K chunks at the measured rate.

1. Generates a memory folder (bench/generate.py) of about ``--chunks`` chunks.
2. Indexes it in a child process with the real model loaded (ONNX Runtime):
   the first ``--real`` distinct chunk texts are embedded by the model; every
   other chunk gets the vector of a random one of those plus small noise
   (cosine ~0.96 to it), so 100K chunks index in minutes instead of ~45 min.
   Index time, throughput (model and non-model parts) and the child's peak
   RSS (model, tokenizer and runtime included) are reported; the built index
   is kept in ``--workdir`` and reused by the next run with the same options.
3. Queries, excluding the query embedding (measured apart), in one long-lived
   reader: keyword on natural-language questions (fixtures/queries.json) and
   corpus-word queries, vector via vec0 KNN and via the in-memory matrix,
   hybrid; vector recall@10 of each against an exact float64 scan.
4. Keyword p50/p95 at ~4,300 chunks (``--small-files 430``).
5. Fresh-process cold starts on a 1,000-file folder (``--cold-files``): hybrid
   ``search``, no-op ``index`` and ``status``, with ``--backend onnx`` and
   ``--backend torch`` side by side, wall time and peak RSS of each process.

Writes bench/out/scale.json. On a shared machine the absolute numbers move
with the load; the ones measured side by side in one run compare fairly.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
import numpy as np  # noqa: E402
from generate import generate_memory  # noqa: E402

from indexer import make_settings, open_index  # noqa: E402
from indexer.embedding.lazy import LazyEmbedder  # noqa: E402
from indexer.retrieval.search import CANDIDATES, Vec0Vectors, run_search  # noqa: E402
from indexer.retrieval.vectors import Prefetched  # noqa: E402

CHUNKS_PER_FILE = 9.93
KEYWORD_ROUNDS = 5  # the 80 fixture questions, 5 times each: 400 samples for the p95  # bench/generate.py: 1,000 files -> 9,931 chunks


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timing(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(samples, 0.5), 3), "p95_ms": round(percentile(samples, 0.95), 3)}


class BankEmbedder:
    """The real model for the first ``real`` texts, then noisy copies of those vectors."""

    def __init__(self, real: int, seed: int) -> None:
        self.model = LazyEmbedder()
        self.model_id, self.dimensions, self.max_tokens = (
            self.model.model_id, self.model.dimensions, self.model.max_tokens)  # fmt: skip
        self.count_tokens = self.model.count_tokens
        self.real = real
        self.bank: list[np.ndarray] = []
        self.rng = np.random.default_rng(seed)
        self.model_seconds = 0.0
        self.model_texts = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        take = max(0, self.real - len(self.bank))
        parts = []
        if take and texts:
            started = time.perf_counter()
            vectors = self.model.embed(texts[:take])
            self.model_seconds += time.perf_counter() - started
            self.model_texts += len(vectors)
            self.bank.extend(vectors)
            parts.append(vectors)
        rest = len(texts) - min(take, len(texts))
        if rest:
            bank = np.stack(self.bank)
            picked = bank[self.rng.integers(len(bank), size=rest)]
            noisy = picked + self.rng.standard_normal(picked.shape).astype(np.float32) * (0.3 / np.sqrt(self.dimensions))
            parts.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, self.dimensions), np.float32)


def build(root: Path, real: int, seed: int) -> dict:
    """Child process: index ``root`` with the bank embedder; prints the figures as JSON."""
    embedder = BankEmbedder(real, seed)
    embedder.model.embed(["load the model (and make the ONNX export if needed)"])
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as index:
        report = index.sync()
        chunks = index.store.connection.execute("SELECT count(*) FROM chunks").fetchone()[0]
    non_model = report.seconds - embedder.model_seconds
    return {
        "chunks": chunks,
        "files": report.files_seen,
        "index_seconds": round(report.seconds, 1),
        "model_texts": embedder.model_texts,
        "model_seconds": round(embedder.model_seconds, 1),
        "model_chunks_per_second": round(embedder.model_texts / max(embedder.model_seconds, 1e-9), 1),
        "non_model_seconds": round(non_model, 1),
        "non_model_chunks_per_second": round(chunks / max(non_model, 1e-9), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def ensure_index(workdir: Path, files: int, real: int, seed: int) -> dict:
    root = workdir / f"memory-{files}-{real}-{seed}"
    figures_path = root.parent / f"{root.name}.json"
    if figures_path.exists() and (root / ".memdex" / "index.db").exists():
        figures = json.loads(figures_path.read_text())
        figures["reused"] = True
        return figures
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    generate_memory(root, files=files, seed=seed)
    generated = time.perf_counter() - started
    child = subprocess.run(
        [sys.executable, __file__, "--build-child", str(root), "--real", str(real), "--seed", str(seed)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    figures = {"generate_seconds": round(generated, 1), **json.loads(child.stdout.strip().splitlines()[-1])}
    chunks = figures["chunks"]
    # What embedding every chunk with the model would have added, at the measured model rate.
    figures["index_seconds_all_real_estimate"] = round(
        figures["non_model_seconds"] + chunks / figures["model_chunks_per_second"], 1)  # fmt: skip
    figures_path.write_text(json.dumps(figures, indent=2))
    return figures


def queries(root: Path, rng: random.Random, count: int) -> tuple[list[str], list[str]]:
    natural = [item["query"] for item in json.loads((REPO / "fixtures" / "queries.json").read_text())]
    words = [w for p in sorted(root.rglob("*.md"))[:300] for w in p.read_text().split() if w.isalpha()]
    corpus = [" ".join(rng.sample(words, rng.randint(2, 6))) for _ in range(count)]
    return natural, corpus


def measure_queries(root: Path, rng: random.Random, count: int) -> dict:
    natural, corpus = queries(root, rng, count)
    model = LazyEmbedder()
    model.embed(["warm up"])
    started = time.perf_counter()
    vectors = [model.embed([q])[0] for q in natural]
    embed_ms = (time.perf_counter() - started) * 1000 / len(natural)
    out: dict = {"query_embedding_ms_mean": round(embed_ms, 2)}
    with open_index(make_settings(root), embedder=model) as index:
        store = index.store
        for name, texts in (("keyword_natural", natural * KEYWORD_ROUNDS), ("keyword_corpus_words", corpus)):
            samples = []
            for text in texts:
                started = time.perf_counter()
                with store.connection:
                    run_search(store, text, mode="keyword", limit=10, query_vector=None, vectors=None)
                samples.append((time.perf_counter() - started) * 1000)
            out[name] = timing(samples)
        started = time.perf_counter()
        matrix = index.vector_matrix()
        out["matrix_load_seconds"] = round(time.perf_counter() - started, 2)
        out["matrix_mb"] = round(matrix.matrix.nbytes / 2**20, 1)
        exact_matrix = matrix.matrix.astype(np.float64)
        exact = [set(matrix.ids[np.argsort(-(exact_matrix @ v.astype(np.float64)))[:10]].tolist()) for v in vectors]
        for name, source in (("vec0", Vec0Vectors(store)), ("matrix", matrix)):
            samples, recall = [], []
            for vector, truth in zip(vectors, exact):
                started = time.perf_counter()
                with store.connection:
                    found = source.nearest(vector, 10)
                samples.append((time.perf_counter() - started) * 1000)
                recall.append(len({cid for cid, _ in found} & truth) / 10)
            out[f"vector_{name}"] = {**timing(samples), "recall_at_10": round(statistics.mean(recall), 4)}
        for name, source in (("vec0", Vec0Vectors(store)), ("matrix", matrix)):
            samples = []
            for text, vector in zip(natural, vectors):
                started = time.perf_counter()
                with store.connection:
                    run_search(store, text, mode="hybrid", limit=10, query_vector=vector, vectors=source)
                samples.append((time.perf_counter() - started) * 1000)
            out[f"hybrid_{name}"] = timing(samples)
        # As MemoryIndex.search does it in a long-lived process (data_version check, and
        # the matrix scan overlapping the keyword query on a worker thread).
        index.search(natural[0])
        samples = []
        with ThreadPoolExecutor(max_workers=1) as worker:
            for text, vector in zip(natural * 2, vectors * 2):
                started = time.perf_counter()
                with store.connection:
                    source = Prefetched(index._vectors.source(), worker, vector, CANDIDATES)
                    run_search(store, text, mode="hybrid", limit=10, query_vector=vector, vectors=source)
                samples.append((time.perf_counter() - started) * 1000)
        out["hybrid_api_path"] = timing(samples)
    return out


def cold_starts(root: Path, runs: int) -> dict:
    out: dict = {}
    query = "Which medicine am I unable to take safely?"
    for backend in ("onnx", "torch"):
        for name, args in (("search_hybrid", ["search", query]), ("index_noop", ["index"]), ("status", ["status"])):
            walls, rss = [], []
            for _ in range(runs):
                started = time.perf_counter()
                done = subprocess.run(
                    ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "indexer", "--root", str(root),
                     "--backend", backend, *args],
                    capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                )  # fmt: skip
                walls.append(time.perf_counter() - started)
                rss.append(int(done.stderr.strip().splitlines()[-1]) / 1024)
                if done.returncode != 0:
                    raise SystemExit(f"{args} failed: {done.stderr[-500:]}")
            out[f"{name} {backend}"] = {
                "wall_p50_s": round(statistics.median(walls), 3), "wall_max_s": round(max(walls), 3),
                "rss_mb_p50": round(statistics.median(rss), 1),
            }  # fmt: skip
            print(name, backend, out[f"{name} {backend}"], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=2000, help="chunk texts embedded by the real model")
    parser.add_argument("--small-files", type=int, default=430, help="folder for the 4,300-chunk keyword figures")
    parser.add_argument("--cold-files", type=int, default=1000, help="folder for the cold-start figures (0: skip)")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/memdex-bench-scale"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/scale.json"))
    parser.add_argument("--build-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_child:
        print(json.dumps(build(args.build_child, args.real, args.seed)))
        return
    rng = random.Random(args.seed)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"load_average_at_start": os.getloadavg()}
    files = max(1, round(args.chunks / CHUNKS_PER_FILE))
    results["index"] = ensure_index(args.workdir, files, args.real, args.seed)
    index = results["index"]
    if args.real >= index["chunks"]:  # fully real: every distinct text was embedded by the model
        index["fully_real"] = True
        index["extrapolated_index_seconds_100k"] = round(index["index_seconds"] * 100_000 / index["chunks"])
    print("index", results["index"], flush=True)
    results["queries"] = measure_queries(args.workdir / f"memory-{files}-{args.real}-{args.seed}", rng, args.queries)
    print("queries", json.dumps(results["queries"]), flush=True)
    if args.small_files:
        small = ensure_index(args.workdir, args.small_files, args.real, args.seed)
        root = args.workdir / f"memory-{args.small_files}-{args.real}-{args.seed}"
        results["small"] = {"chunks": small["chunks"], **measure_queries(root, rng, args.queries)}
        print("small", json.dumps(results["small"]), flush=True)
    if args.cold_files:
        cold = ensure_index(args.workdir, args.cold_files, args.real, args.seed)
        root = args.workdir / f"memory-{args.cold_files}-{args.real}-{args.seed}"
        results["cold_start"] = {"chunks": cold["chunks"], "files": cold["files"], **cold_starts(root, args.cold_runs)}
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
