"""What two PostgreSQL writers do at once, and what they wait on: each writer's path (bulk
load or through the HNSW index), when it loaded and built, the lock waits the server logged,
the sampled wait events of their backends, and where the CPU went (each client process, each
server backend, the parallel workers of the index build), beside two SQLite writers (wall and CPU: PostgreSQL's clients and server
against SQLite's two processes; the CPU ratio is what the machine's load distorts least).

    python bench/bench_pg_two_writers.py [--files 1000] [--rounds 1] [--second start|build]
                                         [--base COMMIT]

``--second start`` starts both writers together (as ``bench_pg_write.py``'s two writers);
``--second build`` starts the second one once the first is building the HNSW index (a sync
that starts while another one's bulk load ends). Each round uses a new database of one durable
throwaway server (``log_lock_waits`` on, ``deadlock_timeout`` 100 ms: every lock wait of
100 ms or more is logged). Vectors: ``bench_pg_write.HashEmbedder`` (no model). Data: the
same generated folder as ``bench_pg_write.py`` (``--workdir``). With ``--base``, each round runs
that commit's ``indexer`` (``git archive``) first, then this tree's, in the same way.
"""

from __future__ import annotations

import argparse
import collections
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
TICK = os.sysconf("SC_CLK_TCK")
CHILD = """
import json, logging, os, resource, sys, time
sys.argv = ["child"]
sys.path.insert(0, os.environ["BENCH_DIR"])
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(created).3f %(name)s %(message)s")
import bench_pg_write
out = bench_pg_write.child(json.loads(os.environ["BENCH_JOB"]))
usage = resource.getrusage(resource.RUSAGE_SELF)
out["client_cpu"] = round(usage.ru_utime + usage.ru_stime, 2)
out["ended"] = time.time()
print(json.dumps(out))
"""


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def start_writer(tree: Path, root: Path, db: str, namespace: str | None) -> subprocess.Popen[str]:
    """The writer's log goes to a file beside its folder (a pipe read only at its end would fill);
    it runs in ``tree`` (``-c`` puts the working folder first on ``sys.path``)."""
    job = {"role": "index", "root": str(root), "db": db, **({"namespace": namespace} if namespace else {})}
    env = {**os.environ, "PYTHONPATH": str(tree), "BENCH_DIR": str(REPO / "bench"), "BENCH_JOB": json.dumps(job)}
    with open(f"{root}.log", "w") as log:
        return subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                                cwd=tree)  # fmt: skip


def finish(process: subprocess.Popen[str], started: float, root: Path) -> dict[str, Any]:
    out, _ = process.communicate()
    err = Path(f"{root}.log").read_text(errors="replace")
    if process.returncode != 0:
        raise SystemExit(f"a writer failed ({process.returncode}):\n{err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["ended_s"] = round(result.pop("ended") - started, 2)
    events = {}
    for line in err.splitlines():
        match = re.match(r"(\d+\.\d+) indexer\.store\.postgres\.bulk (.*)", line)
        if match:
            events[match.group(2)[:60]] = round(float(match.group(1)) - started, 2)
    result["path"] = "bulk" if any(k.startswith("bulk load") for k in events) else "through the index"
    result["bulk_events_s"] = events
    return result


def pg_round(tree: Path, server: Any, pristine: Path, scratch: Path, name: str, second: str) -> dict[str, Any]:
    import psycopg

    url = server.create_database(name)
    roots = [fresh_copy(pristine, scratch, f"{name}-pg{i}") for i in range(2)]
    waits: collections.Counter[str] = collections.Counter()
    cpu: dict[int, tuple[str, float]] = {}
    log_start = server.log_path.stat().st_size if server.log_path.exists() else 0
    started = time.time()
    writers = [start_writer(tree, roots[0], url, f"{name}-w0")]
    with psycopg.connect(url, autocommit=True) as watch:
        me = watch.execute("SELECT pg_backend_pid()").fetchone()[0]
        while any(p.poll() is None for p in writers):
            rows = watch.execute(
                "SELECT pid, backend_type, state, coalesce(wait_event_type || ':' || wait_event, 'cpu'), "
                "left(query, 30) FROM pg_stat_activity WHERE pid <> %s AND (datname = current_database() "
                "OR backend_type = 'parallel worker')",
                (me,),
            ).fetchall()
            building = False
            for pid, kind, state, wait, query in rows:
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    cpu[pid] = (kind, seconds)
                if kind == "client backend" and state == "active":
                    waits[f"{wait} | {query}"] += 1
                    building = building or query.startswith("CREATE INDEX")
            if len(writers) == 1 and (second == "start" or building):
                writers.append(start_writer(tree, roots[1], url, f"{name}-w1"))
            time.sleep(0.05)
    results = [finish(p, started, root) for p, root in zip(writers, roots)]
    log = server.log_path.read_text(errors="replace")[log_start:] if server.log_path.exists() else ""
    by_kind: collections.Counter[str] = collections.Counter()
    for kind, seconds in cpu.values():
        by_kind[kind] += seconds
    server_cpu = sum(by_kind.values())
    return {
        "wall_s": round(max(r["ended_s"] for r in results), 2),
        "cpu_s": round(sum(r["client_cpu"] for r in results) + server_cpu, 2),  # clients + server
        "writers": results,
        "lock_waits_logged": [line[-160:] for line in log.splitlines() if "still waiting" in line or "acquired" in line],
        "server_cpu_s": {k: round(v, 2) for k, v in by_kind.items()},
        "client_backends_cpu_s": sorted(round(s, 2) for k, s in cpu.values() if k == "client backend"),
        "active_samples_50ms": dict(waits.most_common(10)),
    }


def sqlite_round(tree: Path, pristine: Path, scratch: Path, name: str) -> dict[str, Any]:
    started = time.time()
    roots = [fresh_copy(pristine, scratch, f"{name}-lite{i}") for i in range(2)]
    writers = [start_writer(tree, root, str(scratch / f"{name}-{i}.db"), None) for i, root in enumerate(roots)]
    results = [finish(p, started, root) for p, root in zip(writers, roots)]
    return {"wall_s": round(max(r["ended_s"] for r in results), 2),
            "cpu_s": round(sum(r["client_cpu"] for r in results), 2)}  # fmt: skip


def fresh_copy(pristine: Path, scratch: Path, name: str) -> Path:
    target = scratch / name
    shutil.copytree(pristine, target, ignore=shutil.ignore_patterns(".complete", ".memdex"))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--second", choices=("start", "build"), default="start")
    parser.add_argument("--base", help="a commit to run first in each round (default: this tree only)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/memdex-bench-pg-write"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "pg_two_writers.json")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    sys.path.insert(0, str(REPO / "tests"))
    from generate import generate_memory
    from pg_server import PgServer

    pristine = args.workdir / f"memory-{args.files}"
    if not (pristine / ".complete").exists():
        shutil.rmtree(pristine, ignore_errors=True)
        generate_memory(pristine, files=args.files, seed=0)
        (pristine / ".complete").write_text("")
    results: dict[str, Any] = {"files": args.files, "second": args.second, "load_before": os.getloadavg()[0],
                               "rounds": []}  # fmt: skip
    settings = {"log_lock_waits": "on", "deadlock_timeout": "100ms"}
    with tempfile.TemporaryDirectory(prefix="memdex-pg2w-") as tmp, PgServer.start(durable=True, settings=settings) as server:
        sides = [("new", REPO)]
        if args.base:
            base = Path(tmp) / "base"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.base, "indexer"], check=True,
                                     stdout=subprocess.PIPE).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            sides.insert(0, ("base", base))
        for round_ in range(args.rounds):
            for side, tree in sides:
                name = f"{side}{round_}"
                scratch = Path(tmp) / name
                scratch.mkdir()
                lite = sqlite_round(tree, pristine, scratch, name)
                pg = pg_round(tree, server, pristine, scratch, name, args.second)
                ratios = {"wall": round(pg["wall_s"] / lite["wall_s"], 2), "cpu": round(pg["cpu_s"] / lite["cpu_s"], 2)}
                run = {"side": side, "round": round_, "sqlite": lite, "pg": pg, "pg_over_sqlite": ratios,
                       "load": os.getloadavg()[0]}  # fmt: skip
                results["rounds"].append(run)
                print(json.dumps(run, indent=1), flush=True)
                shutil.rmtree(scratch)
    results["load_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
