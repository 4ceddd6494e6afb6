"""What encryption at rest costs: full indexing time and search p95, encrypted vs plain, as ratios.

    python bench/bench_encryption.py [--files 400] [--rounds 5] [--queries 200] [--out bench/out/encryption.json]

One generated memory folder is indexed into two index folders per round, one
plain and one encrypted (SQLite3 Multiple Ciphers, ChaCha20), in alternating
order; each round then runs the same queries against both, interleaved query
by query. Medians over rounds are reported, with encrypted / plain ratios, so a
noisy shared machine moves both sides alike.

A fast deterministic 384-dimension embedder stands in for the model: the
figures isolate what the storage layer pays (with the real model, indexing is
dominated by the encoder and the ratio is smaller). Needs apsw-sqlite3mc.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate_memory  # noqa: E402

from indexer import make_settings, open_index  # noqa: E402

KEY = "benchmark key, not a secret"


class HashEmbedder:
    """Deterministic unit vectors from each text's hash (no model)."""

    model_id = "bench/hash-384"
    dimensions = 384
    max_tokens = 256

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
            vector = np.random.default_rng(seed).standard_normal(self.dimensions)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimensions)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def index_once(root: Path, db: Path, key: str | None) -> float:
    settings = make_settings(root, db, encryption_key=key)
    start = time.perf_counter()
    with open_index(settings, write=True, embedder=HashEmbedder()) as memory:
        memory.sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import apsw

    if not hasattr(apsw, "mc_version"):
        sys.exit("bench_encryption: needs apsw-sqlite3mc (pip install --force-reinstall --no-deps apsw-sqlite3mc)")
    work = Path(tempfile.mkdtemp(prefix="memdex-bench-enc-"))
    try:
        root = work / "memory"
        corpus = generate_memory(root, files=args.files, seed=0)
        words = sorted({w.strip(".,;:()#*-").lower() for p in root.rglob("*.md") for w in p.read_text().split()} - {""})
        rng = np.random.default_rng(1)
        queries = [" ".join(rng.choice(words, size=2)) for _ in range(args.queries)]
        sides = {"plain": None, "encrypted": KEY}
        index_s: dict[str, list[float]] = {side: [] for side in sides}
        p95: dict[str, dict[str, list[float]]] = {mode: {side: [] for side in sides} for mode in ("keyword", "hybrid")}
        for number in range(args.rounds):
            order = list(sides) if number % 2 == 0 else list(reversed(sides))
            dbs = {side: work / f"{side}-{number}" / "index.db" for side in sides}
            for side in order:
                index_s[side].append(index_once(root, dbs[side], sides[side]))
            opened = {
                side: open_index(make_settings(root, dbs[side], encryption_key=sides[side]), embedder=HashEmbedder())
                for side in sides
            }
            memories = {side: context.__enter__() for side, context in opened.items()}
            try:
                for mode in p95:
                    times: dict[str, list[float]] = {side: [] for side in sides}
                    for side in sides:  # warm: first search loads the vectors
                        memories[side].search(queries[0], mode=mode)
                    for query in queries:
                        for side in order:
                            start = time.perf_counter()
                            memories[side].search(query, mode=mode)
                            times[side].append(time.perf_counter() - start)
                    for side in sides:
                        p95[mode][side].append(percentile(times[side], 0.95) * 1000)
            finally:
                for context in opened.values():
                    context.__exit__(None, None, None)
            for side in sides:
                shutil.rmtree(dbs[side].parent)
            print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
        median = statistics.median
        results = {
            "corpus": corpus,
            "rounds": args.rounds,
            "queries": args.queries,
            "sqlite3mc": apsw.mc_version,
            "index_seconds": {side: round(median(v), 3) for side, v in index_s.items()},
            "index_ratio": round(median(index_s["encrypted"]) / median(index_s["plain"]), 3),
            "search_p95_ms": {mode: {side: round(median(v), 3) for side, v in by.items()} for mode, by in p95.items()},
            "search_p95_ratio": {
                mode: round(median(by["encrypted"]) / median(by["plain"]), 3) for mode, by in p95.items()
            },
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
