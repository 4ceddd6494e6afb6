"""Keyword query at 100K: FTS5 scoring every chunk against common words scored in NumPy.

    python bench/bench_keyword_numpy.py [--root R] [--rounds 3]

R is the kept 98,450-chunk index (bench_scale.py; see bench_search_parts.py). One process,
the 80 questions of fixtures/queries.json as the default hybrid search sends them to the
keyword query (the pool of 200), ``--rounds`` times, query by query alternating the code
before (store/sqlite/phrases.py off: FTS5's bm25 for every chunk, with max-score pruning)
and now, each first in turn, (a fresh index state: the first round reads FTS5's data, later ones reuse it):

- the thread CPU of each keyword query, p50 / p95 over all rounds and over the first;
- exactness: each top 200 against FTS5's plain OR query (``ORDER BY rank LIMIT 200``), bit
  for bit, scores and order, for both codes (the pruned one sums in another order: ~1e-16).

Writes bench/out/keyword_numpy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from indexer import make_settings, open_index  # noqa: E402
from indexer.retrieval.search import keyword_query_terms, query_terms, stem_idfs  # noqa: E402
from indexer.store.records import BM25_WEIGHTS  # noqa: E402
from indexer.store.sqlite import phrases  # noqa: E402
from indexer.store.sqlite.keyword import either  # noqa: E402
from indexer.store.tokenizer import query_pieces  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("/tmp/memdex-bench-scale/memory-10070-2000-0"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "keyword_numpy.json")
    args = parser.parse_args()
    questions = [item["query"] for item in json.loads((REPO / "fixtures" / "queries.json").read_text())]
    weights = ", ".join(str(w) for w in BM25_WEIGHTS)
    plain_sql = (
        f"SELECT rowid, bm25(chunks_fts, {weights}) AS r FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY r LIMIT ?"
    )
    common_from = phrases.COMMON_FROM_ROWS
    cpu: dict[str, list[float]] = {"before": [], "now": []}
    differ = {"before": 0, "now": 0}
    results: dict = {"load_average_at_start": os.getloadavg(), "root": str(args.root)}
    with open_index(make_settings(args.root)) as index:
        store = index.store
        searched = []
        for question in questions:
            terms = query_terms(question)
            searched.append(keyword_query_terms(store, terms, stem_idfs(store, terms)))
        for _ in range(args.rounds):
            for n, terms in enumerate(searched):
                pieces = [piece for term in terms for piece in query_pieces(term)]
                plain = [(i, -r) for i, r in store.connection.execute(plain_sql, (either(pieces, range(len(pieces))), 200))]
                sides = [("before", 10**12), ("now", common_from)]
                for side, threshold in sides if n % 2 else sides[::-1]:  # each side first half the time
                    phrases.COMMON_FROM_ROWS = threshold
                    started = time.thread_time()
                    found = store.keyword_candidates(terms, 200)
                    cpu[side].append((time.thread_time() - started) * 1000)
                    differ[side] += found != plain
        phrases.COMMON_FROM_ROWS = common_from
        results["kept_entries"] = store._phrases._entries
    first = len(searched)
    for side, samples in cpu.items():
        results[side] = {
            "cpu_p50_ms": percentile(samples, 0.5), "cpu_p95_ms": percentile(samples, 0.95),
            "first_round_p50_ms": percentile(samples[:first], 0.5),
            "first_round_p95_ms": percentile(samples[:first], 0.95),
            "lists_not_bitwise_fts5s": differ[side], "lists": len(samples),
        }  # fmt: skip
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
