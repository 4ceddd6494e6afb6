"""memdex on PostgreSQL + pgvector at 100K chunks, side by side with SQLite on the same data.

    python bench/bench_pg.py [--chunks 100000] [--duration 60] [--writers 4] [--readers 2]
                             [--paced-rate 2] [--churn 0.4] [--no-sqlite] [--no-churn] [--fast]
                             [--pg-setting K=V] [--keep]
                             [--workdir /tmp/memdex-bench-pg] [--out bench/out/pg.json]

Data: the folder of bench/generate.py with about ``--chunks`` chunks (``bench_scale.py``'s data);
vectors: the real model's for ``--real`` distinct chunk texts and for the queries, noisy copies of
those for every other text, as a deterministic function of the text (bench/pg_bench_roles.py),
so the model is not what is measured. The folder and the model's vectors are kept in
``--workdir`` for re-runs; everything else (a copy of the folder, the SQLite index, a throwaway
PostgreSQL 18 server from tests/pg_server.py, durable unless ``--fast``) is made anew each run.

1. Index throughput: a full ``sync`` of the folder into SQLite and into PostgreSQL (namespace
   ``main``), each in a fresh process; then ``VACUUM (ANALYZE)`` of memdex's tables on the server
   (what autovacuum would do shortly after a bulk load).
2. Search latency through ``MemoryIndex.search`` (default reading budget and ranking), the query
   embedding excluded (precomputed query vectors): ``--readers`` reader processes for
   ``--duration`` seconds, each query in hybrid, keyword and vector mode; SQLite, PostgreSQL idle,
   and PostgreSQL with ``--writers`` writer processes. Each writer indexes its own root of
   ``--writer-files`` files into its own namespace (memdex's model: one namespace per memory root
   and host, so concurrent writers are separate agents sharing one server, its tables and its
   HNSW index), then edits one line of a random file and syncs that file, as the watcher does on
   a save: write transactions/s = files synced per second. The writers run flat out (the
   server's write capacity; on a small machine they also take the readers' CPU), then again
   paced at ``--paced-rate`` saves per second each (a busy agent's rate, 0 skips it).
3. Churn: ``--churn`` of the files get a word changed on every content line (about that share of
   the chunks get new text), a ``sync`` re-indexes them, autovacuum off on memdex's tables
   meanwhile; then a timed plain ``VACUUM (ANALYZE)`` per table; HNSW index size and table sizes
   before churn, after it and after the VACUUM; search latency again after the VACUUM.

Writes ``--out`` (JSON) and prints a short table; ``--keep`` then keeps the server (and the
``main`` namespace, after churn) up for other tools, e.g. bench/pg_keyword_plans.py, until Ctrl-C. The machine may be shared: absolute figures
move with the load; the ratios measured in one run compare fairly.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests"))  # tests/pg_server.py: the throwaway server of the tests
sys.path.insert(0, str(REPO))

from generate import generate_memory  # noqa: E402
from pg_bench_roles import churn  # noqa: E402

CHUNKS_PER_FILE = 9.93  # bench/generate.py: 1,000 files -> 9,931 chunks
MODES = ["hybrid", "keyword", "vector"]
TARGET_HYBRID_P95_MS = 50.0
SERVER_SETTINGS = {"shared_buffers": "1GB", "maintenance_work_mem": "1GB", "max_parallel_maintenance_workers": "1"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def timing(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50_ms": round(percentile(samples, 0.5), 2), "p95_ms": round(percentile(samples, 0.95), 2)}


# -- child processes -------------------------------------------------------------------------

def _env(tree: Path = REPO) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def run_child(job: dict[str, Any], logs: Path, tree: Path = REPO) -> dict[str, Any]:
    """Run one child to completion, with ``tree``'s memdex; its result is the last line it prints."""
    log = logs / f"{job['role']}-{job.get('name', '')}.log"
    with log.open("w") as err:
        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], stdout=subprocess.PIPE,
                              stderr=err, text=True, env=_env(tree))  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{job['role']} child failed ({done.returncode}):\n{log.read_text()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_together(jobs: list[dict[str, Any]], logs: Path) -> list[dict[str, Any]]:
    """Start every child, wait until each is set up (``ready``), let them all go at once."""
    children = []
    for job in jobs:
        err = (logs / f"{job['role']}-{job['name']}.log").open("w")
        child = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(job)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=err, text=True, env=_env())  # fmt: skip
        children.append((job, child, err))
    try:
        for job, child, err in children:
            line = child.stdout.readline().strip()  # type: ignore[union-attr]
            if line != "ready":
                child.wait()
                err.flush()
                raise SystemExit(f"{job['role']} {job['name']} failed while setting up:\n{Path(err.name).read_text()[-2000:]}")
        for _, child, _ in children:
            child.stdin.write("go\n")  # type: ignore[union-attr]
            child.stdin.flush()  # type: ignore[union-attr]
        results = []
        for job, child, err in children:
            out, _ = child.communicate()
            if child.returncode != 0:
                raise SystemExit(f"{job['role']} {job['name']} failed:\n{Path(err.name).read_text()[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for _, child, err in children:
            if child.poll() is None:
                child.kill()
            err.close()


# -- data ----------------------------------------------------------------------------------

def prepare(args: argparse.Namespace) -> tuple[Path, Path, list[str]]:
    """The generated folder and the model's vectors (bank), both kept for re-runs."""
    files = max(1, round(args.chunks / CHUNKS_PER_FILE))
    pristine = args.workdir / f"memory-{files}-{args.seed}"
    if not (pristine / ".complete").exists():
        shutil.rmtree(pristine, ignore_errors=True)
        generate_memory(pristine, files=files, seed=args.seed)
        (pristine / ".complete").write_text("")
    bank = args.workdir / f"bank-{files}-{args.real}-{args.seed}-{args.queries}.npz"
    if not bank.exists():
        rng = random.Random(args.seed)
        natural = [item["query"] for item in json.loads((REPO / "fixtures" / "queries.json").read_text())]
        words = [w for p in sorted(pristine.rglob("*.md"))[:300] for w in p.read_text().split() if w.isalpha()]
        corpus = [" ".join(rng.sample(words, rng.randint(2, 6))) for _ in range(args.queries)]
        made = run_child({"role": "bank", "name": "", "root": str(pristine), "real": args.real,
                          "queries": natural + corpus, "out": str(bank)}, args.workdir)  # fmt: skip
        print("model vectors", made, flush=True)
    import numpy as np

    queries = np.load(bank)["queries"].tolist()
    return pristine, bank, queries


def fresh_run(args: argparse.Namespace, pristine: Path, name: str) -> tuple[Path, Path, Path, dict[str, Any]]:
    """A new run folder ``name`` in the workdir: its logs folder, a copy of the generated memory,
    and the results' head (the options and the load at the start)."""
    run = args.workdir / name
    shutil.rmtree(run, ignore_errors=True)
    logs = run / "logs"
    logs.mkdir(parents=True)
    root = run / "memory"
    shutil.copytree(pristine, root)
    results: dict[str, Any] = {"options": {k: str(v) for k, v in vars(args).items() if k != "child"},
                               "load_average_at_start": os.getloadavg(), "runs": []}  # fmt: skip
    return run, logs, root, results


def unpack_base(commit: str, into: Path) -> Path:
    """``commit``'s ``indexer`` package (``git archive``) unpacked in the new folder ``into``."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "indexer"], check=True,
                             stdout=subprocess.PIPE).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


# -- the server ----------------------------------------------------------------------------

def tables(conn: Any) -> list[str]:
    return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'memdex' ORDER BY 1")]


def sizes(conn: Any) -> dict[str, Any]:
    mb = 2**20
    out: dict[str, Any] = {
        f"{t}_mb": round(conn.execute("SELECT pg_total_relation_size(%s)", (f"memdex.{t}",)).fetchone()[0] / mb, 1)
        for t in tables(conn) if t in ("chunks", "postings", "embeddings") or t.startswith("chunk_vectors")
    }  # fmt: skip
    for (name,) in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'memdex' AND indexdef ILIKE '%%hnsw%%'"):
        out[f"{name}_mb"] = round(conn.execute("SELECT pg_relation_size(%s)", (f"memdex.{name}",)).fetchone()[0] / mb, 1)
    dead = conn.execute("SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE schemaname = 'memdex'").fetchone()
    out["dead_tuples"] = int(dead[0])
    return out


def vacuum(conn: Any) -> dict[str, float]:
    """Plain ``VACUUM (ANALYZE)`` of each of memdex's tables, timed one by one."""
    out: dict[str, float] = {}
    for table in tables(conn):
        started = time.perf_counter()
        conn.execute(f"VACUUM (ANALYZE) memdex.{table}")
        out[table] = round(time.perf_counter() - started, 2)
    out["total"] = round(sum(out.values()), 2)
    return out


def set_autovacuum(conn: Any, enabled: bool) -> None:
    for table in tables(conn):
        option = "RESET (autovacuum_enabled)" if enabled else "SET (autovacuum_enabled = false)"
        conn.execute(f"ALTER TABLE memdex.{table} {option}")


# -- phases ------------------------------------------------------------------------------------

def search_phase(engine: dict[str, Any], args: argparse.Namespace, queries: list[str], logs: Path,
                 name: str, writers: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    readers = [{**engine, "role": "reader", "name": f"{name}-{i}", "queries": queries, "modes": MODES,
                "seconds": args.duration, "offset": i * len(queries) // max(1, args.readers)}
               for i in range(args.readers)]  # fmt: skip
    started = time.perf_counter()
    results = run_together(readers + list(writers), logs)
    out: dict[str, Any] = {"seconds": args.duration}
    reads = results[: len(readers)]
    for mode in MODES:
        out[mode] = timing([ms for r in reads for ms in r["samples_ms"][mode]])
    out["searches_per_second"] = round(sum(len(s) for r in reads for s in r["samples_ms"].values()) / args.duration, 1)
    out["reader_errors"] = sum(r["errors"] for r in reads)
    out["reader_first_errors"] = [e for r in reads for e in r["first_errors"]][:3]
    if writers:
        writes = results[len(readers):]
        synced = [ms for w in writes for ms in w["sync_ms"]]
        out["writers"] = {
            "files_synced_per_second": round(len(synced) / args.duration, 2),
            "sync": timing(synced),
            "setup_seconds_max": max(w["setup_seconds"] for w in writes),
            "setup_files_each": writes[0]["setup_files"],
            "errors": sum(w["errors"] for w in writes),
            "first_errors": [e for w in writes for e in w["first_errors"]][:3],
        }
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(name, json.dumps({k: v for k, v in out.items() if k in (*MODES, "writers")}), flush=True)
    return out


def writer_jobs(args: argparse.Namespace, pristine: Path, run: Path, url: str, bank: Path) -> list[dict[str, Any]]:
    files = sorted(p.relative_to(pristine) for p in pristine.rglob("*.md"))
    random.Random(args.seed + 1).shuffle(files)
    jobs = []
    for i in range(args.writers):
        root = run / f"writer-{i}"
        for rel in files[i * args.writer_files : (i + 1) * args.writer_files]:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(pristine / rel, root / rel)
        jobs.append({"role": "writer", "name": str(i), "root": str(root), "db": url, "namespace": f"writer-{i}",
                     "bank": str(bank), "seconds": args.duration, "seed": args.seed + 100 + i})  # fmt: skip
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000, help="about this many chunks (default 100000)")
    parser.add_argument("--real", type=int, default=2000, help="chunk texts embedded by the real model")
    parser.add_argument("--queries", type=int, default=120, help="corpus-word queries (plus the 80 fixture questions)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per search phase")
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--writer-files", type=int, default=100, help="files in each writer's root")
    parser.add_argument("--paced-rate", type=float, default=2.0,
                        help="a second writers phase with each writer saving this many files/s (0: skip)")
    parser.add_argument("--churn", type=float, default=0.4, help="share of the files changed for the churn phase")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite side")
    parser.add_argument("--no-churn", action="store_true", help="skip churn, VACUUM and the search after them")
    parser.add_argument("--fast", action="store_true", help="server with fsync off (default: durable)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the server running at the end (prints its URL) until Ctrl-C or SIGTERM")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="K=V", help="extra postgresql.conf setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/memdex-bench-pg"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "pg.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from pg_bench_roles import run_child as run_role

        run_role(args.child)
        return
    import psycopg
    from pg_server import PgServer

    began = last = time.perf_counter()
    walls: dict[str, float] = {}

    def mark(name: str) -> None:  # wall time of each step, to plan a run at another size
        nonlocal last
        now = time.perf_counter()
        walls[name] = round(now - last, 1)
        last = now

    args.workdir.mkdir(parents=True, exist_ok=True)
    pristine, bank, queries = prepare(args)
    run = args.workdir / "run"
    shutil.rmtree(run, ignore_errors=True)
    logs = run / "logs"
    logs.mkdir(parents=True)
    root = run / "memory"
    shutil.copytree(pristine, root)
    mark("prepare")
    settings = {**SERVER_SETTINGS, **dict(s.split("=", 1) for s in args.pg_setting)}
    results: dict[str, Any] = {
        "load_average_at_start": os.getloadavg(), "options": {k: str(v) for k, v in vars(args).items() if k != "child"},
        "server_settings": settings, "durable": not args.fast, "index": {}, "search": {},
    }  # fmt: skip
    sqlite = {"root": str(root), "db": str(run / "sqlite" / "index.db"), "bank": str(bank)}
    server = PgServer.start(run, durable=not args.fast, settings=settings)
    mark("server start")
    try:
        pg = {"root": str(root), "db": server.url, "namespace": "main", "bank": str(bank)}
        with psycopg.connect(server.url, autocommit=True) as conn:
            results["server"] = conn.execute("SELECT version()").fetchone()[0].split(" on ")[0]
            if not args.no_sqlite:
                results["index"]["sqlite"] = run_child({**sqlite, "role": "index", "name": "sqlite"}, logs)
                print("index sqlite", results["index"]["sqlite"], flush=True)
                mark("index sqlite")
            results["index"]["postgresql"] = run_child({**pg, "role": "index", "name": "pg"}, logs)
            results["index"]["postgresql"]["vacuum_analyze_after_load_seconds"] = vacuum(conn)["total"]
            print("index postgresql", results["index"]["postgresql"], flush=True)
            mark("index postgresql + VACUUM")
            results["sizes_after_index"] = sizes(conn)
            if not args.no_sqlite:
                results["index"]["sqlite"]["index_mb"] = round(sum(
                    f.stat().st_size for f in (run / "sqlite").iterdir()) / 2**20, 1)  # fmt: skip
                results["search"]["sqlite"] = search_phase(sqlite, args, queries, logs, "sqlite")
                mark("search sqlite")
            results["search"]["postgresql"] = search_phase(pg, args, queries, logs, "postgresql")
            mark("search postgresql")
            writers = writer_jobs(args, pristine, run, server.url, bank)
            results["search"]["postgresql_with_writers"] = search_phase(
                pg, args, queries, logs, "postgresql_with_writers", writers)  # fmt: skip
            mark("search postgresql with writers")
            if args.paced_rate > 0:
                paced = [{**job, "rate": args.paced_rate, "seed": job["seed"] + 50} for job in writers]
                results["search"]["postgresql_with_paced_writers"] = search_phase(
                    pg, args, queries, logs, "postgresql_with_paced_writers", paced)  # fmt: skip
                mark("search postgresql with paced writers")
            if not args.no_churn:
                results["churn"] = churn_phase(conn, args, pg, root, logs)
                mark("churn + VACUUM")
                results["search"]["postgresql_after_churn"] = search_phase(
                    pg, args, queries, logs, "postgresql_after_churn")  # fmt: skip
                mark("search after churn")
        results["wall_seconds"] = walls
        results["total_seconds"] = round(time.perf_counter() - began, 1)
        results["load_average_at_end"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print_table(results)
        print(f"wrote {args.out} ({results['total_seconds']} s)")
        if args.keep:
            hold(server.url)
    finally:
        server.close()


def hold(url: str) -> None:
    """Keep the throwaway server (and its index) up for other tools until Ctrl-C or SIGTERM."""
    print(f"server kept: --db {url} --namespace main (Ctrl-C or SIGTERM stops and deletes it)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def churn_phase(conn: Any, args: argparse.Namespace, pg: dict[str, Any], root: Path, logs: Path) -> dict[str, Any]:
    ns = conn.execute("SELECT id FROM memdex.namespaces WHERE name = 'main'").fetchone()[0]
    newest = conn.execute("SELECT max(id) FROM memdex.chunks WHERE ns = %s", (ns,)).fetchone()[0]
    out: dict[str, Any] = {"sizes_before": sizes(conn)}
    set_autovacuum(conn, False)  # the VACUUM below then does all the work, and is timed
    try:
        out["edit"] = churn(root, args.churn, args.seed + 7)
        out["reindex"] = run_child({**pg, "role": "index", "name": "churn"}, logs)
        out["chunks_replaced"] = conn.execute(
            "SELECT count(*) FROM memdex.chunks WHERE ns = %s AND id > %s", (ns, newest)).fetchone()[0]  # fmt: skip
        out["sizes_after_churn"] = sizes(conn)
        out["vacuum_seconds"] = vacuum(conn)
    finally:
        set_autovacuum(conn, True)
    out["sizes_after_vacuum"] = sizes(conn)
    print("churn", json.dumps({k: v for k, v in out.items() if k != "reindex"}), flush=True)
    return out


def print_table(results: dict[str, Any]) -> None:
    index = results["index"]
    print(f"\n{'':38}{'SQLite':>16}{'PostgreSQL':>16}")
    row = lambda name, a, b: print(f"{name:38}{a:>16}{b:>16}")  # noqa: E731
    get = lambda engine, key: str(index.get(engine, {}).get(key, "-"))  # noqa: E731
    row("chunks", get("sqlite", "chunks"), get("postgresql", "chunks"))
    row("index chunks/s", get("sqlite", "chunks_per_second"), get("postgresql", "chunks_per_second"))
    row("  without the embedder", get("sqlite", "chunks_per_second_without_embedder"),
        get("postgresql", "chunks_per_second_without_embedder"))  # fmt: skip
    search = results["search"]
    writers = results["options"]["writers"]
    labels = {"postgresql": "idle", "postgresql_with_writers": f"{writers} writers flat out",
              "postgresql_with_paced_writers": f"{writers} writers, {results['options']['paced_rate']} saves/s each",
              "postgresql_after_churn": "after churn + VACUUM"}  # fmt: skip
    fmt = lambda t: f"{t['p50_ms']:.1f} / {t['p95_ms']:.1f}" if t else "-"  # noqa: E731
    for phase, label in labels.items():
        if phase not in search:
            continue
        print(f"search, {results['options']['readers']} readers, {label}:")
        for mode in MODES:
            a = search.get("sqlite", {}).get(mode) if phase == "postgresql" else None
            row(f"  {mode} p50 / p95 ms", fmt(a), fmt(search[phase][mode]))
        if "writers" in search[phase]:
            w = search[phase]["writers"]
            row("  files synced/s (write transactions)", "-", str(w["files_synced_per_second"]))
            row("  sync p50/p95 ms", "-", f"{w['sync']['p50_ms']:.0f} / {w['sync']['p95_ms']:.0f}")
    for phase in ("postgresql_with_writers", "postgresql_with_paced_writers"):
        if phase in search:
            hybrid = search[phase]["hybrid"]["p95_ms"]
            print(f"hybrid p95, {labels[phase]}: {hybrid} ms, target <= {TARGET_HYBRID_P95_MS} ms "
                  f"{'met' if hybrid <= TARGET_HYBRID_P95_MS else 'NOT met'}")  # fmt: skip
    if "churn" in results:
        c = results["churn"]
        hnsw = next((k for k in c["sizes_before"] if k.endswith("_hnsw_mb")), None)
        print(f"churn: {c['chunks_replaced']} chunks replaced in {c['reindex']['seconds']} s; "
              f"VACUUM (ANALYZE) {c['vacuum_seconds']['total']} s; HNSW MB before/after churn/after VACUUM: "
              f"{c['sizes_before'].get(hnsw)} / {c['sizes_after_churn'].get(hnsw)} / {c['sizes_after_vacuum'].get(hnsw)}")


if __name__ == "__main__":
    main()
