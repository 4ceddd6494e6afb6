"""Where a warm default search spends its time, part by part, on a large index.

    python bench/bench_search_parts.py [--root /tmp/memdex-bench-scale/memory-10070-2000-0] [--rounds 3]

The root is an index bench_scale.py built and kept (``python bench/bench_scale.py
--chunks 100000 --small-files 0 --cold-files 0`` makes the 98,450-chunk one). One
long-lived process, as an MCP server: the matrix is loaded first, then the 80
questions of fixtures/queries.json go through ``MemoryIndex.search`` with its
defaults (hybrid, re-ranking, 50-line budget), ``--rounds`` times:

- ``search`` excludes the query embedding (each question's vector is computed
  once beforehand and handed back by the embedder); ``search_with_embedding``
  embeds each question (the real ONNX model, one thread), as a warm server does;
- each part of the search is timed where it is called (the store's keyword
  query, chunk rows, term counts; IDFs, fusion, the ranking stages, packing,
  confidence), with the total wall time and the thread's CPU time of each search:
  on a shared machine CPU time moves less with the load than wall time;
- the process's peak RSS (VmHWM) at the end: model, matrix, SQLite and every search.

``--compare BASE_TREE``: the same measurement in alternating fresh processes, BASE_TREE's
code (another checkout, e.g. ``git archive f7d868c | tar -x -C /tmp/base``) then this one's,
``--processes`` times each, and the medians of each side's figures with their ratio
new / base: side by side under the same load.

Writes bench/out/search_parts.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve() if "--tree" in sys.argv else REPO  # the code measured
sys.path.insert(0, str(TREE))
import numpy as np  # noqa: E402

import indexer.retrieval.search as search_module  # noqa: E402
import indexer.retrieval.stages as stages_module  # noqa: E402
from indexer import make_settings, open_index  # noqa: E402
from indexer.embedding.lazy import LazyEmbedder  # noqa: E402

PARTS = {  # module -> functions of the search path to time
    search_module: ("stem_idfs", "keyword_query_terms", "prefix_idfs", "fusion_parts", "fused_ranking", "pack",
                    "_confidences"),  # fmt: skip
}
STORE_PARTS = ("keyword_candidates", "term_document_counts", "chunks_by_id")
STAGES = (stages_module.ReadHead, stages_module.GroupPrior, stages_module.DateBoost)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples), "mean_ms": round(statistics.mean(samples), 3),
        "p50_ms": round(percentile(samples, 0.5), 3), "p95_ms": round(percentile(samples, 0.95), 3),
    }  # fmt: skip


class KnownQueries:
    """The real model's vectors for known questions, computed once: a search then
    costs everything but the query embedding."""

    def __init__(self, model: LazyEmbedder, queries: list[str]) -> None:
        self.model_id, self.dimensions, self.max_tokens = model.model_id, model.dimensions, model.max_tokens
        self.count_tokens = model.count_tokens
        self.model = model
        self.vectors = {query: model.embed([query])[0] for query in queries}
        self.live = False  # True: every query goes through the model

    def embed(self, texts: list[str]) -> np.ndarray:
        if self.live:
            return self.model.embed(texts)
        return np.stack([self.vectors[text] for text in texts])


def timed(times: dict[str, list[float]], label: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            times.setdefault(label, []).append((time.perf_counter() - started) * 1000)

    return wrapper


def instrument(store, times: dict[str, list[float]]) -> None:
    for module, names in PARTS.items():
        for name in names:
            setattr(module, name, timed(times, name, getattr(module, name)))
    for name in STORE_PARTS:
        setattr(store, name, timed(times, f"store.{name}", getattr(store, name)))
    for stage in STAGES:
        stage.__call__ = timed(times, f"stage.{stage.__name__}", stage.__call__)


def measure(root: Path, rounds: int) -> dict:
    questions = [item["query"] for item in json.loads((REPO / "fixtures" / "queries.json").read_text())]
    model = LazyEmbedder()
    model.embed(["warm up"])
    known = KnownQueries(model, questions)
    out: dict = {"root": str(root)}
    times: dict[str, list[float]] = {}
    with open_index(make_settings(root), embedder=known) as index:
        out["chunks"] = index.status()["chunks"]
        index.vector_matrix()  # a warm process has its matrix
        index.search(questions[0])
        instrument(index.store, times)
        walls, cpus = [], []
        for _ in range(rounds):
            for question in questions:
                wall, cpu = time.perf_counter(), time.thread_time()
                index.search(question)
                cpus.append((time.thread_time() - cpu) * 1000)
                walls.append((time.perf_counter() - wall) * 1000)
        out["search"] = {"wall": summary(walls), "cpu": summary(cpus)}
        out["parts"] = {label: summary(samples) for label, samples in sorted(times.items(), key=lambda kv: -sum(kv[1]))}
        known.live = True  # now with the query embedding, as a warm server searches
        walls = []
        for _ in range(rounds):
            for question in questions:
                wall = time.perf_counter()
                index.search(question)
                walls.append((time.perf_counter() - wall) * 1000)
        out["search_with_embedding"] = {"wall": summary(walls)}
    # The warm process's peak: model, runtime, matrix, SQLite caches and every search.
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


FIGURES = {  # what --compare reports: a name -> its path in one run's JSON
    "search p50 (ms)": ("search", "wall", "p50_ms"), "search p95 (ms)": ("search", "wall", "p95_ms"),
    "search CPU p50 (ms)": ("search", "cpu", "p50_ms"), "search CPU p95 (ms)": ("search", "cpu", "p95_ms"),
    "keyword query p50 (ms)": ("parts", "store.keyword_candidates", "p50_ms"),
    "keyword query p95 (ms)": ("parts", "store.keyword_candidates", "p95_ms"),
    "with the query embedding p50 (ms)": ("search_with_embedding", "wall", "p50_ms"),
    "with the query embedding p95 (ms)": ("search_with_embedding", "wall", "p95_ms"),
    "peak RSS (MB)": ("peak_rss_mb",),
}  # fmt: skip


def compare(base: Path, root: Path, rounds: int, processes: int, base_root: Path | None = None) -> dict:
    runs: dict[str, list[dict]] = {"base": [], "new": []}
    for _ in range(processes):
        for side, tree, where in (("base", base, base_root or root), ("new", REPO, root)):
            out = Path(f"/tmp/memdex-search-parts-{os.getpid()}-{side}.json")
            subprocess.run(
                [sys.executable, __file__, "--tree", str(tree), "--root", str(where), "--rounds", str(rounds),
                 "--out", str(out)],
                check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(tree)},
            )  # fmt: skip
            runs[side].append(json.loads(out.read_text()))
            out.unlink()
    table = {}
    for name, path in FIGURES.items():
        medians = {}
        for side, results in runs.items():
            values = []
            for result in results:
                for key in path:
                    result = result[key]
                values.append(result)
            medians[side] = round(statistics.median(values), 3)
        table[name] = {**medians, "ratio": round(medians["new"] / medians["base"], 3)}
    return {"base_tree": str(base), "processes": processes, "rounds": rounds, "figures": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("/tmp/memdex-bench-scale/memory-10070-2000-0"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", type=Path, metavar="BASE_TREE", help="another checkout to measure alongside")
    parser.add_argument("--processes", type=int, default=3, help="with --compare: fresh processes per side")
    parser.add_argument(
        "--base-root", type=Path,
        help="with --compare: the base's own copy of the index (when this tree's schema is newer than the base's)",
    )  # fmt: skip
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "search_parts.json")
    args = parser.parse_args()
    if not (args.root / ".memdex").is_dir():
        raise SystemExit(f"no index under {args.root}: build one with bench/bench_scale.py (see --help)")
    results: dict = {"load_average_at_start": os.getloadavg()}
    if args.compare:
        results.update(compare(args.compare.resolve(), args.root, args.rounds, args.processes, args.base_root))
    else:
        results.update(measure(args.root, args.rounds))
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
