"""The in-memory matrix scan with and without its int8 first pass (retrieval/matrix.py).

    python bench/bench_matrix_int8.py [--root /tmp/memdex-bench-scale/memory-10070-2000-0] [--rounds 3]

One process, the kept index of bench_scale.py (98,450 chunks; any index with vectors
works). The 80 questions of fixtures/queries.json, embedded by the real model, plus 60
perturbed copies of stored vectors (noise from none to far off, lengths other than one),
each asked for k = 1, 10, 200 and 400: the float32 scan and the int8 pass alternate query
by query, so both see the same load. Reported: thread CPU and wall time of each (median
and p95), the rows the int8 pass scored in float32, and how many result lists differ
(ids, order or score: expected 0).

Writes bench/out/matrix_int8.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import numpy as np  # noqa: E402

import indexer.retrieval.matrix as matrix_module  # noqa: E402
from indexer import make_settings, open_index  # noqa: E402
from indexer.retrieval.matrix import NumpyVectors  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(samples: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(samples), 3), "p95_ms": round(percentile(samples, 0.95), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("/tmp/memdex-bench-scale/memory-10070-2000-0"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "matrix_int8.json")
    args = parser.parse_args()
    if not (args.root / ".memdex").is_dir():
        raise SystemExit(f"no index under {args.root}: build one with bench/bench_scale.py")
    questions = [item["query"] for item in json.loads((REPO / "fixtures" / "queries.json").read_text())]
    with open_index(make_settings(args.root)) as index:
        fast = index.vector_matrix()
        asked = list(index.embedder.embed(questions))
    plain = NumpyVectors(fast.ids, fast.matrix, int8_from=len(fast.ids) + 1)
    if fast.int8 is None:
        raise SystemExit(f"{len(fast.ids)} rows: the int8 pass starts at {matrix_module.INT8_FROM_ROWS}")
    rng = np.random.default_rng(1)
    scales = np.repeat([0.0, 0.01, 0.05, 0.2, 1.0, 3.0], 10)
    rows = rng.integers(len(fast.ids), size=len(scales))
    asked += [fast.matrix[i] + rng.standard_normal(fast.matrix.shape[1]).astype(np.float32) * s for i, s in zip(rows, scales)]
    scored: list[int] = []
    original = NumpyVectors._nearest_int8

    def counting(self, query, k):  # the rows scored in float32: what the bounds left
        approximate, bound = self.int8.bounds(query)
        floor = np.partition(approximate - bound, len(bound) - k)[len(bound) - k]
        scored.append(int(np.count_nonzero(approximate + bound >= floor)))
        return original(self, query, k)

    cpu: dict[str, list[float]] = {"float32": [], "int8": []}
    wall: dict[str, list[float]] = {"float32": [], "int8": []}
    differing = lists = 0
    load = os.getloadavg()
    for _ in range(args.rounds):
        for query in asked:
            for k in (1, 10, 200, 400):
                found = {}
                for name, source in (("float32", plain), ("int8", fast)):
                    started, clock = time.thread_time(), time.perf_counter()
                    found[name] = source.nearest(query, k)
                    cpu[name].append((time.thread_time() - started) * 1000)
                    wall[name].append((time.perf_counter() - clock) * 1000)
                lists += 1
                differing += found["float32"] != found["int8"]
    NumpyVectors._nearest_int8 = counting  # once more, counting (not timed)
    for query in asked:
        fast.nearest(query, 200)
    NumpyVectors._nearest_int8 = original
    results = {
        "root": str(args.root), "rows": len(fast.ids), "dimensions": int(fast.matrix.shape[1]),
        "load_average": [load, os.getloadavg()], "result_lists": lists, "lists_differing": differing,
        "cpu": {name: summary(values) for name, values in cpu.items()},
        "wall": {name: summary(values) for name, values in wall.items()},
        "cpu_ratio_int8_to_float32": round(statistics.median(cpu["int8"]) / statistics.median(cpu["float32"]), 3),
        "float32_rows_scored_k200": {"median": int(statistics.median(scored)), "max": max(scored)},
        "memory_mb": {"float32": round(fast.matrix.nbytes / 2**20, 1),
                      "int8_copy": round(sum(a.nbytes for a in (fast.int8.codes, fast.int8.scales, fast.int8.lost)) / 2**20, 1)},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
