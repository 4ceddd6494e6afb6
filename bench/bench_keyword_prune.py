"""The keyword half of the default search with and without common terms pruned.

    python bench/bench_keyword_prune.py --realtalk [--data ../shared/realtalk] [--work bench/out/realtalk]
    python bench/bench_keyword_prune.py --root ROOT [--queries fixtures/queries.json]

A term in at least half the chunks scores nothing in FTS5's bm25 (its IDF is
floored at 1e-6) but its whole posting list is walked; the default search leaves
it out of the keyword query while another term remains (retrieval/query.py,
``keyword_query_terms``). For every question (REALTALK: the per-chat indexes
bench/eval_realtalk.py built; or an index at ROOT with the fixture's questions),
this times the keyword candidate query (the pool of 200) with all terms and with
the pruned terms, interleaved, and counts the questions whose terms changed.
Quality: bench/eval_realtalk.py and bench/eval_retrieval.py (pruning is on by default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer import make_settings, open_index  # noqa: E402
from indexer.retrieval.query import keyword_query_terms, query_terms, stem_idfs  # noqa: E402
from indexer.retrieval.search import CANDIDATES  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(root: Path, db: Path | None, questions: list[str], rounds: int) -> dict[str, list[float] | int]:
    settings = make_settings(root, db) if db is not None else make_settings(root)
    full_ms: list[float] = []
    pruned_ms: list[float] = []
    changed = 0
    with open_index(settings) as index:
        store = index.store
        for question in questions:
            terms = query_terms(question)
            if not terms:
                continue
            kept = keyword_query_terms(store, terms, stem_idfs(store, terms))
            changed += kept != terms
            for _ in range(rounds):
                for chosen, into in ((terms, full_ms), (kept, pruned_ms)):
                    started = time.perf_counter()
                    store.keyword_candidates(chosen, CANDIDATES)
                    into.append((time.perf_counter() - started) * 1000)
    return {"all_terms_ms": full_ms, "pruned_ms": pruned_ms, "changed": changed, "questions": len(questions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realtalk", action="store_true")
    parser.add_argument("--data", type=Path, default=Path("../shared/realtalk"))
    parser.add_argument("--work", type=Path, default=Path("bench/out/realtalk"))
    parser.add_argument("--root", type=Path)
    parser.add_argument("--queries", type=Path, default=Path("fixtures/queries.json"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/out/keyword_prune.json"))
    args = parser.parse_args()
    totals: dict[str, list[float]] = {"all_terms_ms": [], "pruned_ms": []}
    changed = asked = 0
    if args.realtalk:
        queries = [json.loads(line) for line in (args.data / "queries.jsonl").read_text().splitlines() if line.strip()]
        for chat in sorted({q["conv"] for q in queries}):
            got = measure(args.data / "memory" / chat, args.work / chat / "index.db",
                          [q["question"] for q in queries if q["conv"] == chat], args.rounds)  # fmt: skip
            for name in totals:
                totals[name] += got[name]  # type: ignore[arg-type]
            changed, asked = changed + got["changed"], asked + got["questions"]  # type: ignore[operator]
    else:
        questions = [q["query"] for q in json.loads(args.queries.read_text())]
        got = measure(args.root, None, questions, args.rounds)
        totals = {name: got[name] for name in totals}  # type: ignore[misc]
        changed, asked = got["changed"], got["questions"]  # type: ignore[assignment]
    summary = {
        "questions": asked, "questions_with_terms_pruned": changed,
        **{f"{name.removesuffix('_ms')}_p50_ms": round(statistics.median(values), 3) for name, values in totals.items()},
        **{f"{name.removesuffix('_ms')}_p95_ms": round(percentile(values, 0.95), 3) for name, values in totals.items()},
    }  # fmt: skip
    summary["p95_ratio_pruned_over_all"] = round(summary["pruned_p95_ms"] / summary["all_terms_p95_ms"], 3)
    print(json.dumps(summary, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
