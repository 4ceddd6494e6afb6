"""The throwaway PostgreSQL server the postgres tests run against (tests/pg_server.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from conftest import pg_required

try:
    import psycopg
except ImportError:  # the test extra brings it; CI must not pass without it
    if pg_required():
        raise
    pytest.skip("psycopg is not installed (pip install -e '.[test]')", allow_module_level=True)

pytestmark = pytest.mark.postgres


def test_url_has_password_and_connects(pg_server: Any, pg_url: str) -> None:
    assert pg_url == f"postgresql://memdex:{pg_server.password}@127.0.0.1:{pg_server.port}/memdex"
    assert len(pg_server.password) >= 16
    with psycopg.connect(pg_url, connect_timeout=10) as conn:
        assert conn.execute("SELECT current_database(), current_user").fetchone() == ("memdex", "memdex")


def test_wrong_password_is_refused(pg_server: Any) -> None:
    wrong = pg_server.url.replace(pg_server.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)


def test_server_does_not_run_as_root(pg_server: Any) -> None:
    pid = int((pg_server.data_dir / "postmaster.pid").read_text().split()[0])
    assert os.stat(f"/proc/{pid}").st_uid != 0


def test_pgvector_distance_halfvec_and_hnsw(pg_url: str) -> None:
    with psycopg.connect(pg_url, connect_timeout=10) as conn:
        # the app's migrations may say IF NOT EXISTS: the extension is already there
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert version is not None and tuple(int(p) for p in version[0].split(".")[:2]) >= (0, 8)
        row = conn.execute("SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector").fetchone()
        assert row is not None and row[0] == pytest.approx(1 - 17 / (14**0.5 * 21**0.5), abs=1e-6)
        assert conn.execute("SELECT '[1,0]'::halfvec(2) <=> '[0,1]'::halfvec(2)").fetchone() == (1.0,)
        conn.execute("CREATE TABLE t_hnsw (id int PRIMARY KEY, embedding vector(3))")
        conn.execute("INSERT INTO t_hnsw SELECT i, ARRAY[i, 1, 0]::vector FROM generate_series(1, 50) i")
        conn.execute(
            "CREATE INDEX t_hnsw_idx ON t_hnsw USING hnsw (embedding vector_cosine_ops)"
            " WITH (m = 16, ef_construction = 64)"
        )
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN SELECT id FROM t_hnsw ORDER BY embedding <=> '[1,1,0]' LIMIT 3"))
        assert "t_hnsw_idx" in plan
        ids = [r[0] for r in conn.execute("SELECT id FROM t_hnsw ORDER BY embedding <=> '[1,1,0]' LIMIT 3")]
        assert ids[0] == 1
        conn.execute("DROP TABLE t_hnsw")


def test_create_database_has_pgvector(pg_server: Any) -> None:
    url = pg_server.create_database("scratch_one")
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            assert conn.execute("SELECT '[3,4]'::vector <-> '[0,0]'::vector").fetchone() == (5.0,)
    finally:
        pg_server.drop_database("scratch_one")


def test_restart_and_crash_keep_committed_data(pg_server_alive: Any) -> None:
    server = pg_server_alive
    url = server.create_database("restart_check")
    try:
        with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (id int PRIMARY KEY, embedding vector(3))")
            conn.execute("INSERT INTO kept VALUES (1, '[1,2,3]')")
        port = server.port
        server.restart()
        assert server.port == port and server.is_running()
        with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
            assert conn.execute("SELECT embedding::text FROM kept").fetchone() == ("[1,2,3]",)
            conn.execute("INSERT INTO kept VALUES (2, '[4,5,6]')")
            # a connection open across a crash is broken afterwards: what the watcher must survive
            server.kill()
            assert not server.is_running()
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=5)
        server.restart()  # crash recovery replays the WAL
        with psycopg.connect(url, connect_timeout=10) as conn:
            assert [r[0] for r in conn.execute("SELECT id FROM kept ORDER BY id")] == [1, 2]
    finally:
        if not server.is_running():
            server.restart()
        server.drop_database("restart_check")
