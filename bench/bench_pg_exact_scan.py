"""A one-shot PostgreSQL vector search, exact scan against the HNSW index, by the vector
table's size: what ``bulk.HNSW_MIN_ROWS`` (below it, no HNSW index: searches scan exactly)
is chosen from.

    python bench/bench_pg_exact_scan.py [--sizes 5000,10000,20000,50000] [--queries 20]
                                        [--limit 200] [--out bench/out/pg_exact_scan.json]

For each size, a new database of one throwaway durable server (tests/pg_server.py) gets a
table shaped as memdex's ``chunk_vectors_384`` (rows of two namespaces, half each) filled with
clustered unit vectors (200 centres plus noise, as embeddings cluster), then:

- ``exact``: no index; each query is memdex's own statement (``search.hnsw_sql``, ``--limit``
  rows) on a NEW connection (a one-shot ``memdex search``: its first statement; ``first_ms``)
  and again on one warm connection (``warm_ms``), searching ``one_namespace`` (half the rows:
  a search of one writer's namespace beside another's) and ``every_namespace`` (all rows,
  HNSW's first pass alone, as search.py sends it);
- the index is built as ``bulk.py`` builds it (``build_s`` wall, ``build_cpu_s`` of the
  server's processes), and the same queries run through it (``hnsw``);
- ``hnsw_recall_at_10``: the share of the exact top 10 that HNSW returns, averaged over the queries.

Medians in milliseconds, measured on the client (a local socket).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from indexer.store.postgres import bulk
from indexer.store.postgres import connection as pg
from indexer.store.postgres.search import hnsw_sql
from indexer.store.postgres.text import vector_text

DIMS = 384
TABLE = "chunk_vectors_384"
TICK = os.sysconf("SC_CLK_TCK")


def vectors(rows: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((200, DIMS)).astype(np.float32)
    out = centres[rng.integers(0, len(centres), rows)] + 0.8 * rng.standard_normal((rows, DIMS)).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def fill(url: str, rows: int, rng: np.random.Generator) -> None:
    with pg.connect(url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {pg.SCHEMA}")
        conn.execute(f"CREATE TABLE {TABLE}(chunk_id bigint PRIMARY KEY, ns int NOT NULL, embedding vector({DIMS}) NOT NULL)")
        for start in range(0, rows, 5000):
            block = vectors(min(5000, rows - start), rng)
            conn.execute(
                f"INSERT INTO {TABLE} SELECT %(start)s + i, 1 + i %% 2, "
                "(%(v)s::real[])[(i - 1) * %(d)s + 1 : i * %(d)s]::vector FROM generate_series(1, %(n)s) i",
                {"start": start, "v": pg.Float4Array(block), "d": DIMS, "n": len(block)},
            )
        conn.execute(f"VACUUM ANALYZE {TABLE}")


def server_cpu(server: Any) -> float:
    """CPU seconds of the server's processes so far: its postmaster's live children, and the
    ones that ended (the build's parallel workers), counted in the postmaster's own children's time."""
    postmaster = int((Path(server.data_dir) / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for pid in Path("/proc").iterdir():
        if not pid.name.isdigit():
            continue
        try:
            stat = (pid / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid.name) == postmaster:
            total += (int(stat[13]) + int(stat[14])) / TICK
        elif int(stat[1]) == postmaster:
            total += (int(stat[11]) + int(stat[12])) / TICK
    return total


def query_times(
    url: str, queries: np.ndarray, limit: int, namespaces: list[int]
) -> tuple[list[float], list[float], list[list[int]]]:
    """(first statement on a new connection, each; warm connection, each; top ids, each)."""
    first, warm, tops = [], [], []
    whole = len(namespaces) == 2  # every namespace: hnsw_sql's first pass alone, as search.py sends it
    for q in queries:
        sql = hnsw_sql(TABLE, vector_text(q), namespaces, limit, iterative=not whole)
        with pg.connect(url) as conn:
            started = time.perf_counter()
            cursor = conn.execute(sql)
            cursor.nextset()
            cursor.nextset()
            cursor.fetchall()
            first.append((time.perf_counter() - started) * 1000)
    with pg.connect(url) as conn:
        for q in queries:
            sql = hnsw_sql(TABLE, vector_text(q), namespaces, limit, iterative=not whole)
            started = time.perf_counter()
            cursor = conn.execute(sql)
            cursor.nextset()
            cursor.nextset()
            rows = cursor.fetchall()
            warm.append((time.perf_counter() - started) * 1000)
            tops.append([int(r[0]) for r in rows[:10]])
    return first, warm, tops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,10000,20000,50000")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "pg_exact_scan.json")
    args = parser.parse_args()
    from pg_server import PgServer

    results = []
    with PgServer.start(durable=True) as server:
        for size in [int(s) for s in args.sizes.split(",")]:
            rng = np.random.default_rng(size)
            url = server.create_database(f"scan_{size}")
            fill(url, size, rng)
            queries = vectors(args.queries, rng)
            scopes = {"one_namespace": [1], "every_namespace": [1, 2]}
            exact = {scope: query_times(url, queries, args.limit, ids) for scope, ids in scopes.items()}
            with pg.connect(url) as conn:
                cpu, started = server_cpu(server), time.perf_counter()
                with conn.transaction():
                    conn.execute(f"SET LOCAL maintenance_work_mem = '{bulk.BUILD_MEMORY}'")
                    conn.execute(f"SET LOCAL statement_timeout = '{bulk.BUILD_TIMEOUT}'")
                    bulk._limit_build_workers(conn)
                    conn.execute(f"CREATE INDEX {bulk.index_name(TABLE)} ON {TABLE} USING hnsw (embedding vector_cosine_ops)")
                build_s, build_cpu = time.perf_counter() - started, server_cpu(server) - cpu
            hnsw = {scope: query_times(url, queries, args.limit, ids) for scope, ids in scopes.items()}
            row: dict[str, Any] = {"rows": size, "build_s": round(build_s, 2), "build_cpu_s": round(build_cpu, 2)}
            for scope in scopes:
                (e_first, e_warm, e_tops), (h_first, h_warm, h_tops) = exact[scope], hnsw[scope]
                row[scope] = {
                    "exact_first_ms": round(statistics.median(e_first), 1),
                    "exact_warm_ms": round(statistics.median(e_warm), 1),
                    "hnsw_first_ms": round(statistics.median(h_first), 1),
                    "hnsw_warm_ms": round(statistics.median(h_warm), 1),
                    "hnsw_recall_at_10": round(statistics.mean(len(set(a) & set(b)) / len(a) for a, b in zip(e_tops, h_tops)), 3),
                }
            print(json.dumps(row), flush=True)
            results.append(row)
            server.drop_database(f"scan_{size}")
    out = {"limit": args.limit, "queries": args.queries, "results": results, "load": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
