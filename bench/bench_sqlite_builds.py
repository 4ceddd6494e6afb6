"""What installing apsw-sqlite3mc costs an index that is NOT encrypted: plain APSW vs APSW
built with SQLite3 Multiple Ciphers, same code, same folder, as ratios.

    pip install --target /tmp/mc --no-deps 'apsw-sqlite3mc>=3.54'
    python bench/bench_sqlite_builds.py --mc-target /tmp/mc [--files 400] [--rounds 5]

The two builds cannot share one environment (both are the module ``apsw``), so each
round runs one child process per build, alternating which goes first; the child with
``--mc-target`` first on PYTHONPATH imports the cipher build. Each child indexes the
generated folder afresh, times 200 keyword and 200 hybrid searches (p95), then
re-indexes after 40 files were edited. A hash embedder stands in for the model (as in
bench_encryption.py), so only the storage layer is measured. Medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FIGURES = ("index_s", "keyword_p95_ms", "hybrid_p95_ms", "reindex_40_files_s")


def child(root: Path) -> dict[str, object]:
    sys.path.insert(0, str(BENCH))
    import apsw
    from bench_encryption import HashEmbedder, index_once, percentile

    from indexer import make_settings, open_index

    work = Path(tempfile.mkdtemp(prefix="memdex-bench-builds-"))
    try:
        db = work / "index.db"
        out: dict[str, object] = {"build": getattr(apsw, "mc_version", f"apsw {apsw.apsw_version()}")}
        out["index_s"] = index_once(root, db, None)
        words = sorted({w.strip(".,;:()#*-").lower() for p in root.rglob("*.md") for w in p.read_text().split()} - {""})
        queries = [" ".join(np.random.default_rng(1).choice(words, size=2)) for _ in range(200)]
        with open_index(make_settings(root, db), embedder=HashEmbedder()) as memory:
            for mode in ("keyword", "hybrid"):
                memory.search(queries[0], mode=mode)  # the first search loads the vectors
                times = []
                for query in queries:
                    start = time.perf_counter()
                    memory.search(query, mode=mode)
                    times.append(time.perf_counter() - start)
                out[f"{mode}_p95_ms"] = percentile(times, 0.95) * 1000
        edited = sorted(root.rglob("*.md"))[:40]
        originals = {path: path.read_text() for path in edited}
        for path, text in originals.items():
            path.write_text(text + "\nedited for the benchmark\n")
        start = time.perf_counter()
        with open_index(make_settings(root, db), write=True, embedder=HashEmbedder()) as memory:
            memory.sync()
        out["reindex_40_files_s"] = time.perf_counter() - start
        for path, text in originals.items():
            path.write_text(text)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mc-target", type=Path, help="a pip --target folder holding apsw-sqlite3mc")
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    if args.mc_target is None or not (args.mc_target / "apsw").is_dir():
        sys.exit("bench_sqlite_builds: --mc-target must be a folder with apsw-sqlite3mc (see the docstring)")
    sys.path.insert(0, str(BENCH))
    from generate import generate_memory

    work = Path(tempfile.mkdtemp(prefix="memdex-bench-builds-root-"))
    try:
        root = work / "memory"
        corpus = generate_memory(root, files=args.files, seed=0)
        runs: dict[str, list[dict[str, object]]] = {"apsw": [], "sqlite3mc": []}
        for number in range(args.rounds):
            for build in ("apsw", "sqlite3mc") if number % 2 == 0 else ("sqlite3mc", "apsw"):
                path = [str(args.mc_target)] if build == "sqlite3mc" else []
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(REPO)])}
                done = subprocess.run([sys.executable, __file__, "--child", str(root)], env=env, cwd=REPO,
                                      capture_output=True, text=True, check=False)  # fmt: skip
                if done.returncode:
                    sys.exit(done.stderr[-2000:])
                runs[build].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = statistics.median
    results = {
        "corpus": corpus,
        "rounds": args.rounds,
        "builds": {build: found[0]["build"] for build, found in runs.items()},
        "medians": {build: {f: round(median(float(r[f]) for r in found), 4) for f in FIGURES} for build, found in runs.items()},  # type: ignore[arg-type]
    }
    results["sqlite3mc_over_apsw"] = {
        f: round(results["medians"]["sqlite3mc"][f] / results["medians"]["apsw"][f], 3) for f in FIGURES  # type: ignore[index]
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
