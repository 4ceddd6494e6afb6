"""PostgreSQL hybrid search against SQLite at about 10K chunks, idle and with writers running,
for the base commit and this tree side by side in one run.

    python bench/bench_pg_search.py [--chunks 10000] [--base 36ba7e0] [--rounds 2] [--seconds 15]
                                    [--writers 2] [--cold 0] [--idle-first] [--one-connection]
                                    [--workdir /tmp/memdex-bench-pg]
                                    [--out bench/out/pg_search.json]

Data: bench_pg.py's: its generated folder of about ``--chunks`` chunks and the model's vectors
for real texts and for the queries (kept in ``--workdir``; the first run embeds them, about
two minutes). One durable PostgreSQL server (tests/pg_server.py, bench_pg.py's settings); the
folder is indexed once into SQLite and into the namespace ``main`` (this tree's code), and into
a SQLite file of the base's own by the base's code (an older memdex refuses a newer SQLite schema;
PostgreSQL readers share the namespace), then ``VACUUM (ANALYZE)``.

For each round and side (``base``: ``git archive`` of ``--base``; ``new``: this tree), in the order
base, new, base, new..., and each phase (``idle``; ``writers``: ``--writers`` processes of this tree
each syncing one edited file after another into its own namespace, flat out, as in bench_pg.py),
one searcher process of that side runs ``MemoryIndex.search`` (hybrid, the default budget and
ranking, the precomputed query vector: the embedding is excluded) for ``--seconds``, each query
on SQLite and then on PostgreSQL, so both engines see the same load. Reported per engine:
p50 / p95 / mean ms; the PostgreSQL ÷ SQLite ratios; and the statements a PostgreSQL search
sends (psycopg cursor calls on both its connections, and this tree's scans sent through libpq,
counted in a pass before the timing; a BEGIN or COMMIT sent by psycopg's ``transaction()``, as
an older base commit does, is not one; one string of several statements is one) and the round
trips it waits for (the cursor calls: what is sent through libpq is not waited for); and
the CPU time per search: the searcher process's for each engine, and the PostgreSQL server
processes serving its connection(s), from /proc (0 when the server is not local).

``--cold N`` first (while the server holds one namespace) runs N one-shot hybrid searches per
side, alternating: a fresh process opens the index, searches once and closes, as ``memdex
search`` does; medians of the search, of open + search + close, and the connections opened.
``--idle-first`` runs every idle phase before the first writers phase, so the idle phases
search a server that holds one namespace (the writers' namespaces stay on the server).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


# -- child: runs with the side's tree on PYTHONPATH (bench/ is this script's folder) ------------


def searcher(job: dict[str, Any]) -> dict[str, Any]:
    import psycopg
    from pg_bench_roles import BenchVectors, _wait_for_go

    from indexer import make_settings, open_index

    embedder = BenchVectors(Path(job["bank"]))
    queries: list[str] = job["queries"]
    with ExitStack() as stack:
        lite = stack.enter_context(
            open_index(make_settings(job["root"], job["sqlite"]), embedder=embedder)
        )
        pg = stack.enter_context(
            open_index(
                make_settings(job["root"], job["url"], namespace="main"),
                embedder=embedder,
            )
        )
        if job.get("one_connection"):  # --one-connection: the vector half never leaves the search's connection
            pg.engine.vector_side._unavailable_until = float("inf")
        for query in queries:  # warm: connections, SQLite's in-memory matrix, caches
            lite.search(query)
            pg.search(query)
        sent, waited = [0], [0]
        original = psycopg.Cursor.execute

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            sent[0] += 1
            waited[0] += 1  # a cursor's execute waits for the answer: one round trip
            return original(self, *args, **kwargs)

        psycopg.Cursor.execute = counted  # type: ignore[method-assign]
        try:  # this tree sends its parallel scan and its COMMIT through libpq, not a cursor
            from indexer.store.postgres import nowait
        except ImportError:
            nowait = None
        raw_send = getattr(nowait, "send", None)

        def counted_send(*args: Any) -> None:
            sent[0] += 1
            raw_send(*args)  # type: ignore[misc]

        if raw_send is not None:
            nowait.send = counted_send  # type: ignore[union-attr]
        for query in queries[:40]:
            pg.search(query)
        psycopg.Cursor.execute = original  # type: ignore[method-assign]
        if raw_send is not None:
            nowait.send = raw_send  # type: ignore[union-attr]
        statements = sent[0] / min(40, len(queries))
        round_trips = waited[0] / min(40, len(queries))
        side = getattr(getattr(pg.engine, "vector_side", None), "_conn", None)  # this tree's second connection
        backends = [pg.store.connection.info.backend_pid] + ([side.info.backend_pid] if side is not None else [])
        _wait_for_go()
        samples: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
        client_cpu = {"sqlite": 0.0, "postgresql": 0.0}
        server_before = sum(backend_cpu(pid) for pid in backends)
        deadline = time.perf_counter() + job["seconds"]
        i = 0
        while time.perf_counter() < deadline:
            query = queries[i % len(queries)]
            i += 1
            for name, index in (("sqlite", lite), ("postgresql", pg)):
                started, cpu = time.perf_counter(), time.process_time()
                index.search(query)
                samples[name].append((time.perf_counter() - started) * 1000)
                client_cpu[name] += time.process_time() - cpu
        server = sum(backend_cpu(pid) for pid in backends) - server_before
    n = len(samples["postgresql"])
    cpu_ms = {
        "sqlite": round(client_cpu["sqlite"] / n * 1000, 2),
        "postgresql_client": round(client_cpu["postgresql"] / n * 1000, 2),
        "postgresql_server": round(server / n * 1000, 2),  # the search's backends (one or two)
    }
    return {"samples_ms": samples, "statements_per_search": round(statements, 1),
            "round_trips_per_search": round(round_trips, 1), "cpu_ms_per_search": cpu_ms}  # fmt: skip


def cold(job: dict[str, Any]) -> dict[str, Any]:
    """A one-shot hybrid search as ``memdex search`` runs it: open the index, one search,
    close; with the connections it opened (the query embedding excluded, as above)."""
    started = time.perf_counter()
    from pg_bench_roles import BenchVectors

    from indexer import make_settings, open_index
    from indexer.store.postgres import connection as pg_connection

    opened = [0]
    connect = pg_connection.connect

    def counted(*args: Any, **kwargs: Any) -> Any:
        opened[0] += 1
        return connect(*args, **kwargs)

    pg_connection.connect = counted  # type: ignore[assignment]
    embedder = BenchVectors(Path(job["bank"]))
    imported = time.perf_counter()
    with open_index(make_settings(job["root"], job["url"], namespace="main"), embedder=embedder) as index:
        ready = time.perf_counter()
        index.search(job["query"])
        searched = time.perf_counter()
    closed = time.perf_counter()
    return {"import_ms": (imported - started) * 1000, "open_ms": (ready - imported) * 1000,
            "search_ms": (searched - ready) * 1000, "open_search_close_ms": (closed - imported) * 1000,
            "connections": opened[0]}  # fmt: skip


def run_cold(trees: dict[str, Path], job: dict[str, Any], queries: list[str], runs: int, logs: Path) -> dict[str, Any]:
    """``runs`` one-shot searches per side, the sides alternating run by run; medians."""
    found: dict[str, list[dict[str, Any]]] = {side: [] for side in trees}
    for i in range(runs):
        for side, tree in trees.items():
            with (logs / f"cold-{side}.log").open("a") as err:
                done = subprocess.run([sys.executable, __file__, "--child", json.dumps({**job, "query": queries[i % len(queries)]})],
                                      stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, "PYTHONPATH": str(tree)},
                                      check=True)  # fmt: skip
            found[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {side: {key: round(percentile([r[key] for r in rows], 0.5), 2) for key in rows[0]} for side, rows in found.items()}


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) a local server process has used, from /proc (0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- parent ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50_ms": round(percentile(samples, 0.5), 2),
            "p95_ms": round(percentile(samples, 0.95), 2), "mean_ms": round(sum(samples) / len(samples), 2)}  # fmt: skip


def run_phase(
    tree: Path,
    search_job: dict[str, Any],
    writers: list[dict[str, Any]],
    logs: Path,
    name: str,
) -> dict[str, Any]:
    """The searcher (on ``tree``) and the writers (this tree) started together, then let go at once."""
    children = []
    for job, path in [(search_job, tree)] + [(w, REPO) for w in writers]:
        err = (logs / f"{name}-{job['role']}-{job.get('name', '')}.log").open("w")
        env = {**os.environ, "PYTHONPATH": str(path)}
        child = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(job)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=err, text=True, env=env)  # fmt: skip
        children.append((child, err))
    try:
        for child, err in children:
            if child.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
                child.wait()
                err.flush()
                raise SystemExit(
                    f"a child failed while setting up:\n{Path(err.name).read_text()[-2000:]}"
                )
        for child, _ in children:
            child.stdin.write("go\n")  # type: ignore[union-attr]
            child.stdin.flush()  # type: ignore[union-attr]
        results = []
        for child, err in children:
            out, _ = child.communicate()
            if child.returncode != 0:
                raise SystemExit(
                    f"a child failed:\n{Path(err.name).read_text()[-2000:]}"
                )
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child, err in children:
            if child.poll() is None:
                child.kill()
            err.close()
    found = results[0]
    out: dict[str, Any] = {
        name: summary(found["samples_ms"][name]) for name in ("sqlite", "postgresql")
    }
    lite, pg = out["sqlite"], out["postgresql"]
    out["ratio"] = {
        k: round(pg[k] / lite[k], 2) for k in ("p50_ms", "p95_ms", "mean_ms")
    }
    out["statements_per_search"] = found["statements_per_search"]
    out["round_trips_per_search"] = found["round_trips_per_search"]
    out["cpu_ms_per_search"] = found["cpu_ms_per_search"]
    if writers:
        synced = sum(len(w["sync_ms"]) for w in results[1:])
        out["writers_files_synced_per_second"] = round(
            synced / search_job["seconds"], 1
        )
        out["writer_errors"] = sum(w["errors"] for w in results[1:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument(
        "--base", default="36ba7e0", help="the commit compared with this tree"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument(
        "--writer-files", type=int, default=100, help="files in each writer's root"
    )
    parser.add_argument(
        "--real",
        type=int,
        default=2000,
        help="chunk texts embedded by the real model (bench_pg.py)",
    )
    parser.add_argument(
        "--queries",
        type=int,
        default=120,
        help="corpus-word queries, plus the 80 fixture questions",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cold", type=int, default=0, help="one-shot searches per side, first (one namespace)")
    parser.add_argument("--idle-first", action="store_true",
                        help="every idle phase before the first writers phase (the writers' namespaces "
                             "then share the server's vector table only in the writers phases)")
    parser.add_argument("--one-connection", action="store_true",
                        help="PostgreSQL searches never open the second connection (the HNSW scan runs "
                             "on the search's own connection, after the keyword half), on both sides")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/memdex-bench-pg"))
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "out" / "pg_search.json"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        if job["role"] == "searcher":
            print(json.dumps(searcher(job)), flush=True)
        elif job["role"] == "cold":
            print(json.dumps(cold(job)), flush=True)
        else:
            from pg_bench_roles import run_child as run_role

            run_role(args.child)
        return
    import psycopg
    from bench_pg import SERVER_SETTINGS, fresh_run, prepare, run_child, unpack_base, vacuum, writer_jobs
    from pg_server import PgServer

    args.workdir.mkdir(parents=True, exist_ok=True)
    pristine, bank, queries = prepare(args)
    run, logs, root, results = fresh_run(args, pristine, "search-run")
    with tempfile.TemporaryDirectory(prefix="memdex-pgs-") as tmp:
        base_tree = unpack_base(args.base, Path(tmp) / "base")
        server = PgServer.start(run, durable=True, settings=SERVER_SETTINGS)
        try:
            sqlite_db = str(run / "sqlite" / "index.db")
            # The base's own SQLite index, written by its code: an older memdex cannot read a newer schema.
            base_db = str(run / "sqlite-base" / "index.db")
            results["index"] = {
                "sqlite": run_child({"role": "index", "name": "sqlite", "root": str(root), "db": sqlite_db,
                                     "bank": str(bank)}, logs),
                "sqlite_base": run_child({"role": "index", "name": "sqlite-base", "root": str(root), "db": base_db,
                                          "bank": str(bank)}, logs, tree=base_tree),
                "postgresql": run_child({"role": "index", "name": "pg", "root": str(root), "db": server.url,
                                         "namespace": "main", "bank": str(bank)}, logs),
            }  # fmt: skip
            with psycopg.connect(server.url, autocommit=True) as conn:
                vacuum(conn)
            print("indexed", json.dumps(results["index"]), flush=True)
            args.duration = args.seconds  # writer_jobs' name for it
            writers = writer_jobs(args, pristine, run, server.url, str(bank))
            search_job = {"role": "searcher", "name": "", "root": str(root), "sqlite": sqlite_db, "url": server.url,
                          "bank": str(bank), "queries": queries, "seconds": args.seconds,
                          "one_connection": args.one_connection}  # fmt: skip
            if args.cold:
                cold_job = {"role": "cold", "root": str(root), "url": server.url, "bank": str(bank)}
                results["cold"] = run_cold({"base": base_tree, "new": REPO}, cold_job, queries, args.cold, logs)
                results["cold"]["load_average"] = os.getloadavg()[0]
                print("cold", json.dumps(results["cold"]), flush=True)
            order = [(round_, side, tree, phase, load) for round_ in range(args.rounds)
                     for side, tree in (("base", base_tree), ("new", REPO))
                     for phase, load in (("idle", []), ("writers", writers))]  # fmt: skip
            if args.idle_first:
                order.sort(key=lambda item: item[3] != "idle")  # stable: rounds and sides keep their order
            for round_, side, tree, phase, load in order:
                job = {**search_job, "sqlite": base_db} if side == "base" else search_job
                found = run_phase(tree, job, load, logs, f"{side}{round_}-{phase}")
                results["runs"].append({"side": side, "round": round_, "phase": phase,
                                        "load_average": os.getloadavg()[0], **found})  # fmt: skip
                print(side, round_, phase, json.dumps(found), flush=True)
        finally:
            server.close()
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print_table(results)
    print(f"wrote {args.out}")


def print_table(results: dict[str, Any]) -> None:
    if "cold" in results:
        print("\none-shot hybrid search, medians:", json.dumps(results["cold"]))
    head = f"{'side / phase':22}{'SQLite p50/mean':>18}{'PG p50/mean':>16}{'PG÷SQLite p50/mean':>22}{'statements':>12}"
    print(f"\n{head}{'round trips':>12}{'CPU ms: SQLite | PG client + server':>38}")
    for run in results["runs"]:
        lite, pg, ratio, cpu = run["sqlite"], run["postgresql"], run["ratio"], run["cpu_ms_per_search"]
        print(f"{run['side'] + str(run['round']) + ' ' + run['phase']:22}"
              f"{lite['p50_ms']:>9.1f} /{lite['mean_ms']:>6.1f}{pg['p50_ms']:>9.1f} /{pg['mean_ms']:>5.1f}"
              f"{ratio['p50_ms']:>14.2f} /{ratio['mean_ms']:>5.2f}{run['statements_per_search']:>12}"
              f"{run['round_trips_per_search']:>12}"
              f"{cpu['sqlite']:>14.1f} | {cpu['postgresql_client']:.1f} + {cpu['postgresql_server']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
