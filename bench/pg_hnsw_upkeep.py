"""HNSW upkeep on a PostgreSQL index: recall now, after REINDEX, and with a halfvec index.

    python bench/pg_hnsw_upkeep.py --db postgresql://... [--dims 384] [--queries 40]

Run it on a server bench/bench_pg.py kept (``--keep``) after its churn phase.
Random stored vectors serve as queries; recall@200 is measured at
``hnsw.ef_search`` 200 (what memdex sets for 200 candidates) against an exact
scan. Steps: the index as it is; ``REINDEX`` of it (time, size, recall); an
extra HNSW index over ``embedding::halfvec(dims)`` (build time, size, recall;
dropped at the end). Writes bench/out/pg_hnsw_upkeep.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import psycopg

K = 200


def recall(conn: psycopg.Connection, table: str, queries: list[str], order: str) -> dict[str, float]:
    found, latency = [], []
    for query in queries:
        with conn.transaction():
            conn.execute("SET LOCAL enable_indexscan = off")  # the exact answer
            exact = {r[0] for r in conn.execute(
                f"SELECT chunk_id FROM {table} ORDER BY embedding <=> %s::vector LIMIT {K}", (query,))}  # fmt: skip
        with conn.transaction():
            conn.execute(f"SET LOCAL hnsw.ef_search = {K}")
            started = time.perf_counter()
            got = {r[0] for r in conn.execute(f"SELECT chunk_id FROM {table} ORDER BY {order} LIMIT {K}", (query,))}
            latency.append(time.perf_counter() - started)
        found.append(len(got & exact) / K)
    return {"recall_at_200": round(statistics.mean(found), 3), "p50_ms": round(1000 * statistics.median(latency), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("bench/out/pg_hnsw_upkeep.json"))
    args = parser.parse_args()
    table, index = f"memdex.chunk_vectors_{args.dims}", f"memdex.chunk_vectors_{args.dims}_hnsw"
    conn = psycopg.connect(args.db, autocommit=True, prepare_threshold=None)
    conn.execute("SET statement_timeout = 0")
    conn.execute("SET maintenance_work_mem = '1GB'")
    queries = [r[0] for r in conn.execute(f"SELECT embedding::text FROM {table} ORDER BY random() LIMIT %s", (args.queries,))]
    full = "embedding <=> %s::vector"
    size = lambda name: round(conn.execute("SELECT pg_relation_size(%s)", (name,)).fetchone()[0] / 2**20, 1)  # noqa: E731
    result: dict[str, dict[str, float]] = {"as_is": {"mb": size(index), **recall(conn, table, queries, full)}}
    started = time.perf_counter()
    conn.execute(f"REINDEX INDEX {index}")
    result["after_reindex"] = {"seconds": round(time.perf_counter() - started, 1), "mb": size(index),
                               **recall(conn, table, queries, full)}  # fmt: skip
    half = f"memdex.bench_halfvec_{args.dims}"
    started = time.perf_counter()
    conn.execute(f"CREATE INDEX {half.split('.')[1]} ON {table} USING hnsw "
                 f"((embedding::halfvec({args.dims})) halfvec_cosine_ops)")  # fmt: skip
    built = round(time.perf_counter() - started, 1)
    order = f"embedding::halfvec({args.dims}) <=> %s::vector::halfvec({args.dims})"
    result["halfvec"] = {"seconds": built, "mb": size(half), **recall(conn, table, queries, order)}
    conn.execute(f"DROP INDEX {half}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
