"""The SQLite keyword query with and without max-score pruning (store/sqlite/keyword.py).

    python bench/bench_keyword_maxscore.py [--root /tmp/memdex-bench-scale/memory-10070-2000-0] [--rounds 3]

On an index bench_scale.py built and kept (``python bench/bench_scale.py --chunks 100000
--small-files 0 --cold-files 0``), the fixture's 80 questions (their terms as the default
search sends them: common terms pruned, retrieval/query.py) and ``--corpus`` queries of
2-6 words drawn from the corpus ask the store for the keyword pool (200, as the hybrid
search does), the plain OR query and the pruned one interleaved, ``--rounds`` times.
Reports the wall and thread-CPU p50/p95 of each, and checks every pruned top k against
the plain one: the same scores rank by rank, the same chunks but those tied with the
k-th (the pruning is exact; a difference is a bug).

Writes bench/out/keyword_maxscore.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import indexer.store.sqlite.keyword as keyword  # noqa: E402
from indexer import make_settings, open_index  # noqa: E402
from indexer.retrieval.query import keyword_query_terms, query_terms, stem_idfs  # noqa: E402
from indexer.retrieval.search import CANDIDATES  # noqa: E402

PLAIN = 10**12  # SPLIT_FROM_ROWS for the plain OR query


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(samples, 0.5), 3), "p95_ms": round(percentile(samples, 0.95), 3),
            "mean_ms": round(sum(samples) / len(samples), 3)}  # fmt: skip


def same_top(plain: list[tuple[int, float]], pruned: list[tuple[int, float]]) -> bool:
    if len(plain) != len(pruned):
        return False
    if any(abs(a - b) > 1e-9 * max(1.0, abs(a)) for (_, a), (_, b) in zip(plain, pruned)):
        return False
    if not plain:
        return True
    last = plain[-1][1]
    return {c for c, s in plain if s - last > 1e-9} == {c for c, s in pruned if s - last > 1e-9}


def measure(root: Path, rounds: int, corpus: int, seed: int) -> dict:
    natural = [item["query"] for item in json.loads((REPO / "fixtures" / "queries.json").read_text())]
    rng = random.Random(seed)
    words = [w for p in sorted(root.rglob("*.md"))[:300] for w in p.read_text().split() if w.isalpha()]
    drawn = [" ".join(rng.sample(words, rng.randint(2, 6))) for _ in range(corpus)]
    out: dict = {"root": str(root), "pool": CANDIDATES, "split_from_rows": keyword.SPLIT_FROM_ROWS}
    default = keyword.SPLIT_FROM_ROWS
    with open_index(make_settings(root)) as index:
        store = index.store
        out["chunks"] = store.chunk_count()
        for name, questions in (("fixture_questions", natural), ("corpus_words", drawn)):
            searched = []
            for question in questions:
                terms = query_terms(question)
                searched.append(keyword_query_terms(store, terms, stem_idfs(store, terms)))
            wall: dict[str, list[float]] = {"plain": [], "pruned": []}
            cpu: dict[str, list[float]] = {"plain": [], "pruned": []}
            differ = 0
            for round_ in range(rounds):
                for terms in searched:
                    found = {}
                    for side in ("plain", "pruned") if round_ % 2 == 0 else ("pruned", "plain"):
                        keyword.SPLIT_FROM_ROWS = PLAIN if side == "plain" else default
                        with store.connection:
                            started, thread = time.perf_counter(), time.thread_time()
                            found[side] = store.keyword_candidates(terms, CANDIDATES)
                            cpu[side].append((time.thread_time() - thread) * 1000)
                            wall[side].append((time.perf_counter() - started) * 1000)
                    differ += round_ == 0 and not same_top(found["plain"], found["pruned"])
            keyword.SPLIT_FROM_ROWS = default
            out[name] = {
                "queries": len(searched), "top_k_different": differ,
                **{f"{side}_wall": summary(wall[side]) for side in wall},
                **{f"{side}_cpu": summary(cpu[side]) for side in cpu},
                "cpu_p95_ratio": round(percentile(cpu["pruned"], 0.95) / percentile(cpu["plain"], 0.95), 3),
                "cpu_mean_ratio": round(sum(cpu["pruned"]) / sum(cpu["plain"]), 3),
            }  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("/tmp/memdex-bench-scale/memory-10070-2000-0"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=int, default=200, help="queries of corpus words")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "keyword_maxscore.json")
    args = parser.parse_args()
    if not (args.root / ".memdex").is_dir():
        raise SystemExit(f"no index under {args.root}: build one with bench/bench_scale.py (see --help)")
    results = {"load_average_at_start": os.getloadavg(), **measure(args.root, args.rounds, args.corpus, args.seed)}
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
