"""What the walls between agents cost on PostgreSQL: row-level security on a search, and
the setup cost of the alternative (one schema per namespace).

    python bench/pg_rls_cost.py [--files 1000] [--namespaces 4] [--rounds 5] [--out bench/out/pg_rls.json]

A throwaway server (tests/pg_server.py) gets ``--namespaces`` copies of the folder of
bench/generate.py (about 10 chunks per file), each in its own namespace, indexed as the
schema's owner with a deterministic 384-dimension embedder (vectors from the text's hash:
the model is not what is measured). One login role is granted one namespace read-only.

1. Search latency, the same queries through ``MemoryIndex.search`` (default budget) as the
   owner (no row-level security) and as the granted role (every table filtered by its
   policies), keyword, vector and hybrid mode, interleaved round by round; medians and p95
   per mode and role, in ms.
2. The server's own time for the bm25 query (``EXPLAIN ANALYZE``, execution time), as
   both roles, medians: the policy's grant lookup runs once per statement (InitPlan).
3. Setup: granting a role a namespace (``grant``: one row and its privileges) against
   creating one namespace's tables and indexes in a schema of its own (what schema-per-
   namespace costs for each new namespace, before any cross-namespace search is written).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from generate import generate_memory
from pg_server import PgServer

from indexer import make_settings, open_index
from indexer.store.postgres import access, connection

QUERIES = ["dentist appointment", "kayak trip", "project deadline", "birthday gift", "train to london",
           "doctor", "budget review", "garden tomatoes", "book club", "new laptop", "meeting notes",
           "running shoes", "flight booking", "tax return", "coffee with", "recipe"]  # fmt: skip


class HashEmbedder:
    """384-dimension unit vectors from the text's hash (deterministic, no model)."""

    model_id = "bench/hash-384"
    dimensions = 384
    max_tokens = 256

    def count_tokens(self, texts: Any) -> list[int]:
        return [len(t.split()) for t in texts]

    def embed(self, texts: Any) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            v = np.random.default_rng(seed).standard_normal(self.dimensions).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows) if rows else np.zeros((0, self.dimensions), dtype=np.float32)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "pg_rls.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="memdex-rls-"))
    embedder = HashEmbedder()
    try:
        with PgServer.start() as server:
            owner_url = server.url
            folder = work / "memory"
            generate_memory(folder, files=args.files, seed=1)
            started = time.perf_counter()
            for i in range(args.namespaces):
                root = work / f"root{i}"
                shutil.copytree(folder, root)
                with open_index(make_settings(root, owner_url, namespace=f"ns{i}"), write=True, embedder=embedder) as m:
                    m.sync()
            index_seconds = time.perf_counter() - started
            with connection.connect(owner_url) as conn:
                conn.execute("CREATE ROLE agent LOGIN PASSWORD 'agent'")
                conn.execute("VACUUM (ANALYZE)")
                grant_times = []
                for i in range(args.rounds):
                    t = time.perf_counter()
                    access.grant(conn, f"ns{i % args.namespaces}", "agent", write=False)
                    grant_times.append(time.perf_counter() - t)
                access.grant(conn, "ns0", "agent", write=False)
                (chunks,) = conn.execute("SELECT sum(chunk_count) FROM namespaces").fetchone()
                schema_times = [schema_setup_seconds(conn, i) for i in range(args.rounds)]
            agent_url = f"postgresql://agent:agent@{server.host}:{server.port}/{server.dbname}"
            roles = {"owner": owner_url, "agent": agent_url}
            latency = search_latency(roles, work / "root0", embedder, args.rounds)
            explain = explain_bm25(roles, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "chunks_on_server": int(chunks), "namespaces": args.namespaces, "index_seconds": round(index_seconds, 1),
        "search_ms": latency, "bm25_execution_ms": explain,
        "grant_ms_median": round(1000 * statistics.median(grant_times), 2),
        "schema_per_namespace_setup_ms_median": round(1000 * statistics.median(schema_times), 2),
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def search_latency(roles: dict[str, str], root: Path, embedder: HashEmbedder, rounds: int) -> dict[str, Any]:
    times: dict[tuple[str, str], list[float]] = {}
    indexes = {}
    stacks = []
    for role, url in roles.items():
        context = open_index(make_settings(root, url, namespace="ns0"), embedder=embedder)
        indexes[role] = context.__enter__()
        stacks.append(context)
    try:
        for _ in range(rounds):
            for mode in ("keyword", "vector", "hybrid"):
                for role, memory in indexes.items():
                    for query in QUERIES:
                        t = time.perf_counter()
                        memory.search(query, mode=mode)
                        times.setdefault((mode, role), []).append(1000 * (time.perf_counter() - t))
    finally:
        for context in stacks:
            context.__exit__(None, None, None)
    return {
        f"{mode}/{role}": {"median": round(statistics.median(v), 2), "p95": round(percentile(v, 0.95), 2)}
        for (mode, role), v in sorted(times.items())
    }


def explain_bm25(roles: dict[str, str], rounds: int) -> dict[str, float]:
    """Execution time of the bm25 scoring query (the keyword half of a search) as each role."""
    sql = (
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT p.chunk_id, sum(p.freq) AS score FROM postings p "
        "WHERE p.term = ANY(%s) AND p.ns = ANY(%s) GROUP BY p.chunk_id ORDER BY score DESC LIMIT 50"
    )
    found: dict[str, float] = {}
    for role, url in roles.items():
        with connection.connect(url) as conn:
            (ns,) = conn.execute("SELECT id FROM namespaces WHERE name = 'ns0'").fetchone()
            runs = []
            for _ in range(rounds):
                for query in QUERIES:
                    plan = conn.execute(sql, (query.split(), [ns])).fetchone()[0][0]
                    runs.append(plan["Execution Time"])
            found[role] = round(statistics.median(runs), 3)
    return found


def schema_setup_seconds(conn: Any, number: int) -> float:
    """Creating one namespace's tables and indexes (the first migrations' DDL and an HNSW
    vector table) in a schema of its own, as schema-per-namespace would for each namespace."""
    schema = f"bench_ns_{number}"
    started = time.perf_counter()
    with conn.transaction():
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET LOCAL search_path = {schema}, public")
        for _, sql in connection.MIGRATIONS[:2]:
            conn.execute(sql)
        conn.execute(
            "CREATE TABLE chunk_vectors_384(chunk_id bigint PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE, "
            "ns int NOT NULL, embedding vector(384) NOT NULL)"
        )
        conn.execute("CREATE INDEX ON chunk_vectors_384 USING hnsw (embedding vector_cosine_ops)")
    elapsed = time.perf_counter() - started
    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return elapsed


if __name__ == "__main__":
    main()
