"""pgvector HNSW on the throwaway test server: build time, and the cost of k=200 searches.

    python bench/pg_hnsw.py [--rows 100000] [--dim 384] [--queries 50] [--data clustered|random]
                            [--out bench/out/pg_hnsw.json]

Connections never prepare statements (a prepared generic plan may pick another path than the
EXPLAINed custom plan). Unit vectors, by default in clusters (--clusters centres, each point at
cosine ~0.8 from its centre, as sentence embeddings of related texts are; `--data random` is
the structureless worst case, where recall@200 means little), an HNSW index with
vector_cosine_ops, m=16, ef_construction=64. If the build exceeds --build-limit seconds it is
cancelled and the run starts again with --fallback-rows. Then, per setting, the p50/p95 of
`ORDER BY embedding <=> q LIMIT 200`, the rows it returned and its recall@200 against an exact
scan: default ef_search (40), ef_search=200, iterative_scan=relaxed_order, and a filtered query
(id % 10 = 0) as the planner chooses and with the HNSW index forced, with and without
iterative scan. Also checks halfvec.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from pg_server import PgServer  # noqa: E402

K = 200
FORCE = ["SET enable_seqscan = off", "SET enable_bitmapscan = off"]


def make_vectors(rng: np.random.Generator, rows: int, dim: int, clusters: int) -> np.ndarray:
    if clusters:
        centres = rng.standard_normal((clusters, dim), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        # noise of norm ~0.75: cosine to the centre ~0.8
        vectors = centres[rng.integers(0, clusters, rows)] + 0.75 / dim**0.5 * rng.standard_normal((rows, dim), dtype=np.float32)
    else:
        vectors = rng.standard_normal((rows, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def copy_vectors(conn: psycopg.Connection, vectors: np.ndarray) -> None:
    """Binary COPY (pgvector's wire format: int16 dim, int16 unused, float4 big-endian)."""
    dim = vectors.shape[1]
    with conn.cursor() as cur, cur.copy("COPY items (id, embedding) FROM STDIN (FORMAT binary)") as copy:
        copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0))
        head = struct.Struct("!hiiihh")
        batch = []
        for i, row in enumerate(vectors.astype(">f4")):
            batch.append(head.pack(2, 4, i + 1, 4 + 4 * dim, dim, 0) + row.tobytes())
            if len(batch) == 5000:
                copy.write(b"".join(batch))
                batch.clear()
        copy.write(b"".join(batch) + struct.pack("!h", -1))


def vec(q: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in q) + "]"


def build(conn: psycopg.Connection, vectors: np.ndarray, limit: float) -> float | None:
    conn.execute("DROP TABLE IF EXISTS items")
    conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({vectors.shape[1]}))")
    copy_vectors(conn, vectors)
    conn.execute("VACUUM ANALYZE items")
    conn.execute(f"SET statement_timeout = '{int(limit)}s'")
    started = time.perf_counter()
    try:
        conn.execute(
            "CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
    except psycopg.errors.QueryCanceled:
        return None
    finally:
        conn.execute("SET statement_timeout = 0")
    return time.perf_counter() - started


def measure(conn: psycopg.Connection, queries: list[str], exact: list[set[int]], setup: list[str],
            where: str = "") -> dict[str, float]:
    conn.execute("RESET ALL")
    for stmt in setup:
        conn.execute(stmt)
    sql = f"SELECT id FROM items {where} ORDER BY embedding <=> %s::vector LIMIT {K}"
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, (queries[0],)))
    times, rows, recall = [], [], []
    for q, truth in zip(queries, exact):
        started = time.perf_counter()
        ids = [r[0] for r in conn.execute(sql, (q,))]
        times.append((time.perf_counter() - started) * 1000)
        rows.append(len(ids))
        recall.append(len(truth & set(ids)) / max(1, len(truth)))
    return {
        "uses_index": "items_hnsw" in plan,
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 2),
        "rows_min": min(rows),
        "rows_median": statistics.median(rows),
        "recall_at_200": round(statistics.mean(recall), 3),
    }


def exact_ids(conn: psycopg.Connection, queries: list[str], where: str) -> list[set[int]]:
    conn.execute("SET enable_indexscan = off")
    sql = f"SELECT id FROM items {where} ORDER BY embedding <=> %s::vector LIMIT {K}"
    out = [{r[0] for r in conn.execute(sql, (q,))} for q in queries]
    conn.execute("RESET enable_indexscan")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--fallback-rows", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--data", choices=("clustered", "random"), default="clustered")
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--build-limit", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "pg_hnsw.json")
    args = parser.parse_args()

    rng = np.random.default_rng(7)
    settings = {"shared_buffers": "1GB", "maintenance_work_mem": "2GB", "max_parallel_maintenance_workers": "1"}
    result: dict[str, object] = {"settings": settings}
    with PgServer.start(settings=settings) as server, psycopg.connect(server.url, autocommit=True, prepare_threshold=None) as conn:
        result["server"] = conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
        result["pgvector"] = conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()[0]  # type: ignore[index]
        result["halfvec"] = conn.execute("SELECT '[1,2]'::halfvec(2)::text").fetchone()[0]  # type: ignore[index]
        seconds = None
        for rows in (args.rows, args.fallback_rows):
            vectors = make_vectors(rng, rows, args.dim, args.clusters if args.data == "clustered" else 0)
            started = time.perf_counter()
            seconds = build(conn, vectors, args.build_limit)
            print(f"{rows} rows: build {'cancelled' if seconds is None else f'{seconds:.1f} s'}"
                  f" (load+build {time.perf_counter() - started:.1f} s)", flush=True)
            if seconds is not None:
                break
        if seconds is None:
            raise SystemExit("HNSW build exceeded the limit at both sizes")
        result["data"] = args.data if args.data == "random" else f"clustered ({args.clusters} centres)"
        result["rows"], result["dim"], result["build_s"] = rows, args.dim, round(seconds, 1)
        result["index_mb"] = round(conn.execute("SELECT pg_relation_size('items_hnsw')").fetchone()[0] / 2**20, 1)  # type: ignore[index]
        # queries: perturbed rows of the data (a near neighbour exists, as in real search)
        picks = rng.choice(rows, args.queries, replace=False)
        noisy = vectors[picks] + 0.3 / args.dim**0.5 * rng.standard_normal((args.queries, args.dim), dtype=np.float32)
        queries = [vec(q / np.linalg.norm(q)) for q in noisy]
        filt = "WHERE id %% 10 = 0"  # (%% : a psycopg placeholder escape)
        truth, truth_f = exact_ids(conn, queries, ""), exact_ids(conn, queries, filt)
        cases = {
            "ef_search 40 (default)": ([], "", truth),
            "ef_search 200": (["SET hnsw.ef_search = 200"], "", truth),
            "ef_search 40 + iterative relaxed_order": (["SET hnsw.iterative_scan = relaxed_order"], "", truth),
            "ef_search 200 + iterative relaxed_order": (
                ["SET hnsw.ef_search = 200", "SET hnsw.iterative_scan = relaxed_order"], "", truth),
            "filter 10%: ef_search 200": (["SET hnsw.ef_search = 200"], filt, truth_f),
            "filter 10%: ef_search 200 + iterative relaxed_order": (
                ["SET hnsw.ef_search = 200", "SET hnsw.iterative_scan = relaxed_order"], filt, truth_f),
            "filter 10%, index forced: ef_search 200": (FORCE + ["SET hnsw.ef_search = 200"], filt, truth_f),
            "filter 10%, index forced: ef_search 200 + iterative relaxed_order": (
                FORCE + ["SET hnsw.ef_search = 200", "SET hnsw.iterative_scan = relaxed_order"], filt, truth_f),
        }
        result["cases"] = {}
        for name, (setup, where, t) in cases.items():
            result["cases"][name] = measure(conn, queries, t, setup, where)  # type: ignore[index]
            print(f"{name}: {result['cases'][name]}", flush=True)  # type: ignore[index]
        conn.execute("RESET ALL")
        conn.execute("SET enable_indexscan = off")
        times = []
        for q in queries[:10]:
            t0 = time.perf_counter()
            conn.execute(f"SELECT id FROM items ORDER BY embedding <=> %s::vector LIMIT {K}", (q,)).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
        result["exact_scan_p50_ms"] = round(statistics.median(times), 1)
        print(f"exact scan p50 {result['exact_scan_p50_ms']} ms; index {result['index_mb']} MB", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
