"""Where a PostgreSQL full index spends its time: client CPU (with an optional cProfile),
server CPU (every backend's, from /proc), wall, and the statements that cost the server most
(pg_stat_statements), beside a SQLite index of the same folder in the same process.

    python bench/pg_write_profile.py [--files 1000] [--profile 25] [--statements 8] [--writers 1]

Data: bench/generate.py's folder (as bench_pg_write.py, kept in its workdir); vectors: a hash
of the text (bench_pg_write.HashEmbedder), so the model does not count. One throwaway durable
server with pg_stat_statements; each run indexes a fresh copy into a new database.
``--writers 2`` indexes two copies at once into two namespaces of one database (threads:
the client CPU is the process's, both writers'). Read the CPU columns, which move less
with the machine's load than wall time does.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))


def server_cpu(server: Any) -> float:
    """CPU seconds of every process of the server (postmaster and its children)."""
    pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    return total


def index(root: Path, db: str, namespace: str | None) -> Any:
    from bench_pg_write import HashEmbedder

    from indexer import make_settings, open_index

    options = {"namespace": namespace} if namespace else {}
    with open_index(make_settings(root, db, **options), write=True, embedder=HashEmbedder()) as idx:
        return idx.sync()


def timed(work: Any, server: Any | None) -> dict[str, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    srv0 = server_cpu(server) if server else 0.0
    work()
    out = {"wall": time.perf_counter() - wall0, "client_cpu": time.process_time() - cpu0}
    if server:
        # Backends that ended (the index's connections) are no longer in /proc: the postmaster's
        # children's time (cutime, counted above) holds them once reaped.
        out["server_cpu"] = server_cpu(server) - srv0
    return {k: round(v, 2) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--profile", type=int, default=0, help="print this many cProfile lines (PostgreSQL run)")
    parser.add_argument("--statements", type=int, default=8, help="pg_stat_statements lines")
    parser.add_argument("--writers", type=int, default=1, choices=(1, 2))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/memdex-bench-pg-write"))
    args = parser.parse_args()
    from generate import generate_memory
    from pg_server import PgServer

    pristine = args.workdir / f"memory-{args.files}"
    if not (pristine / ".complete").exists():
        shutil.rmtree(pristine, ignore_errors=True)
        generate_memory(pristine, files=args.files, seed=0)
        (pristine / ".complete").write_text("")
    ignore = shutil.ignore_patterns(".complete", ".memdex")
    print("load", os.getloadavg())
    settings = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}
    with tempfile.TemporaryDirectory(prefix="memdex-pgprof-") as tmp, PgServer.start(durable=True, settings=settings) as server:
        roots = [Path(tmp) / f"copy{i}" for i in range(2 * args.writers)]
        for root in roots:
            shutil.copytree(pristine, root, ignore=ignore)
        lite = roots[: args.writers]
        print("sqlite", timed(lambda: run_all([(r, str(Path(tmp) / f"{r.name}.db"), None) for r in lite]), None))
        url = server.create_database("prof")
        server.psql("CREATE EXTENSION pg_stat_statements", dbname="prof")
        jobs = [(r, url, f"w{i}") for i, r in enumerate(roots[args.writers :])]
        profile = cProfile.Profile() if args.profile else None
        if profile:
            profile.enable()
        print("postgres", timed(lambda: run_all(jobs), server))
        if profile:
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
        rows = server.psql(
            "SELECT round(total_exec_time::numeric / 1000, 2) || ' s | ' || calls || ' | ' || "
            "round(shared_blks_hit + shared_blks_read + shared_blks_dirtied) || ' | ' || "
            "left(regexp_replace(query, '\\s+', ' ', 'g'), 150) FROM pg_stat_statements "
            f"ORDER BY total_exec_time DESC LIMIT {args.statements}",
            dbname="prof",
        )
        print("server exec s | calls | blocks | statement\n" + rows)


def run_all(jobs: list[tuple[Path, str, str | None]]) -> None:
    if len(jobs) == 1:
        index(*jobs[0])
        return
    errors: list[BaseException] = []

    def one(job: tuple[Path, str, str | None]) -> None:
        try:
            index(*job)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


if __name__ == "__main__":
    main()
