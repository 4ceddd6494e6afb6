"""Budgeted retrieval on a REALTALK-style data set, through the public API.

    python bench/eval_realtalk.py [--data ../shared/realtalk] [--combined] [--out bench/out/realtalk]

The data folder holds ``memory/<chat>/...``, ``queries.jsonl`` and the scorer
``score.py``. Each chat folder is indexed as its own memory root (``--combined``:
all of ``memory/`` as one root, searched over everything, unfiltered). Indexes
live under ``--work`` (default ``bench/out/realtalk``), never in the data folder;
their embedding caches make every run after the first cheap, and the combined
index is seeded from the per-chat caches (the embedded text does not depend on
the path). Every question is asked with the default search; the results go to
``OUT/results[-combined].jsonl`` in the scorer's format, the scorer's table is
printed and its figures saved as JSON beside them, with search latency.

``--abstain``: the abstention figures instead (bench/abstain.py): every chat's
own questions and the other chats' questions with names swapped, asked of
each chat's index; AUROC and the shares flagged at the 0.5 cut, on held-out chats.

``--option NAME=VALUE`` passes extra keyword arguments to ``search`` (numbers
are parsed), e.g. ``--option limit=40`` or ``--option budget_lines=0``; the
ablation in README was made with ``--option ranking=STEPS``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from indexer import make_settings, open_index
from indexer.embedding.lazy import LazyEmbedder
from indexer.embedding.torch_backend import SentenceTransformerEmbedder
from indexer.embedding.variants import VARIANTS
from indexer.retrieval.stages import parse_ranking
from indexer.store.sqlite.cache import EmbeddingCache

REPO = Path(__file__).resolve().parent.parent
COMBINED = "_combined"


def default_data() -> Path:
    """``../shared/realtalk`` beside the checkout (or beside a parent folder, for worktrees)."""
    for folder in REPO.parents:
        candidate = folder / "shared" / "realtalk"
        if candidate.exists():
            return candidate
    return REPO.parent / "shared" / "realtalk"


def parse_options(pairs: list[str]) -> dict[str, object]:
    options: dict[str, object] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if value == "None":
            options[name] = None
            continue
        if name == "ranking":
            options[name] = parse_ranking(value)
            continue
        try:
            options[name] = int(value)
        except ValueError:
            try:
                options[name] = float(value)
            except ValueError:
                options[name] = value
    return options


def seed_cache(work: Path, chats: list[str], target: Path, model: SentenceTransformerEmbedder) -> None:
    """Copy the per-chat embedding caches into the combined index's cache."""
    into = EmbeddingCache(target, model_id=model.model_id, dimensions=model.dimensions)
    try:
        for chat in chats:
            source = work / chat / "embeddings.db"
            if not source.exists():
                continue
            cache = EmbeddingCache(source, model_id=model.model_id, dimensions=model.dimensions)
            try:
                hashes = [row[0] for row in cache.connection.execute("SELECT hash FROM embeddings")]
                into.put_many(cache.get_many(hashes))
            finally:
                cache.close()
    finally:
        into.close()


class QueryCache:
    """The model, with the questions embedded up front in one batch, so that the
    timed search calls measure memdex and not the query embedding."""

    def __init__(self, model: SentenceTransformerEmbedder, questions: list[str]) -> None:
        self.model = model
        self.model_id, self.dimensions, self.max_tokens = model.model_id, model.dimensions, model.max_tokens
        unique = list(dict.fromkeys(questions))
        self.vectors = dict(zip(unique, model.embed(unique)))

    def count_tokens(self, texts):
        return self.model.count_tokens(texts)

    def embed(self, texts):
        if all(text in self.vectors for text in texts):
            return np.stack([self.vectors[text] for text in texts])
        return self.model.embed(texts)


def ask(index, questions: list[dict], options: dict[str, object], prefix: str, timings: list[float]) -> list[dict]:
    lines = []
    for question in questions:
        started = time.perf_counter()
        results = index.search(question["question"], **options)
        timings.append(time.perf_counter() - started)
        spans = [
            {"path": r.path.removeprefix(prefix), "start_line": r.start_line, "end_line": r.end_line}
            for r in results
        ]
        lines.append({"qid": question["qid"], "results": spans})
    return lines


def ranking_overhead(index, questions: list[dict], options: dict[str, object]) -> dict[str, float]:
    """The ranking stages' cost: p50/p95 of the search with and without them
    (same index, interleaved query by query), and the median difference."""
    extra, with_stages, without = [], [], []
    base = {**options, "ranking": None}
    for question in questions[:300]:
        times = []
        for chosen in (options, base):
            started = time.perf_counter()
            index.search(question["question"], **chosen)
            times.append(time.perf_counter() - started)
        with_stages.append(times[0] * 1000)
        without.append(times[1] * 1000)
        extra.append((times[0] - times[1]) * 1000)
    if not extra:
        return {}
    return {
        "median_extra_ms": round(statistics.median(extra), 2),
        "p50_ms": round(statistics.median(with_stages), 2), "p95_ms": round(percentile(with_stages, 0.95), 2),
        "p50_ms_without": round(statistics.median(without), 2), "p95_ms_without": round(percentile(without, 0.95), 2),
    }  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


def run_abstain(args: argparse.Namespace, by_chat: dict[str, list[dict]], options: dict[str, object]) -> dict:
    import abstain

    unanswerable = abstain.negatives(by_chat, args.data / "memory")
    model = SentenceTransformerEmbedder()
    everything = [q["question"] for qs in (*by_chat.values(), *unanswerable.values()) for q in qs]
    cached = QueryCache(model, everything)
    rows: list[dict] = []
    with abstain.Recorder() as recorder:
        fixture = abstain.fixture_rows(REPO / "fixtures" / "memory", REPO / "fixtures" / "queries.json", model, options, recorder)
        for chat in sorted(by_chat):
            folder = args.work / chat
            folder.mkdir(parents=True, exist_ok=True)
            settings = make_settings(args.data / "memory" / chat, folder / "index.db")
            with open_index(settings, write=True, embedder=model) as index:
                index.sync()
            with open_index(settings, embedder=cached) as index:
                rows += abstain.ask_all(index, by_chat[chat], options, recorder, 1, chat)
                rows += abstain.ask_all(index, unanswerable[chat], options, recorder, 0, chat)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "abstain" + (f"-{args.tag}" if args.tag else "")
    (args.out / f"{name}.rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (args.out / f"{name}.fixture.jsonl").write_text("".join(json.dumps(row) + "\n" for row in fixture))
    summary = abstain.report(rows, fixture)
    (args.out / f"{name}.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return summary


def run(args: argparse.Namespace) -> dict:
    data: Path = args.data
    queries = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines() if line.strip()]
    by_chat: dict[str, list[dict]] = defaultdict(list)
    for question in queries:
        by_chat[question["conv"]].append(question)
    chats = sorted(by_chat)
    options = parse_options(args.option)
    if args.abstain:
        return run_abstain(args, by_chat, options)
    # --variant full keeps the reference figures' embedder (sentence-transformers on torch).
    model = SentenceTransformerEmbedder() if args.variant == "full" else LazyEmbedder(variant=args.variant)
    cached = QueryCache(model, [q["question"] for q in queries])
    timings: list[float] = []
    results: list[dict] = []
    if args.combined:
        folder = args.work / (COMBINED + ("_dated" if args.dated else ""))
        folder.mkdir(parents=True, exist_ok=True)
        # --dated: each chat's daily/ folder is a folder of daily logs (the daily_folders setting), as a
        # user with many notebooks would set it; without it the combined index's day files are undated notes
        dated = {"daily_folders": tuple(f"{chat}/daily" for chat in chats)} if args.dated else {}
        settings = make_settings(data / "memory", folder / "index.db", **dated)
        if not settings.index_path.exists():
            seed_cache(args.work, chats, settings.cache_path, model)
        with open_index(settings, write=True, embedder=model) as index:
            index.sync()
        with open_index(settings, embedder=cached) as index:
            for chat in chats:
                results += ask(index, by_chat[chat], options, "", timings)
            overhead = ranking_overhead(index, queries, options)
    else:
        for chat in chats:
            folder = args.work / chat
            folder.mkdir(parents=True, exist_ok=True)
            settings = make_settings(data / "memory" / chat, folder / "index.db")
            with open_index(settings, write=True, embedder=model) as index:
                index.sync()
            with open_index(settings, embedder=cached) as index:
                results += ask(index, by_chat[chat], options, "", timings)
                if chat == chats[-1]:
                    overhead = ranking_overhead(index, by_chat[chat], options)
    args.out.mkdir(parents=True, exist_ok=True)
    name = ("results-combined" + ("-dated" if args.dated else "")) if args.combined else "results"
    if args.tag:
        name += f"-{args.tag}"
    out = args.out / f"{name}.jsonl"
    out.write_text("".join(json.dumps(line) + "\n" for line in results))
    score_json = args.out / f"{name}.score.json"
    table = subprocess.run(
        [sys.executable, str(data / "score.py"), str(data / "queries.jsonl"), str(out), "--json", str(score_json)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    print(table, end="")
    timings.sort()
    latency = {
        "p50_ms": round(statistics.median(timings) * 1000, 2),
        "p95_ms": round(timings[int(0.95 * (len(timings) - 1))] * 1000, 2),
        "note": "per search call, query embedding excluded (embedded up front)",
        "ranking_overhead_ms": overhead,
    }
    print(
        f"search latency excl. query embedding: p50 {latency['p50_ms']} ms, p95 {latency['p95_ms']} ms; "
        f"ranking stages: {overhead} (same index, interleaved)"
    )
    summary = json.loads(score_json.read_text())
    summary.update(options={k: repr(v) for k, v in options.items()}, combined=args.combined, latency=latency)
    score_json.write_text(json.dumps(summary, indent=1))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--combined", action="store_true", help="one index over all chats")
    parser.add_argument("--dated", action="store_true", help="with --combined: each chat's daily/ is a daily folder")
    parser.add_argument("--abstain", action="store_true", help="abstention: AUROC and shares flagged (bench/abstain.py)")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "realtalk", help="index folders")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "realtalk", help="results folder")
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    parser.add_argument("--variant", choices=VARIANTS, default="full",
                        help="model_variant to embed with (indexes go to WORK/<variant>/ for int8 and static)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    if not (args.data / "queries.jsonl").exists():
        parser.error(f"{args.data}: no queries.jsonl (pass --data)")
    if args.variant != "full":
        args.work = args.work / args.variant
        args.tag = args.tag or args.variant
    run(args)


if __name__ == "__main__":
    main()
