"""How long a warm PostgreSQL process takes to load the in-memory matrix: pgvector's text
form parsed row by row (as ``vectors_of`` did) against its binary send format read as one
big-endian float32 matrix (``PgSearch._binary_vectors``), on a throwaway server
(tests/pg_server.py) holding ``--rows`` random vectors of ``--dims``.

    python bench/bench_pg_matrix_load.py [--rows 10000] [--dims 384] [--repeat 3]

Prints wall and client CPU ms per load for each form (alternating), and checks both give the
stored floats exactly.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/pg_server.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import psycopg
    from pg_server import PgServer

    from indexer.store.postgres.text import parse_vector

    server = PgServer.start(tempfile.gettempdir())
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE v(chunk_id bigint PRIMARY KEY, ns int, embedding vector({args.dims}))")
            rows = np.random.default_rng(1).standard_normal((args.rows, args.dims)).astype(np.float32)
            with conn.cursor().copy("COPY v FROM STDIN") as copy:
                for i, row in enumerate(rows):
                    copy.write_row((i, 1, "[" + ",".join(f"{x:.9g}" for x in row.tolist()) + "]"))
            conn.execute("VACUUM ANALYZE v")
            ids = list(range(args.rows))

            def text() -> np.ndarray:
                found = conn.execute(
                    "SELECT chunk_id, embedding::text FROM v WHERE chunk_id = ANY(%s) ORDER BY chunk_id", (ids,)
                ).fetchall()
                return np.stack([parse_vector(t) for _, t in found])

            def binary() -> np.ndarray:
                found = conn.cursor(binary=True).execute(
                    "SELECT chunk_id, embedding FROM v WHERE chunk_id = ANY(%s) AND ns = ANY(%s) ORDER BY chunk_id",
                    (ids, [1]),
                ).fetchall()
                packed = np.frombuffer(b"".join(bytes(b) for _, b in found), dtype=">f4").reshape(len(found), -1)
                return packed[:, 1:].astype(np.float32)

            assert np.array_equal(text(), rows) and np.array_equal(binary(), rows)
            for _ in range(args.repeat):
                for load in (text, binary):
                    wall, cpu = time.perf_counter(), time.process_time()
                    load()
                    print(
                        f"{load.__name__:6}  wall {1000 * (time.perf_counter() - wall):7.1f} ms  "
                        f"client CPU {1000 * (time.process_time() - cpu):7.1f} ms"
                    )
    finally:
        server.close()


if __name__ == "__main__":
    main()
