"""Rebuild and check benchmark on a generated folder (1,000 files -> ~10K chunks).

    python bench/bench_rebuild.py [--files 1000] [--warm-runs 3] [--skip-cold]
                                  [--workdir DIR] [--out bench/out/rebuild.json]

Cold: ``rebuild`` with an empty embedding cache (every chunk goes through the
model). Warm: ``rebuild`` again with the cache full (no model call; reading,
parsing, chunking with the tokenizer, writing the new index beside the old one
and copying it in). Check: ``check`` on the healthy index (integrity, FTS5,
rows, chunk texts, vectors against the cache, every file re-hashed). The model
is loaded once, before any timing. ``--workdir`` with ``--skip-cold`` reuses a
folder whose cache is already warm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate_memory  # noqa: E402

from indexer import make_settings, open_index  # noqa: E402
from indexer.embedding.torch_backend import SentenceTransformerEmbedder  # noqa: E402
from indexer.indexing.check import check_index  # noqa: E402
from indexer.store.sqlite.connection import remove_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/out/rebuild.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = (args.workdir or Path(temporary)) / "rebuild"
        if not root.exists():
            generate_memory(root, files=args.files, seed=args.seed)
        settings = make_settings(root)
        embedder = SentenceTransformerEmbedder(settings.model)
        embedder.embed(["warm up"])
        result: dict = {"files": args.files}
        if not args.skip_cold:
            remove_database(settings.cache_path)
        with open_index(settings, write=True, embedder=embedder) as index:
            if not args.skip_cold:
                started = time.perf_counter()
                report = index.rebuild()
                cold = time.perf_counter() - started
                result["cold"] = {"seconds": round(cold, 1), "chunks_embedded": report.chunks_embedded,
                                  "chunks_per_s": round(report.chunks_embedded / cold, 1)}  # fmt: skip
                print(json.dumps(result), flush=True)
            warm = []
            for _ in range(args.warm_runs):
                started = time.perf_counter()
                report = index.rebuild()
                warm.append(time.perf_counter() - started)
                assert report.chunks_embedded == 0, "a warm rebuild must not call the model"
            chunks = index.status()["chunks"]
            median = statistics.median(warm)
            result["chunks"] = chunks
            result["warm"] = {"runs": [round(s, 2) for s in warm], "median_s": round(median, 2),
                              "chunks_per_s": round(chunks / median)}  # fmt: skip
            checks = []
            for _ in range(3):
                found = check_index(settings, index.engine, model_id=embedder.model_id)
                assert found.exit_code == 0, found.as_dict()
                checks.append(found.seconds)
            result["check"] = {"runs": [round(s, 2) for s in checks], "median_s": round(statistics.median(checks), 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
