"""Walls between agents on a shared PostgreSQL server (design invariant 9).

The schema's owner (the session server's superuser here) grants login roles
namespaces; a role sees and changes only those, through memdex and through plain
SQL on memdex's tables. A sync never removes files another root or host wrote,
and notices a file another writer replaced. Another namespace's hits are read
back from the stored text and cited with their namespace.

Every test gets its own database and its own login roles on the session's server.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from conftest import RecordingEmbedder, age_files, fill, write

from indexer import make_settings, open_index
from indexer.cli.app import cli
from indexer.config.settings import Settings
from indexer.errors import ConfigError, SchemaError

pytestmark = pytest.mark.postgres

MEMORY_A = "# Alice\n\n- Alice keeps the kayak at Loch Ness.\n- Alice's dentist is Dr. Finch.\n"
NOTE_A = "# Boat\n\nThe kayak is called Selkie.\n"
MEMORY_B = "# Bob\n\n- Bob keeps a kayak too.\n"


@dataclass
class Server:
    """One database of the session server: its owner's URL, and login roles made for the test."""

    server: Any
    name: str
    owner_url: str
    roles: dict[str, str] = field(default_factory=dict)  # role -> URL

    def role(self, label: str) -> str:
        role = f"{label}_{uuid.uuid4().hex[:8]}"
        password = secrets.token_hex(8)
        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        self.roles[role] = f"postgresql://{role}:{password}@{self.server.host}:{self.server.port}/{self.name}"
        return role

    def url(self, role: str) -> str:
        return self.roles[role]

    def owner_sql(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def db(pg_server: Any) -> Iterator[Server]:
    name = f"access_{uuid.uuid4().hex[:10]}"
    url = pg_server.create_database(name)
    made = Server(pg_server, name, url)
    try:
        yield made
    finally:
        pg_server.drop_database(name)
        for role in made.roles:
            pg_server.psql(f"DROP ROLE IF EXISTS {role}", dbname="postgres")


def memdex(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def settings_for(root: Path, url: str, namespace: str, **options: Any) -> Settings:
    return make_settings(root, url, namespace=namespace, **options)


def index(settings: Settings) -> Any:
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as memory:
        return memory.sync()


def one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("memdex: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return str(result.stderr)


def grant(db: Server, namespace: str, role: str, *extra: str) -> None:
    result = memdex("--db", db.owner_url, "--namespace", namespace, "grant", role, *extra)
    assert result.exit_code == 0, result.output


@pytest.fixture
def two_agents(db: Server, tmp_path: Path) -> dict[str, Any]:
    """alice writes ns-a, bob writes ns-b; each indexed its own root as itself."""
    alice, bob = db.role("alice"), db.role("bob")
    grant(db, "ns-a", alice)
    grant(db, "ns-b", bob)
    root_a, root_b = tmp_path / "alice", tmp_path / "bob"
    fill(root_a, {"MEMORY.md": MEMORY_A, "notes/boat.md": NOTE_A})
    fill(root_b, {"MEMORY.md": MEMORY_B})
    a = settings_for(root_a, db.url(alice), "ns-a")
    b = settings_for(root_b, db.url(bob), "ns-b")
    assert index(a).reindexed == 2 and index(b).reindexed == 1
    ids = dict(db.owner_sql("SELECT name, id FROM memdex.namespaces"))
    return {"alice": alice, "bob": bob, "a": a, "b": b, "ids": ids, "root_a": root_a, "root_b": root_b}


def test_plain_sql_as_an_agent_sees_and_changes_only_its_namespace(db: Server, two_agents: dict[str, Any]) -> None:
    ids, bob = two_agents["ids"], two_agents["bob"]
    a_id, b_id = ids["ns-a"], ids["ns-b"]
    tables = ["files", "file_stats", "chunks", "postings", "meta", "vector_cache", "chunk_vectors_16"]
    a_hash = db.owner_sql("SELECT hash FROM memdex.chunks WHERE ns = %s LIMIT 1", (a_id,))[0][0]
    before = db.owner_sql("SELECT count(*) FROM memdex.chunks WHERE ns = %s", (a_id,))
    with psycopg.connect(db.url(bob), autocommit=True) as conn:
        for table in tables:
            seen = {row[0] for row in conn.execute(f"SELECT ns FROM memdex.{table}")}
            assert seen == {b_id}, table
        assert conn.execute("SELECT name FROM memdex.namespaces").fetchall() == [("ns-b",)]
        assert conn.execute("SELECT role FROM memdex.grants").fetchall() == [(bob,)]
        assert conn.execute("SELECT count(*) FROM memdex.chunks WHERE text LIKE '%Loch Ness%'").fetchone() == (0,)
        # The embedding cache: no vector of the other namespace, even by its text hash.
        assert conn.execute("SELECT count(*) FROM memdex.vector_cache WHERE hash = %s", (a_hash,)).fetchone() == (0,)
        # Writes into the other namespace: deletes and updates find no row, inserts are refused.
        assert conn.execute("DELETE FROM memdex.files WHERE ns = %s", (a_id,)).rowcount == 0
        assert conn.execute("DELETE FROM memdex.chunks").rowcount == 1  # its own one chunk
        assert conn.execute("UPDATE memdex.namespaces SET generation = 0 WHERE id = %s", (a_id,)).rowcount == 0
        refused = [
            ("INSERT INTO memdex.files(ns, path, kind, hash) VALUES (%s, 'evil.md', 'note', 'x')", (a_id,)),
            ("INSERT INTO memdex.vector_cache VALUES (%s, 'test/recording', %s, '\\x00')", (a_id, a_hash)),
            ("UPDATE memdex.files SET ns = %s", (a_id,)),  # moving its own rows into the other namespace
            ("UPDATE memdex.namespaces SET name = 'mine' WHERE id = %s", (b_id,)),
            ("INSERT INTO memdex.grants VALUES (%s, %s, true)", (a_id, bob)),
            ("INSERT INTO memdex.namespaces(name) VALUES ('new')", ()),
            ("CREATE TABLE memdex.evil(x int)", ()),
            ("SELECT memdex.apply_privileges(%s)", (bob,)),
        ]
        for sql, params in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql, params)
        # Rows of its own namespace that point at the other's chunks: a foreign-key check ignores
        # row-level security, so the key names the chunk's namespace too.
        a_chunk = db.owner_sql("SELECT id FROM memdex.chunks WHERE ns = %s LIMIT 1", (a_id,))[0][0]
        db.owner_sql("DELETE FROM memdex.chunk_vectors_16 WHERE chunk_id = %s", (a_chunk,))  # free its slot
        attached = [
            ("INSERT INTO memdex.postings VALUES ('evil', %s, %s, 1, 1)", (b_id, a_chunk)),
            ("INSERT INTO memdex.chunk_vectors_16 VALUES (%s, %s, %s)", (a_chunk, b_id, "[" + ",".join(["0.25"] * 16) + "]")),
        ]
        for sql, params in attached:
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute(sql, params)
    assert db.owner_sql("SELECT count(*) FROM memdex.chunks WHERE ns = %s", (a_id,)) == before
    assert db.owner_sql("SELECT count(*) FROM memdex.chunks WHERE ns = %s", (b_id,)) == [(0,)]


def test_search_across_get_from_and_status_see_only_granted_namespaces(db: Server, two_agents: dict[str, Any]) -> None:
    bob, b = two_agents["bob"], two_agents["b"]
    base = ["--root", str(b.root), "--db", db.url(bob), "--namespace", "ns-b"]
    everything = memdex(*base, "search", "kayak", "--across", "all", "--mode", "keyword", "--json")
    assert everything.exit_code == 0, everything.output
    assert {hit["namespace"] for hit in json.loads(everything.stdout)} == {"ns-b"}
    assert "not granted" in one_line_error(memdex(*base, "search", "kayak", "--across", "ns-a", "--mode", "keyword"))
    assert "not granted" in one_line_error(memdex(*base, "get", "--from", "ns-a", "MEMORY.md"))
    status = memdex(*base, "status", "--json")
    assert [item["name"] for item in json.loads(status.stdout)["namespaces"]] == ["ns-b"]
    # Granted read-only: searchable and readable, never writable.
    grant(db, "ns-a", bob, "--read-only")
    found = memdex(*base, "search", "kayak", "--across", "ns-a", "--across", "ns-b", "--mode", "keyword")
    assert found.exit_code == 0 and "(ns-a) MEMORY.md:3-" in found.stdout, found.output
    got = memdex(*base, "get", "--from", "ns-a", "MEMORY.md:3")
    assert got.exit_code == 0 and got.stdout == "- Alice keeps the kayak at Loch Ness.\n", got.output
    other_root = b.root.parent / "bob-as-a"
    fill(other_root, {"MEMORY.md": MEMORY_B})
    assert "may only read" in one_line_error(
        memdex("--root", str(other_root), "--db", db.url(bob), "--namespace", "ns-a", "index")
    )
    a_id = two_agents["ids"]["ns-a"]
    with psycopg.connect(db.url(bob), autocommit=True) as conn:  # bob writes ns-b: row-level security decides
        assert conn.execute("DELETE FROM memdex.chunks WHERE ns = %s", (a_id,)).rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO memdex.meta VALUES (%s, 'k', 'v')", (a_id,))
    carol = db.role("carol")  # only read-only grants: no write privilege on any table at all
    grant(db, "ns-a", carol, "--read-only")
    with psycopg.connect(db.url(carol), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM memdex.chunks WHERE ns = %s", (a_id,)).fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("DELETE FROM memdex.chunks WHERE ns = %s", (a_id,))
    assert db.owner_sql("SELECT count(*) FROM memdex.chunks WHERE ns = %s", (a_id,))[0][0] > 0
    # Revoked: gone again, for memdex and for SQL.
    revoked = memdex("--db", db.owner_url, "--namespace", "ns-a", "revoke", bob)
    assert revoked.exit_code == 0, revoked.output
    assert "not granted" in one_line_error(memdex(*base, "search", "kayak", "--across", "ns-a", "--mode", "keyword"))
    with psycopg.connect(db.url(bob), autocommit=True) as conn:
        assert conn.execute("SELECT DISTINCT ns FROM memdex.chunks").fetchall() == [(two_agents["ids"]["ns-b"],)]
        assert conn.execute("SELECT name FROM memdex.namespaces").fetchall() == [("ns-b",)]
    listed = json.loads(memdex("--db", db.owner_url, "grants", "--json").stdout)
    assert {(g["namespace"], g["role"], g["access"]) for g in listed} == {
        ("ns-a", two_agents["alice"], "read-write"), ("ns-a", carol, "read-only"), ("ns-b", bob, "read-write")
    }


def test_grant_and_revoke_are_for_the_owner_of_a_postgresql_index(db: Server, tmp_path: Path) -> None:
    alice, bob = db.role("alice"), db.role("bob")
    lite = ["--root", str(tmp_path), "--db", str(tmp_path / "index.db"), "--namespace", "x"]
    assert "PostgreSQL-only" in one_line_error(memdex(*lite, "grant", alice))
    assert "PostgreSQL-only" in one_line_error(memdex(*lite, "revoke", alice))
    grant(db, "ns-a", alice)
    assert "only the owner" in one_line_error(memdex("--db", db.url(alice), "--namespace", "ns-a", "grant", bob))
    assert "no role" in one_line_error(memdex("--db", db.owner_url, "--namespace", "ns-a", "grant", "nobody_here"))
    assert "needs the namespace" in one_line_error(memdex("--db", db.owner_url, "grant", bob))
    assert "has no grant" in one_line_error(memdex("--db", db.owner_url, "--namespace", "ns-a", "revoke", bob))
    # bob has no grant at all: not even the schema is his to read.
    assert f"grant {bob}" in one_line_error(
        memdex("--root", str(tmp_path), "--db", db.url(bob), "--namespace", "ns-a", "search", "x")
    )


def test_an_agent_facing_a_missing_or_old_schema_is_told_the_owner_must_run_memdex(
    db: Server, tmp_path: Path
) -> None:
    alice = db.role("alice")
    fill(tmp_path / "root", {"MEMORY.md": MEMORY_A})
    as_alice = ["--root", str(tmp_path / "root"), "--db", db.url(alice), "--namespace", "ns-a"]
    assert "the owner" in one_line_error(memdex(*as_alice, "index"))  # no schema, and alice may not make one
    grant(db, "ns-a", alice)  # the owner sets up the schema and grants
    assert memdex(*as_alice, "index").exit_code == 0
    db.owner_sql("UPDATE memdex.schema_version SET version = version - 1")
    for command in (["index"], ["search", "kayak"]):
        message = one_line_error(memdex(*as_alice, *command))
        assert "owner" in message and "grants" in message, message


def test_a_sync_keeps_files_another_root_wrote(db: Server, two_agents: dict[str, Any], tmp_path: Path) -> None:
    """An empty folder (or one lacking the files) synced into a namespace removes nothing
    it did not index itself; the root that wrote a file still removes it when it is deleted."""
    a = two_agents["a"]
    empty = tmp_path / "empty"
    empty.mkdir()
    for url in (a.database_url, db.owner_url):  # the granted agent, and the owner
        report = index(settings_for(empty, url, "ns-a"))
        assert report.removed == 0 and report.left_to_other_writers == 2
        assert any("left in place" in warning for warning in report.warnings)
    # A rebuild from this root (asked for, or because another model is configured) would drop them too: refused.
    empty_a = settings_for(empty, a.database_url, "ns-a")
    with open_index(empty_a, write=True, embedder=RecordingEmbedder()) as memory, pytest.raises(
        ConfigError, match="would drop 2 files"
    ):
        memory.rebuild()
    assert "would drop 2 files" in one_line_error(
        memdex("--root", str(empty), "--db", a.database_url, "--namespace", "ns-a", "rebuild")
    )
    assert sorted(db.owner_sql(
        "SELECT f.path FROM memdex.files f JOIN memdex.namespaces n ON n.id = f.ns WHERE n.name = 'ns-a'"
    )) == [("MEMORY.md",), ("notes/boat.md",)]  # fmt: skip
    # check from the empty root: the other writer's files are a note, not drift that no repair could clear
    from indexer.indexing.check import HEALTHY, check_index

    with open_index(empty_a, embedder=RecordingEmbedder()) as memory:
        checked = check_index(empty_a, memory.engine, model_id=RecordingEmbedder().model_id)
    assert checked.exit_code == HEALTHY, checked.problems
    assert any("written by another root or host" in note for note in checked.notes)
    (two_agents["root_a"] / "notes" / "boat.md").unlink()
    report = index(a)
    assert report.removed == 1 and report.left_to_other_writers == 0


def test_a_file_another_writer_replaced_is_indexed_again(db: Server, two_agents: dict[str, Any], tmp_path: Path) -> None:
    a = two_agents["a"]
    age_files(two_agents["root_a"])
    index(a)
    assert index(a).skipped_unchanged_stat == 2
    other = tmp_path / "other"
    fill(other, {"MEMORY.md": "# Alice\n\n- Someone else wrote this.\n"})
    assert index(settings_for(other, a.database_url, "ns-a")).reindexed == 1  # the same role, another root
    report = index(a)
    assert report.rewritten_elsewhere == 1 and report.reindexed == 1 and report.skipped_unchanged_stat == 1
    assert any("MEMORY.md: rewritten in the index by another writer" in w for w in report.warnings)
    texts = db.owner_sql(
        "SELECT c.text FROM memdex.chunks c JOIN memdex.namespaces n ON n.id = c.ns "
        "WHERE n.name = 'ns-a' AND c.path = 'MEMORY.md'"
    )
    assert any("Loch Ness" in text for (text,) in texts) and not any("Someone else" in text for (text,) in texts)
    again = index(a)
    assert again.rewritten_elsewhere == 0 and again.reindexed == 0


def test_foreign_hits_are_cited_with_their_namespace_and_read_from_stored_text(
    db: Server, two_agents: dict[str, Any]
) -> None:
    import anyio
    from mcp import Client

    from indexer.serve.mcp import build_server
    from indexer.serve.service import IndexService

    bob, b = two_agents["bob"], two_agents["b"]
    grant(db, "ns-a", bob, "--read-only")
    # bob's own notes/boat.md says something else: a foreign hit must not be read from it.
    write(b.root, "notes/boat.md", "# Mine\n\nBob's own boat note.\nline 4\n")
    service = IndexService(replace(b, search_namespaces=("*",)), embedder=RecordingEmbedder())
    server = build_server(service)

    async def main() -> None:
        async with Client(server) as client:
            found = (await client.call_tool("memory_search", {"query": "kayak", "mode": "keyword"})).structured_content
            hits = {hit["namespace"]: hit for hit in found["results"]}
            own, theirs = hits["ns-b"], hits["ns-a"]
            assert own["citation"] == f"MEMORY.md#L{own['startLine']}"  # its own: unchanged
            assert theirs["citation"] == f"MEMORY.md#L{theirs['startLine']}-L{theirs['endLine']}@ns-a"
            got = (await client.call_tool("memory_get", {"path": theirs["citation"]})).structured_content
            wanted = MEMORY_A.splitlines()[theirs["startLine"] - 1 : theirs["endLine"]]
            assert "Loch Ness" in wanted[0] and got["text"] == "\n".join(wanted) and got["namespace"] == "ns-a"
            boat = (await client.call_tool("memory_get", {"path": "notes/boat.md", "namespace": "ns-a"})).structured_content
            assert boat["text"] == NOTE_A.rstrip("\n") and not boat["truncated"]
            page = (await client.call_tool(
                "memory_get", {"path": "notes/boat.md", "namespace": "ns-a", "from": 1, "lines": 1}
            )).structured_content  # fmt: skip
            assert page["text"] == "# Boat" and page["nextFrom"] == 2
            local = (await client.call_tool("memory_get", {"path": "notes/boat.md"})).structured_content
            assert local["text"].startswith("# Mine") and "namespace" not in local
            refused = await client.call_tool("memory_get", {"path": "MEMORY.md", "namespace": "ns-zzz"})
            assert refused.is_error and "not granted" in refused.content[0].text and "\n" not in refused.content[0].text

    try:
        anyio.run(main)
    finally:
        service.close()


def test_the_library_raises_the_same_errors(db: Server, two_agents: dict[str, Any]) -> None:
    b = two_agents["b"]
    across = replace(b, search_namespaces=("ns-a",))
    with pytest.raises(ConfigError, match="not granted"), open_index(across, embedder=RecordingEmbedder()) as memory:
        memory.search("kayak", mode="keyword")
    with pytest.raises(SchemaError, match="not granted"):
        index(settings_for(b.root, b.database_url, "ns-a"))


def test_a_function_an_agent_plants_in_public_is_never_called_for_the_owner(
    db: Server, two_agents: dict[str, Any], tmp_path: Path
) -> None:
    """`ensure_vector_table` runs as the owner: an unqualified call with a smallint argument
    picked an exact-type `public.ensure_vector_table(smallint)` any role could create there."""
    bob = two_agents["bob"]
    db.owner_sql(f"GRANT CREATE ON SCHEMA public TO {bob}")  # public is open to all before PostgreSQL 15
    db.owner_sql("CREATE TABLE public.planted_calls(who text)")
    db.owner_sql(f"GRANT INSERT ON public.planted_calls TO {bob}")
    with psycopg.connect(db.url(bob), autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.ensure_vector_table(dims smallint) RETURNS void LANGUAGE sql "
            "AS $$ INSERT INTO public.planted_calls VALUES (current_user) $$"
        )
    root = tmp_path / "wide"
    fill(root, {"MEMORY.md": MEMORY_B})
    wider = settings_for(root, db.url(bob), "ns-b")
    with open_index(wider, write=True, embedder=RecordingEmbedder(dimensions=24, model_id="test/wide")) as memory:
        memory.sync()  # another model's dimensions: a new vector table, made by the owner's function
    assert db.owner_sql("SELECT who FROM public.planted_calls") == []
    assert db.owner_sql("SELECT to_regclass('memdex.chunk_vectors_24') IS NOT NULL") == [(True,)]
