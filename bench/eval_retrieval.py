"""Retrieval quality on a labelled fixture: recall@k and MRR per mode and query type.

    python bench/eval_retrieval.py [--root fixtures/memory] [--queries fixtures/queries.json] [--backend torch|onnx]
                                   [--db postgresql://...]

A result is a hit when its chunk comes from a labelled path and its lines
contain the labelled substring. Indexes into a temporary file (or, with ``--db postgresql://...``, a new
namespace on that server, from a temporary copy of the folder), so the
fixture folder is left untouched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path

from indexer import make_settings, open_index
from indexer.api import DEFAULT_BUDGET_LINES
from indexer.embedding.lazy import BACKENDS, LazyEmbedder
from indexer.embedding.variants import VARIANTS
from indexer.retrieval.confidence import nothing_relevant
from indexer.retrieval.stages import parse_ranking

MODES = ("keyword", "vector", "hybrid")


def first_hit_rank(index, query: dict, mode: str, depth: int, options: dict) -> int | None:
    for rank, result in enumerate(index.search(query["query"], mode=mode, limit=depth, **options), start=1):
        text = "\n".join(index.get(f"{result.path}:{result.start_line}-{result.end_line}").lines)
        if any(result.path == rel["path"] and rel["contains"] in text for rel in query["relevant"]):
            return rank
    return None


def evaluate(
    index, queries: list[dict], *, k: int = 5, depth: int = 10, options: dict | None = None
) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for mode in MODES:
        groups: dict[str, list[int | None]] = defaultdict(list)
        for query in queries:
            rank = first_hit_rank(index, query, mode, depth, options or {})
            groups["all"].append(rank)
            groups[query.get("type", "untyped")].append(rank)
        for group, ranks in groups.items():
            table.setdefault(group, {})[f"{mode} R@{k}"] = round(
                sum(1 for r in ranks if r is not None and r <= k) / len(ranks), 3
            )
            table[group][f"{mode} MRR"] = round(sum(1 / r for r in ranks if r) / len(ranks), 3)
            table[group]["n"] = len(ranks)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("fixtures/memory"))
    parser.add_argument("--queries", type=Path, default=Path("fixtures/queries.json"))
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--variant", choices=VARIANTS, default="full", help="model_variant (full, int8, static)")
    parser.add_argument(
        "--budget-lines", type=int, default=DEFAULT_BUDGET_LINES,
        help="line budget of each search (0: whole chunks, the ranking alone)",
    )  # fmt: skip
    parser.add_argument("--ranking", default="default", help="none, default or field:value,... (see retrieval.stages.Ranking)")
    parser.add_argument("--db", default=None, help="a postgresql:// URL: evaluate on PostgreSQL instead of SQLite")
    args = parser.parse_args()
    options = {"budget_lines": args.budget_lines or None, "ranking": parse_ranking(args.ranking)}
    queries = json.loads(args.queries.read_text())
    model = LazyEmbedder(backend=args.backend, variant=args.variant)
    with tempfile.TemporaryDirectory() as tmp:
        if args.db:  # the server index keeps its lock in ROOT/.memdex: work on a copy
            root = Path(tmp) / "memory"
            shutil.copytree(args.root, root)
            settings = make_settings(root, args.db, namespace=f"eval-{uuid.uuid4().hex[:8]}")
        else:
            settings = make_settings(args.root, Path(tmp) / "index.db")
        with open_index(settings, write=True, embedder=model) as index:
            index.sync()
        with open_index(settings, embedder=model) as index:
            table = evaluate(index, queries, k=args.k, options=options)
            flagged = [q["query"] for q in queries if nothing_relevant([r.confidence for r in index.search(q["query"], **options)])]
    columns = [f"{mode} R@{args.k}" for mode in MODES] + [f"{mode} MRR" for mode in MODES]
    print("| queries | n | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for group in sorted(table, key=lambda g: (g != "all", g)):
        row = table[group]
        print(f"| {group} | {row['n']} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    print(f"\nnothing relevant (no hybrid result with confidence >= 0.5): {len(flagged)} of {len(queries)} answerable queries")
    for query in flagged:
        print(f"  {query}")


if __name__ == "__main__":
    main()
