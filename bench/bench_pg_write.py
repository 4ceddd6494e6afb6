"""PostgreSQL against SQLite at about 10K chunks: indexing, hybrid search and two writers,
for two versions of memdex side by side in one run (default: the base commit and this tree).

    python bench/bench_pg_write.py [--files 1000] [--base f7d868c] [--rounds 1] [--queries 80]
                                   [--out bench/out/pg_write.json]

Data: bench/generate.py's folder of ``--files`` files (1,000 files: about 9,900 chunks), kept in
``--workdir``. Vectors: a hash of the text (384 dims, no model), so the model's time does not
count. One throwaway durable PostgreSQL server (tests/pg_server.py) serves every run. For each
round and each side (``base``: ``git archive`` of ``--base`` in a temporary folder; ``new``:
this tree), in the order base, new, base, new...:

1. a full ``sync`` into SQLite and into a new PostgreSQL database, each in a fresh process
   (wall seconds; on PostgreSQL also the statements sent per file written);
2. warm hybrid search through ``MemoryIndex.search`` over the fixture's questions (one
   pass to warm up, then p50/p95), on SQLite and on PostgreSQL;
3. two writers at once: two processes each index their own copy into their own SQLite file,
   then into their own PostgreSQL namespace (wall seconds until both finish).

Ratios compare fairly within one run; absolute figures move with the machine's load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DIMS = 384


# -- child (runs with the side's tree first on PYTHONPATH) -----------------------------------

class HashEmbedder:
    """A deterministic unit vector per text, without a model."""

    def __init__(self) -> None:
        self.model_id = "bench/hash"
        self.dimensions = DIMS
        self.max_tokens = 256

    def count_tokens(self, texts: Any) -> list[int]:
        return [len(re.findall(r"\w+|[^\w\s]", text)) for text in texts]

    def embed(self, texts: Any) -> Any:
        import numpy as np

        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
            vector = np.random.default_rng(seed).standard_normal(DIMS)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), DIMS)


def count_statements() -> dict[str, int]:
    """Count what the psycopg cursors send (execute: 1, executemany: 1 per row, copy: 1)."""
    import psycopg

    counts = {"statements": 0}

    def wrap(name: str, per_call: Any) -> None:
        original = getattr(psycopg.Cursor, name)

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts["statements"] += per_call(args)
            return original(self, *args, **kwargs)

        setattr(psycopg.Cursor, name, counted)

    wrap("execute", lambda args: 1)
    wrap("executemany", lambda args: len(list(args[1])) if len(args) > 1 else 1)
    wrap("copy", lambda args: 1)
    return counts


def child(job: dict[str, Any]) -> dict[str, Any]:
    from indexer import make_settings, open_index

    options = {"namespace": job["namespace"]} if job.get("namespace") else {}
    settings = make_settings(job["root"], job["db"], **options)
    if job["role"] == "index":
        counts = count_statements() if job.get("namespace") else {"statements": 0}
        start = time.perf_counter()
        with open_index(settings, write=True, embedder=HashEmbedder()) as index:
            report = index.sync()
        seconds = time.perf_counter() - start
        files = max(1, report.reindexed)
        chunks = report.chunks_embedded + report.chunks_from_cache + report.chunks_deduplicated
        return {"seconds": round(seconds, 2), "files": report.reindexed, "chunks": chunks,
                "statements_per_file": round(counts["statements"] / files, 1)}  # fmt: skip
    queries = job["queries"]
    with open_index(settings, embedder=HashEmbedder()) as index:
        for query in queries:
            index.search(query)
        samples = []
        for query in queries:
            start = time.perf_counter()
            index.search(query)
            samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"p50_ms": round(samples[len(samples) // 2], 2), "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 2)}


# -- parent ----------------------------------------------------------------------------------

def start_child(tree: Path, job: dict[str, Any]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.Popen([sys.executable, __file__, "--child", json.dumps(job)], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=tree)  # fmt: skip


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a child failed ({process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def fresh_copy(pristine: Path, scratch: Path, name: str) -> Path:
    target = scratch / name
    shutil.copytree(pristine, target, ignore=shutil.ignore_patterns(".complete", ".memdex"))
    return target


def run_side(tree: Path, label: str, pristine: Path, scratch: Path, server: Any, queries: list[str]) -> dict[str, Any]:
    """Each PostgreSQL step in a new database: its vector table starts empty (a new server)."""
    out: dict[str, Any] = {}
    url = server.create_database(f"{label}_one")
    lite_root = fresh_copy(pristine, scratch, f"{label}-sqlite")
    lite = {"root": str(lite_root), "db": str(scratch / f"{label}.db")}
    out["sqlite_index"] = finish(start_child(tree, {"role": "index", **lite}))
    pg_root = fresh_copy(pristine, scratch, f"{label}-pg")
    pg = {"root": str(pg_root), "db": url, "namespace": label}
    out["pg_index"] = finish(start_child(tree, {"role": "index", **pg}))
    out["sqlite_search"] = finish(start_child(tree, {"role": "search", "queries": queries, **lite}))
    out["pg_search"] = finish(start_child(tree, {"role": "search", "queries": queries, **pg}))
    two_url = server.create_database(f"{label}_two")
    for engine in ("sqlite", "pg"):
        jobs = [{"role": "index", "root": str(fresh_copy(pristine, scratch, f"{label}-{engine}-w{i}")),
                 "db": two_url if engine == "pg" else str(scratch / f"{label}-w{i}.db"),
                 **({"namespace": f"{label}-w{i}"} if engine == "pg" else {})} for i in range(2)]  # fmt: skip
        start = time.perf_counter()
        writers = [finish(p) for p in [start_child(tree, job) for job in jobs]]
        out[f"{engine}_two_writers"] = {"seconds": round(time.perf_counter() - start, 2), "each": writers}
    out["ratios"] = {
        "index_pg_over_sqlite": round(out["pg_index"]["seconds"] / out["sqlite_index"]["seconds"], 2),
        "two_writers_pg_over_sqlite": round(out["pg_two_writers"]["seconds"] / out["sqlite_two_writers"]["seconds"], 2),
        "two_writers_over_sqlite": round(out["pg_two_writers"]["seconds"] / out["sqlite_index"]["seconds"], 2),
        "hybrid_p50_pg_over_sqlite": round(out["pg_search"]["p50_ms"] / out["sqlite_search"]["p50_ms"], 2),
        "hybrid_p95_pg_over_sqlite": round(out["pg_search"]["p95_ms"] / out["sqlite_search"]["p95_ms"], 2),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--base", default="f7d868c", help="the commit compared with this tree")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--queries", type=int, default=80, help="fixture questions searched")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/memdex-bench-pg-write"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "pg_write.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO / "tests"))
    from generate import generate_memory
    from pg_server import PgServer

    pristine = args.workdir / f"memory-{args.files}"
    if not (pristine / ".complete").exists():
        shutil.rmtree(pristine, ignore_errors=True)
        generate_memory(pristine, files=args.files, seed=0)
        (pristine / ".complete").write_text("")
    queries = [item["query"] for item in json.loads((REPO / "fixtures" / "queries.json").read_text())][: args.queries]
    results: dict[str, Any] = {"files": args.files, "base": args.base, "load_before": os.getloadavg()[0], "runs": []}
    with tempfile.TemporaryDirectory(prefix="memdex-pgw-") as tmp:
        base_tree = Path(tmp) / "base"
        base_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.base, "indexer"], check=True,
                                 stdout=subprocess.PIPE).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(base_tree)], input=archive, check=True)
        with PgServer.start(durable=True) as server:
            for round_ in range(args.rounds):
                for label, tree in (("base", base_tree), ("new", REPO)):
                    scratch = Path(tmp) / f"{label}{round_}"
                    scratch.mkdir()
                    run = run_side(tree, f"{label}{round_}", pristine, scratch, server, queries)
                    results["runs"].append({"side": label, "round": round_, **run})
                    print(label, round_, json.dumps(run["ratios"]), "pg index", run["pg_index"], flush=True)
                    shutil.rmtree(scratch)
    results["load_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
