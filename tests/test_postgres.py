"""memdex on PostgreSQL + pgvector: what only a server does, and parity with SQLite.

What every engine does (sync, search, rebuild, check, hostile queries, equal to a fresh
rebuild) is the engine contract, run on both engines (test_engine_contract.py,
test_invariants.py). Here: results and bm25 scores equal to SQLite's, namespaces, the
cache shared across hosts, damaged postings, passwords, a server that is down or
restarted, foreign and newer schemas, the statement timeout, libpq's environment, MCP.

Every test gets its own namespaces (memory roots) on the session's server
(``pg_url``), so tests share the server but never each other's rows.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from conftest import NOTES, RecordingEmbedder, age_files, fill, write

from indexer import make_settings, open_index
from indexer.cli.app import cli
from indexer.config.settings import Settings, redact
from indexer.errors import NewerIndex, SchemaError, StorageError
from indexer.retrieval.filters import make_filters

pytestmark = pytest.mark.postgres


def pg_settings(root: Path, url: str, namespace: str | None = None, **options: Any) -> Settings:
    return make_settings(root, url, namespace=namespace or f"test-{uuid.uuid4().hex[:10]}", **options)


def index(settings: Settings, embedder: RecordingEmbedder | None = None, **options: Any) -> Any:
    with open_index(settings, write=True, embedder=embedder or RecordingEmbedder()) as memory:
        return memory.sync(**options)


def snap(settings: Settings) -> dict[str, Any]:
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        return memory.store.snapshot()


def search(settings: Settings, query: str, **options: Any) -> list[Any]:
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        return memory.search(query, **options)


def test_a_one_line_edit_replaces_only_the_changed_chunks_row(root: Path, pg_url: str) -> None:
    """What is re-embedded is the engine contract; on PostgreSQL the unchanged chunks of an
    edited file also keep their rows (no delete + insert), so their ids stay."""
    fill(root)
    settings = pg_settings(root, pg_url)
    index(settings)
    ids_before = _chunk_ids(pg_url, settings)
    write(root, "MEMORY.md", NOTES["MEMORY.md"].replace("Pangur the cat.", "Pangur the grey cat."))
    age_files(root)
    index(settings)
    after = _chunk_ids(pg_url, settings)
    assert len(after) == len(ids_before)
    assert len(set(ids_before) & set(after)) == len(after) - 1


def _chunk_ids(url: str, settings: Settings) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.id FROM memdex.chunks c JOIN memdex.namespaces n ON n.id = c.ns WHERE n.name = %s",
            (settings.namespace_name,),
        ).fetchall()
    return [row[0] for row in rows]


def test_the_same_folder_gives_the_same_chunks_and_keyword_scores_as_sqlite(root: Path, tmp_path: Path, pg_url: str) -> None:
    """Parity: identical chunks, and bm25 computed on the server equals FTS5's."""
    fill(root)
    lite = make_settings(root, tmp_path / "lite.db")
    server = pg_settings(root, pg_url)
    index(lite)
    index(server)
    assert sorted(snap(lite)["chunks"]) == sorted(snap(server)["chunks"])
    for query in ("bike", "penicillin vim", "tomatoes greenhouse basil", "the cat", "lake dentist bike"):
        a = search(lite, query, mode="keyword", budget_lines=None, limit=20)
        b = search(server, query, mode="keyword", budget_lines=None, limit=20)
        assert [(r.path, r.start_line) for r in a] == [(r.path, r.start_line) for r in b], query
        assert [r.score for r in a] == pytest.approx([r.score for r in b], rel=1e-5), query
    for mode in ("hybrid", "vector"):
        for budget in (None, 6):
            a = search(lite, "bike ride to the lake", mode=mode, budget_lines=budget)
            b = search(server, "bike ride to the lake", mode=mode, budget_lines=budget)
            assert [(r.path, r.start_line, r.end_line) for r in a] == [(r.path, r.start_line, r.end_line) for r in b]


def test_filters_behave_as_on_sqlite(root: Path, tmp_path: Path, pg_url: str) -> None:
    fill(root)
    lite, server = make_settings(root, tmp_path / "lite.db"), pg_settings(root, pg_url)
    index(lite)
    index(server)
    cases = [
        make_filters(kinds=["daily"]),
        make_filters(path_prefix="notes/"),
        make_filters(after="2024-05-02"),
        make_filters(before="2024-05-01", kinds=["daily"]),
        make_filters(kinds=["soul"], path_prefix="nowhere/"),
    ]
    for filters in cases:
        for mode in ("keyword", "vector", "hybrid"):
            a = search(lite, "bike dentist tomatoes", mode=mode, filters=filters, budget_lines=None)
            b = search(server, "bike dentist tomatoes", mode=mode, filters=filters, budget_lines=None)
            assert [(r.path, r.start_line) for r in a] == [(r.path, r.start_line) for r in b], (filters, mode)


def test_deletions_stay_inside_the_namespace_and_searches_can_span_namespaces(tmp_path: Path, pg_url: str) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    fill(one, {"MEMORY.md": "# A\n\nKayak trip to Skye.\n"})
    fill(two, {"MEMORY.md": "# B\n\nKayak repair kit.\n", "notes/x.md": "# X\n\nOnly here.\n"})
    a, b = pg_settings(one, pg_url), pg_settings(two, pg_url)
    index(a)
    index(b)
    index(a)  # one's files do not include notes/x.md: two's rows must survive
    assert [row[0] for row in snap(b)["files"]] == ["MEMORY.md", "notes/x.md"]
    assert [r.path for r in search(a, "kayak", mode="keyword")] == ["MEMORY.md"]
    both = search(Settings(**{**a.__dict__, "search_namespaces": (a.namespace_name, b.namespace_name)}), "kayak",
                  mode="keyword", budget_lines=None)  # fmt: skip
    assert sorted(r.namespace for r in both) == sorted([a.namespace_name, b.namespace_name])
    # The same path in two namespaces stays two results, even when a budget merges adjacent lines.
    budgeted = search(Settings(**{**a.__dict__, "search_namespaces": ("*",)}), "kayak", mode="keyword", budget_lines=10)
    assert {(r.namespace, r.path) for r in budgeted} >= {(a.namespace_name, "MEMORY.md"), (b.namespace_name, "MEMORY.md")}


def test_a_second_host_with_the_same_files_embeds_nothing(tmp_path: Path, pg_url: str) -> None:
    """The stat cache is per host; the hash and the embedding cache are shared."""
    root = tmp_path / "memory"
    fill(root)
    namespace = f"shared-{uuid.uuid4().hex[:8]}"
    first = pg_settings(root, pg_url, namespace)
    index(first)
    copy = tmp_path / "copy"
    fill(copy)  # another host's copy: other inodes and mtimes, same bytes
    embedder = RecordingEmbedder()
    other = pg_settings(copy, pg_url, namespace)
    with open_index(other, write=True, embedder=embedder) as memory:
        memory.store.host = "other-host"
        report = memory.sync()
    assert embedder.embedded == [] and report.reindexed == 0 and report.unchanged_hash == len(NOTES)
    # The cache is per namespace (test_pg_access.py): another namespace holding the same texts
    # embeds them itself; it can neither read nor replace this namespace's vectors.
    embedder.reset()
    index(pg_settings(copy, pg_url), embedder)
    assert len(embedder.embedded) == len({c for c in snap(first)["chunks"]})


def test_get_from_another_namespace_reads_the_stored_text_and_says_so(tmp_path: Path, pg_url: str) -> None:
    root, mine = tmp_path / "theirs", tmp_path / "mine"
    fill(root)
    fill(mine, {"MEMORY.md": "# Mine\n\nnothing\n"})
    theirs = pg_settings(root, pg_url)
    index(theirs)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--root", str(mine), "--db", pg_url, "get", "--from", theirs.namespace_name, "MEMORY.md:3-4", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["lines"] == ["- Penicillin allergy: hives in 2009.", "- Editor: vim with tmux."]
    assert "stored text" in result.stderr
    one = runner.invoke(cli, ["--root", str(mine), "--db", pg_url, "get", "--from", theirs.namespace_name, "MEMORY.md:3"])
    assert one.exit_code == 0 and one.stdout == "- Penicillin allergy: hives in 2009.\n"
    whole = runner.invoke(cli, ["--root", str(mine), "--db", pg_url, "get", "--from", theirs.namespace_name, "SOUL.md"])
    assert whole.exit_code == 0 and whole.stdout == NOTES["SOUL.md"]
    missing = runner.invoke(cli, ["--root", str(mine), "--db", pg_url, "get", "--from", theirs.namespace_name, "nope.md"])
    assert missing.exit_code == 1 and "not indexed in namespace" in missing.stderr


def test_check_finds_postings_that_do_not_match_and_repair_fixes_them(root: Path, pg_url: str) -> None:
    from indexer.indexing.check import CORRUPT, HEALTHY, check_index

    fill(root)
    settings = pg_settings(root, pg_url)
    index(settings)

    def check() -> Any:
        with open_index(settings, embedder=RecordingEmbedder()) as memory:
            return check_index(settings, memory.engine, model_id=RecordingEmbedder().model_id)

    assert check().exit_code == HEALTHY
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM memdex.postings WHERE chunk_id = (SELECT min(c.id) FROM memdex.chunks c "
            "JOIN memdex.namespaces n ON n.id = c.ns WHERE n.name = %s) AND term = 'penicillin'",
            (settings.namespace_name,),
        )
    found = check()
    assert found.exit_code == CORRUPT and "MEMORY.md" in json.dumps(found.as_dict())
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as memory:
        memory.replace_damaged("check found it corrupt")  # what check --repair does
    assert check().exit_code == HEALTHY


def test_status_and_config_never_show_the_password(root: Path, pg_url: str) -> None:
    assert ":" in pg_url.split("@")[0].split("//")[1], "the test server's URL carries a password"
    password = pg_url.split("@")[0].rsplit(":", 1)[1]
    fill(root)
    settings = pg_settings(root, pg_url)
    index(settings)  # the deterministic embedder: the CLI commands below load no model
    runner = CliRunner()
    base = ["--root", str(root), "--db", pg_url, "--namespace", settings.namespace_name]
    outputs = [runner.invoke(cli, [*base, *args]) for args in (["status"], ["status", "--json"], ["config"], ["-v", "check"])]
    for result in outputs[:3]:
        assert result.exit_code == 0, result.output
    for result in outputs:
        assert password not in result.output
    assert json.loads(outputs[1].stdout)["index_path"] == redact(pg_url)
    assert redact("postgresql://u:p%40ss@h:5/db?password=x&sslmode=require") == (
        "postgresql://u:***@h:5/db?password=***&sslmode=require"
    )


def test_a_server_that_is_down_is_one_line_without_the_password(root: Path) -> None:
    fill(root)
    runner = CliRunner()
    url = "postgresql://memdex:hunter2@127.0.0.1:1/memdex"
    for args in (["index"], ["search", "bike"], ["status"]):
        result = runner.invoke(cli, ["--root", str(root), "--db", url, *args])
        assert result.exit_code == 1
        assert result.stderr.startswith("memdex: error: cannot reach the PostgreSQL server") and result.stderr.count("\n") == 1
        assert "hunter2" not in result.output and "Traceback" not in result.output


def test_a_schema_that_is_not_memdex_is_left_alone(root: Path, pg_server: Any) -> None:
    url = pg_server.create_database(f"foreign_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA memdex")
        conn.execute("CREATE TABLE memdex.important(x int)")
    fill(root)
    with pytest.raises(SchemaError, match="not made by memdex"):
        index(pg_settings(root, url))
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM memdex.important").fetchone() == (0,)


def test_a_newer_schema_is_refused(root: Path, pg_server: Any) -> None:
    url = pg_server.create_database(f"newer_{uuid.uuid4().hex[:8]}")
    fill(root)
    index(pg_settings(root, url))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE memdex.schema_version SET version = 99")
        rows = conn.execute("SELECT count(*) FROM memdex.chunks").fetchone()
    with pytest.raises(NewerIndex, match="newer than this memdex understands"):
        index(pg_settings(root, url))
    for command in (["status"], ["search", "anything", "--mode", "keyword"], ["rebuild"]):  # readers too; nothing changed
        result = CliRunner().invoke(cli, ["--root", str(root), "--db", url, *command])
        assert result.exit_code != 0 and result.stderr.startswith("memdex: error: "), result.output
        assert "version 99, newer than this memdex understands" in result.stderr and "Traceback" not in result.output
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM memdex.schema_version").fetchone() == (99,)
        assert conn.execute("SELECT count(*) FROM memdex.chunks").fetchone() == rows


def test_statement_timeout_guard_is_set(root: Path, pg_url: str) -> None:
    fill(root)
    settings = pg_settings(root, pg_url)
    index(settings)
    with open_index(settings) as memory:
        (timeout,) = memory.store.connection.execute("SHOW statement_timeout").fetchone()
        assert timeout == "30s"
        with pytest.raises(psycopg.errors.QueryCanceled):
            memory.store.connection.execute("SET statement_timeout = 50; SELECT pg_sleep(2)")
    from indexer.store.postgres.connection import user_error

    error = user_error(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), pg_url)
    assert isinstance(error, StorageError) and "timeout" in str(error)


@pytest.mark.slow
def test_fixture_hit_at_5_matches_sqlite_with_the_real_model(tmp_path: Path, pg_url: str) -> None:
    """Parity on the labelled fixture with all-MiniLM-L6-v2: the same chunks, and
    hit@5 of every mode within 0.02 of SQLite's (default search, 50-line budget)."""
    import shutil

    from indexer.embedding.lazy import LazyEmbedder

    fixture = Path(__file__).resolve().parent.parent / "fixtures"
    queries = json.loads((fixture / "queries.json").read_text())
    root = tmp_path / "memory"
    shutil.copytree(fixture / "memory", root)
    model = LazyEmbedder()
    engines = {"sqlite": make_settings(root, tmp_path / "index.db"), "postgresql": pg_settings(root, pg_url)}
    recall: dict[str, dict[str, float]] = {}
    chunks = {}
    for name, settings in engines.items():
        with open_index(settings, write=True, embedder=model) as memory:
            memory.sync()
        with open_index(settings, embedder=model) as memory:
            chunks[name] = sorted(memory.store.snapshot()["chunks"])
            for mode in ("keyword", "vector", "hybrid"):
                hits = 0
                for q in queries:
                    results = memory.search(q["query"], mode=mode, limit=5)
                    hits += any(
                        r.path == rel["path"] and rel["contains"] in "\n".join(memory.get(f"{r.path}:{r.start_line}-{r.end_line}").lines)
                        for r in results
                        for rel in q["relevant"]
                    )
                recall.setdefault(name, {})[mode] = hits / len(queries)
    assert chunks["sqlite"] == chunks["postgresql"]
    for mode, value in recall["sqlite"].items():
        assert abs(recall["postgresql"][mode] - value) <= 0.02, recall


def test_a_long_lived_reader_survives_a_server_restart(root: Path, pg_server_alive: Any) -> None:
    """An MCP server's reader keeps one connection: after a restart it reconnects once."""
    fill(root)
    settings = pg_settings(root, pg_server_alive.url)
    index(settings)
    with open_index(settings, embedder=RecordingEmbedder()) as memory:
        assert memory.search("bike", mode="keyword")
        pg_server_alive.restart()
        assert [r.path for r in memory.search("bike", mode="keyword", budget_lines=None)][:1] == ["daily/2024-05-01.md"]


def test_the_mcp_tools_serve_a_postgresql_index_and_watch_it(root: Path, pg_url: str) -> None:
    import anyio
    from mcp import Client

    from indexer.serve.mcp import build_server
    from indexer.serve.service import IndexService
    from indexer.watch.watcher import WatchOptions

    fill(root)
    settings = pg_settings(root, pg_url)
    embedder = RecordingEmbedder()
    service = IndexService(settings, embedder=embedder, watch=True, watch_options=WatchOptions(debounce=0.05))
    server = build_server(service)

    async def main() -> None:
        async with Client(server) as client:
            with anyio.fail_after(20):
                while not (status := (await client.call_tool("memory_status", {})).structured_content)["indexed"] or (
                    not status["files"]
                ):  # the server's writer makes the namespace and syncs it
                    await anyio.sleep(0.05)
            assert status["index_path"] == redact(pg_url) and status["engine"] == "postgresql"
            found = (await client.call_tool("memory_search", {"query": "dentist", "mode": "keyword"})).structured_content
            assert found["results"][0]["citation"].startswith("daily/2024-05-01.md#L")
            assert found["results"][0]["namespace"] == settings.namespace_name
            write(root, "notes/boat.md", "# Boat\n\nThe kayak is called Selkie.\n")
            with anyio.fail_after(20):
                while True:  # the server's watcher indexes the new note
                    hits = (await client.call_tool("memory_search", {"query": "selkie", "mode": "keyword"})).structured_content
                    if hits["results"]:
                        break
                    await anyio.sleep(0.05)
            assert hits["results"][0]["path"] == "notes/boat.md"

    try:
        anyio.run(main)
    finally:
        service.close()


def test_searching_a_namespace_that_does_not_exist_names_the_ones_that_do(root: Path, pg_url: str) -> None:
    fill(root)
    settings = pg_settings(root, pg_url)
    index(settings)
    result = CliRunner().invoke(
        cli, ["--root", str(root), "--db", pg_url, "--namespace", settings.namespace_name, "search", "bike",
              "--across", "no-such-namespace", "--mode", "keyword"],
    )  # fmt: skip
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "no namespace 'no-such-namespace' on the server (it has: " in result.stderr


def test_credentials_can_come_from_libpq_environment(root: Path, pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No password in the URL: libpq's PGPASSWORD supplies it (``postgres://`` works too)."""
    fill(root)
    bare = f"postgres://{pg_server.user}@{pg_server.host}:{pg_server.port}/{pg_server.dbname}"
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    settings = pg_settings(root, bare)
    assert settings.database_url == bare and index(settings).reindexed == len(NOTES)
    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(StorageError, match="refused the login") as failed:
        index(settings)
    assert "wrong" not in str(failed.value)




def test_watch_keeps_retrying_while_the_server_is_down_at_start(root: Path, tmp_path: Path, pg_server_alive: Any) -> None:
    """A service started before its database (boot order, a restart): the watcher waits
    for the server with its backoff instead of exiting 1, then indexes, then stops on SIGTERM."""
    import signal
    import subprocess

    from test_watch import spawn_watcher, stop_with_sigterm, wait_until

    fill(root)
    settings = make_settings(root, pg_server_alive.url)  # the watcher's namespace: the root's default
    pg_server_alive.stop()
    processes: list[subprocess.Popen[Any]] = []
    try:
        process, ready, log = spawn_watcher(root, tmp_path, processes, "--db", pg_server_alive.url)
        wait_until(lambda: "cannot reach the PostgreSQL server" in log.read_text() or process.poll() is not None,
                   message="the watcher's first failed attempt")  # fmt: skip
        assert process.poll() is None, log.read_text()
        pg_server_alive.restart()
        wait_until(lambda: ready.exists() or process.poll() is not None, message="the watcher, once the server is up")
        assert process.poll() is None, log.read_text()
        assert [r.path for r in search(settings, "bike", mode="keyword")][:1] == ["daily/2024-05-01.md"]
        stop_with_sigterm(process, log, signal.SIGTERM)
        text = log.read_text()
        assert text.count("cannot reach the PostgreSQL server") == 1, text  # said once, not once per attempt
        assert "Traceback" not in text and pg_server_alive.password not in text
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_libpq_keyword_string_reaches_the_server_and_is_never_shown(root: Path, pg_server: Any) -> None:
    """`--db "host=... password=..."` is a server (it was taken for a SQLite file name, and an
    error printed the password)."""
    fill(root)
    conninfo = (f"host={pg_server.host} port={pg_server.port} dbname={pg_server.dbname} user={pg_server.user} "
                f"password={pg_server.password}")  # fmt: skip
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    runner = CliRunner()
    base = ["--root", str(root), "--db", conninfo, "--namespace", namespace]
    indexed = runner.invoke(cli, [*base, "index"])
    assert indexed.exit_code == 0, indexed.output
    found = runner.invoke(cli, [*base, "search", "bike", "--json"])
    assert found.exit_code == 0 and "daily/2024-05-01.md" in found.stdout
    shown = runner.invoke(cli, [*base, "status", "--json"])
    assert shown.exit_code == 0 and "password=***" in shown.stdout
    for result in (indexed, found, shown):
        assert pg_server.password not in result.output
    assert not (root / ".memdex" / "index.db").exists()


def test_backup_with_pg_dump_and_restore_into_a_new_database(root: Path, tmp_path: Path, pg_server: Any) -> None:
    """The README's operator recipe: `pg_dump -Fc -n memdex`, then `pg_restore` into a new
    database that has the vector extension; the restored index answers the same and is healthy."""
    import subprocess

    fill(root)
    namespace = f"backup-{uuid.uuid4().hex[:8]}"
    settings = pg_settings(root, pg_server.url, namespace)
    index(settings)
    before = [(r.path, r.start_line) for r in search(settings, "dentist appointment", budget_lines=None)]
    env = {"PGPASSWORD": pg_server.password, "PATH": "/usr/bin:/bin"}
    where = ["-h", pg_server.host, "-p", str(pg_server.port), "-U", pg_server.user]
    dump = tmp_path / "memdex.dump"
    subprocess.run([str(pg_server.bindir / "pg_dump"), *where, "-d", pg_server.dbname, "-Fc", "-n", "memdex", "-f", str(dump)],
                   env=env, check=True, capture_output=True)  # fmt: skip
    name = f"restored_{uuid.uuid4().hex[:8]}"
    restored_url = pg_server.create_database(name)  # from template1, which has the vector extension
    try:
        subprocess.run([str(pg_server.bindir / "pg_restore"), *where, "-d", name, "--exit-on-error", str(dump)],
                       env=env, check=True, capture_output=True)  # fmt: skip
        restored = pg_settings(root, restored_url, namespace)
        assert [(r.path, r.start_line) for r in search(restored, "dentist appointment", budget_lines=None)] == before
        from indexer.indexing.check import HEALTHY, check_index

        with open_index(restored, embedder=RecordingEmbedder()) as memory:
            assert check_index(restored, memory.engine, model_id=RecordingEmbedder().model_id).exit_code == HEALTHY
        assert index(restored).reindexed == 0  # nothing to redo: the stat cache came along
    finally:
        pg_server.drop_database(name)


def test_a_pgvector_too_old_for_iterative_scans_is_named() -> None:
    from indexer.store.postgres.connection import pgvector_too_old

    assert [pgvector_too_old(v) for v in ("0.5.1", "0.7.4", "0.8.0", "0.8.1", "0.10.0", "1.0")] == [
        True, True, False, False, False, False
    ]  # fmt: skip


def test_a_files_write_sends_as_many_statements_for_sixty_chunks_as_for_one(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunks, postings, vectors and cached vectors of a file go as arrays in one
    statement per table group, not one statement per row (executemany counts its rows)."""
    sent: list[str] = []
    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def counted(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        sent.append(str(query))
        return execute(self, query, params, **kwargs)

    def counted_many(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        rows = list(params_seq)
        sent.extend(str(query) for _ in rows)
        return executemany(self, query, rows, **kwargs)

    counts = {}
    for sections in (1, 60):
        root = tmp_path / f"root{sections}"
        body = " ".join(f"word{j}" for j in range(40))
        write(root, "notes/long.md", "".join(f"## Part {i}\n\nThe heron number {i} waded {body}.\n\n" for i in range(sections)))
        age_files(root)
        settings = pg_settings(root, pg_url)
        with open_index(settings, write=True, embedder=RecordingEmbedder()) as memory:
            monkeypatch.setattr(psycopg.Cursor, "execute", counted)
            monkeypatch.setattr(psycopg.Cursor, "executemany", counted_many)
            sent.clear()
            memory.sync()
            monkeypatch.setattr(psycopg.Cursor, "execute", execute)
            monkeypatch.setattr(psycopg.Cursor, "executemany", executemany)
            counts[sections] = len(sent)
        stored = snap(settings)
        assert len(stored["chunks"]) >= sections // 2 and len(stored["vec"]) == len(stored["chunks"])
        assert {(path, start) for path, start, *_ in stored["postings"]} == {(c[0], c[1]) for c in stored["chunks"]}
        assert [r.path for r in search(settings, "heron")][:1] == ["notes/long.md"]
    assert counts[60] == counts[1], counts
