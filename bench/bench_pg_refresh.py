"""A warm PostgreSQL search's in-memory matrix refresh after a write to one searched namespace,
for the base commit and this tree side by side.

    python bench/bench_pg_refresh.py [--base ee49e5f] [--chunks 10000] [--writes 40] [--rounds 2]
                                     [--workdir /tmp/memdex-bench-pg] [--out bench/out/pg_refresh.json]

Data: bench_pg.py's generated folder of about ``--chunks`` chunks and its model vectors (kept in
``--workdir``, shared with bench_pg_search.py), indexed into the namespace ``main`` of one durable
PostgreSQL server (tests/pg_server.py). For each round and side (base: ``git archive`` of
``--base``; new: this tree), a child process of that side indexes a small namespace of its own
(20 one-chunk notes), opens a reader searching ``main`` and it (``search_namespaces``), warms it
(its matrix loaded), then ``--writes`` times: edits one note, syncs it (its own writer), and times
the reader's next hybrid search (the refresh: the (id, hash) pairs read again, the new row
fetched) and the search after it (nothing changed). Reported per side: medians of both, and the
(id, hash) pairs the refresh read (this tree: the small namespace's alone).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def child(job: dict[str, Any]) -> dict[str, Any]:
    from dataclasses import replace

    from pg_bench_roles import BenchVectors

    from indexer import make_settings, open_index

    embedder = BenchVectors(Path(job["bank"]))
    side_root = Path(job["side_root"])
    side_root.mkdir(parents=True, exist_ok=True)
    for i in range(20):
        (side_root / f"n{i}.md").write_text(f"# Note {i}\n\nbike lake note {i}\n")
    side = make_settings(side_root, job["url"], namespace=job["side"])
    reader = replace(make_settings(job["root"], job["url"], namespace="main"), search_namespaces=("main", job["side"]))
    read: list[int] = []
    after, steady = [], []
    with open_index(side, write=True, embedder=embedder) as writer, open_index(reader, embedder=embedder) as memory:
        writer.sync()
        store = type(memory.store)
        real = store.search_chunk_hashes

        def counted(self: Any, *args: Any) -> Any:
            found = real(self, *args)
            read.append(len(getattr(found, "pairs", found)))
            return found

        store.search_chunk_hashes = counted  # type: ignore[method-assign]
        for query in job["queries"][:20]:  # warm: the matrix is loaded
            memory.search(query)
        read.clear()
        for i in range(job["writes"]):
            (side_root / "edit.md").write_text(f"# Edit\n\nedited {uuid.uuid4().hex} lake\n")
            writer.sync()
            query = job["queries"][i % len(job["queries"])]
            started = time.perf_counter()
            memory.search(query)
            after.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            memory.search(query)
            steady.append((time.perf_counter() - started) * 1000)
    return {"after_write_p50_ms": round(statistics.median(after), 2), "steady_p50_ms": round(statistics.median(steady), 2),
            "pairs_read_per_refresh": round(statistics.median(read), 1) if read else 0}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="ee49e5f")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--real", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/memdex-bench-pg"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "pg_refresh.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    import psycopg
    from bench_pg import SERVER_SETTINGS, fresh_run, prepare, run_child, unpack_base, vacuum
    from pg_server import PgServer

    args.workdir.mkdir(parents=True, exist_ok=True)
    pristine, bank, queries = prepare(args)
    run, logs, root, results = fresh_run(args, pristine, "refresh-run")
    with tempfile.TemporaryDirectory(prefix="memdex-pgr-") as tmp:
        base_tree = unpack_base(args.base, Path(tmp) / "base")
        server = PgServer.start(run, durable=True, settings=SERVER_SETTINGS)
        try:
            results["index"] = run_child({"role": "index", "name": "pg", "root": str(root), "db": server.url,
                                          "namespace": "main", "bank": str(bank)}, logs)  # fmt: skip
            with psycopg.connect(server.url, autocommit=True) as conn:
                vacuum(conn)
            for round_ in range(args.rounds):
                for side, tree in (("base", base_tree), ("new", REPO)):
                    name = f"side-{side}-{round_}"
                    job = {"root": str(root), "url": server.url, "bank": str(bank), "queries": queries,
                           "writes": args.writes, "side": name, "side_root": str(run / name)}  # fmt: skip
                    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(REPO / "bench")])}
                    with (logs / f"{name}.log").open("w") as err:
                        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], stdout=subprocess.PIPE,
                                              stderr=err, text=True, env=env, check=True)  # fmt: skip
                    found = json.loads(done.stdout.strip().splitlines()[-1])
                    results["runs"].append({"side": side, "round": round_, "load_average": os.getloadavg()[0], **found})
                    print(side, round_, json.dumps(found), flush=True)
        finally:
            server.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO / "tests"))
    main()
