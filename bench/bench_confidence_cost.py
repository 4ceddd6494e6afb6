"""The cost of confidence (retrieval/confidence.py) per hybrid search, interleaved with and without it.

    python bench/bench_confidence_cost.py [--data ../shared/realtalk] [--chat Chat_6_Vanessa_Nicolas] [--combined]

Uses the indexes bench/eval_realtalk.py built (bench/out/realtalk/CHAT, or ``_combined``);
questions embedded up front, so query embedding is excluded. Prints the median extra
milliseconds and p50/p95 of both; run it alone on the machine for figures worth quoting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from eval_realtalk import COMBINED, REPO, QueryCache, default_data, percentile

from indexer import make_settings, open_index
from indexer.embedding.torch_backend import SentenceTransformerEmbedder
from indexer.retrieval import search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=default_data())
    parser.add_argument("--chat", default="Chat_6_Vanessa_Nicolas", help="the chat whose index and questions to use")
    parser.add_argument("--combined", action="store_true", help="the index over all chats, every question")
    args = parser.parse_args()
    queries = [json.loads(line) for line in Path(args.data, "queries.jsonl").read_text().splitlines() if line.strip()]
    if not args.combined:
        queries = [q for q in queries if q["conv"] == args.chat]
    folder = REPO / "bench" / "out" / "realtalk" / (COMBINED if args.combined else args.chat)
    root = f"{args.data}/memory" + ("" if args.combined else f"/{args.chat}")
    settings = make_settings(root, folder / "index.db")
    cached = QueryCache(SentenceTransformerEmbedder(), [q["question"] for q in queries])
    original = search._confidences
    with_it, without, extra = [], [], []
    with open_index(settings, embedder=cached) as index:
        for question in queries * 2:
            times = []
            for compute in (original, lambda *a: {}):
                search._confidences = compute
                started = time.perf_counter()
                index.search(question["question"])
                times.append((time.perf_counter() - started) * 1000)
            with_it.append(times[0])
            without.append(times[1])
            extra.append(times[0] - times[1])
    search._confidences = original
    print(f"{len(with_it)} searches: confidence adds a median {statistics.median(extra):.2f} ms; "
          f"p50/p95 with {statistics.median(with_it):.2f}/{percentile(with_it, 0.95):.2f} ms, "
          f"without {statistics.median(without):.2f}/{percentile(without, 0.95):.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
