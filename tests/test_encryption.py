"""Encryption at rest (design invariant 10): with a key set, no file memdex writes
holds note text or names; a missing or wrong key is a one-line error that leaves
every file byte-identical; rekey, encrypt and decrypt convert only when asked.

Real SQLite files in tmp folders, through the CLI (click's CliRunner) with the
recording embedder. Needs apsw-sqlite3mc (the ``encryption`` extra); skipped
without it unless MEMDEX_REQUIRE_ENCRYPTION=1 (CI), where it fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import apsw
import pytest
from click.testing import CliRunner, Result
from conftest import RecordingEmbedder, write

import indexer.api
import indexer.embedding.configured
from indexer.store.sqlite import recovery
from indexer.api import open_index
from indexer.cli.app import cli
from indexer.config.settings import make_settings
from indexer.watch.watcher import Watcher

if not hasattr(apsw, "mc_version"):
    if os.environ.get("MEMDEX_REQUIRE_ENCRYPTION") == "1":
        raise RuntimeError("MEMDEX_REQUIRE_ENCRYPTION=1 but apsw is not apsw-sqlite3mc (pip install --force-reinstall --no-deps apsw-sqlite3mc)")
    pytest.skip("apsw-sqlite3mc is not installed", allow_module_level=True)

KEY, OTHER_KEY = "correct horse battery staple", "tr0ub4dor&3 'quoted' \"key\""
NOTES = {
    "MEMORY.md": "# People\n\nAda is my sister; she lives in Lisbon.\n",
    "daily/2024-05-01.md": "# Wednesday\n\nWent bouldering with Zebulon.\n",
    "notes/garden-plans.md": "# Garden\n\nThe tomatoes need staking in June.\n",
}
# Note text and names that no file under .memdex may hold once a key is set.
SECRETS = [b"Lisbon", b"bouldering", b"Zebulon", b"tomatoes", b"MEMORY.md", b"garden-plans", b"2024-05-01", b"Garden"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"MEMDEX_ROOT": None, "MEMDEX_DB": None, "MEMDEX_MODEL": None,
                          "MEMDEX_ENCRYPTION_KEY": None, "MEMDEX_NEW_ENCRYPTION_KEY": None})  # fmt: skip


@pytest.fixture(autouse=True)
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexer.embedding.configured, "LazyEmbedder", lambda *a, **k: RecordingEmbedder())
    monkeypatch.delenv("MEMDEX_ENCRYPTION_KEY", raising=False)


@pytest.fixture
def memory(root: Path) -> Path:
    for rel, text in NOTES.items():
        write(root, rel, text)
    return root


def run(runner: CliRunner, root: Path, *args: str, key: str | None = None, **env: str) -> Result:
    environment = {"MEMDEX_ENCRYPTION_KEY": key, **env}
    return runner.invoke(cli, ["--root", str(root), *args], env=environment, catch_exceptions=True)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def one_line_error(result: Result, contains: str) -> str:
    assert result.exit_code != 0, result.stdout
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memdex: error:"), result.stderr
    assert contains in lines[0], lines[0]
    for key in (KEY, OTHER_KEY):
        assert key not in result.output
    return lines[0]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leaks(data: bytes) -> list[bytes]:
    return [secret for secret in SECRETS if secret in data or secret.lower() in data]


def assert_no_plaintext(folder: Path) -> None:
    found = {name: leaks(data) for name, data in files_under(folder).items() if leaks(data)}
    assert not found, f"note text or names in {found}"


def search_paths(runner: CliRunner, root: Path, query: str, key: str | None) -> list[str]:
    result = ok(run(runner, root, "search", query, "--mode", "keyword", "--json", key=key))
    return [hit["path"] for hit in json.loads(result.stdout)]


def test_with_a_key_no_file_memdex_writes_holds_note_text_or_names(
    runner: CliRunner, memory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scan itself finds what an unencrypted index holds.
    plain_root = tmp_path / "plain"
    for rel, text in NOTES.items():
        write(plain_root, rel, text)
    ok(run(runner, plain_root, "index"))
    assert any(leaks(data) for data in files_under(plain_root / ".memdex").values())

    seen_rebuild_files: list[dict[str, bytes]] = []
    real_discard = recovery.discard

    def scan_then_discard(opened: Any, index_path: Path) -> None:  # the rebuild-beside file, before it goes
        temporary = recovery.temporary_path(index_path)
        seen_rebuild_files.append({p.name: p.read_bytes() for p in index_path.parent.glob(temporary.name + "*")})
        real_discard(opened, index_path)

    monkeypatch.setattr(recovery, "discard", scan_then_discard)
    ok(run(runner, memory, "index", key=KEY))
    write(memory, "notes/garden-plans.md", NOTES["notes/garden-plans.md"] + "\nAlso the tomatoes get netting.\n")
    ok(run(runner, memory, "index", key=KEY))
    assert search_paths(runner, memory, "tomatoes", KEY) == ["notes/garden-plans.md"]
    ok(run(runner, memory, "rebuild", key=KEY))
    assert seen_rebuild_files and all(files for files in seen_rebuild_files)
    for files in seen_rebuild_files:
        assert not any(leaks(data) for data in files.values()), "the rebuild-beside file holds plaintext"

    index_path = memory / ".memdex" / "index.db"
    data = bytearray(index_path.read_bytes())  # damage a page past the first: recovery quarantines and rebuilds
    data[4096 * 3 + 100 : 4096 * 3 + 300] = b"\xff" * 200
    index_path.write_bytes(bytes(data))
    result = ok(run(runner, memory, "index", key=KEY))
    assert "moved it to index.db.corrupt-" in result.stderr
    (memory / ".memdex" / "embeddings.db").write_bytes(b"not an embedding cache " * 500)
    ok(run(runner, memory, "rebuild", key=KEY))  # the damaged cache is moved aside and started afresh

    settings = make_settings(memory, encryption_key=KEY)
    with open_index(settings, write=True) as opened:  # the watcher's state file, with paths pending
        assert opened.engine.store.connection.pragma("temp_store") == 2  # temporary tables in memory, not a file
        watcher = Watcher(opened)
        watcher.pending.add("notes/garden-plans.md")
        watcher._write_status()
        assert json.loads(settings.status_path.read_text())["pending_count"] == 1
        assert_no_plaintext(memory / ".memdex")
        watcher._status.remove()

    names = sorted(files_under(memory / ".memdex"))
    assert any(".corrupt-" in name and name.startswith("index.db") for name in names), names
    assert any(".corrupt-" in name and name.startswith("embeddings.db") for name in names), names
    assert_no_plaintext(memory / ".memdex")
    assert search_paths(runner, memory, "Lisbon", KEY) == ["MEMORY.md"]


def test_missing_or_wrong_key_is_one_line_and_leaves_every_file_byte_identical(
    runner: CliRunner, memory: Path
) -> None:
    ok(run(runner, memory, "index", key=KEY))
    before = files_under(memory / ".memdex")
    for command in (["search", "Lisbon"], ["index"], ["rebuild"], ["check"], ["status"], ["encrypt"]):
        if command[0] != "encrypt":
            one_line_error(run(runner, memory, *command), "is encrypted; set MEMDEX_ENCRYPTION_KEY")
        expected = "already encrypted with another key" if command[0] == "encrypt" else "cannot decrypt"
        one_line_error(run(runner, memory, *command, key=OTHER_KEY), expected)
        assert files_under(memory / ".memdex") == before, command
    env = {**os.environ, "MEMDEX_ENCRYPTION_KEY": OTHER_KEY, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "--root", str(memory), "search", "Lisbon", "--mode", "keyword"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.startswith("memdex: error: cannot decrypt"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and OTHER_KEY not in done.stderr
    assert files_under(memory / ".memdex") == before


def test_a_first_page_that_does_not_decrypt_is_never_taken_for_damage(runner: CliRunner, memory: Path) -> None:
    """A wrong key looks like "file is not a database", as damage does: recovery must not move it aside."""
    ok(run(runner, memory, "index", key=KEY))
    index_path = memory / ".memdex" / "index.db"
    data = bytearray(index_path.read_bytes())
    data[200:300] = b"\x00" * 100
    index_path.write_bytes(bytes(data))
    before = files_under(memory / ".memdex")
    for command in (["index"], ["search", "Lisbon"], ["check", "--repair"]):
        one_line_error(run(runner, memory, *command, key=KEY), "cannot decrypt")
    assert files_under(memory / ".memdex") == before


def test_rekey_changes_the_key(runner: CliRunner, memory: Path, tmp_path: Path) -> None:
    ok(run(runner, memory, "index", key=KEY))
    before = files_under(memory / ".memdex")
    one_line_error(run(runner, memory, "rekey", key=KEY), "MEMDEX_NEW_ENCRYPTION_KEY")  # no new key given
    one_line_error(run(runner, memory, "rekey", key="not the key", MEMDEX_NEW_ENCRYPTION_KEY=OTHER_KEY), "cannot decrypt")
    assert files_under(memory / ".memdex") == before

    ok(run(runner, memory, "rekey", key=KEY, MEMDEX_NEW_ENCRYPTION_KEY=OTHER_KEY))
    one_line_error(run(runner, memory, "search", "Lisbon", key=KEY), "cannot decrypt")
    assert search_paths(runner, memory, "Lisbon", OTHER_KEY) == ["MEMORY.md"]
    assert_no_plaintext(memory / ".memdex")

    key_file = tmp_path / "new.key"
    key_file.write_text("third key\n")
    ok(run(runner, memory, "rekey", "--new-key-file", str(key_file), key=OTHER_KEY))
    one_line_error(run(runner, memory, "search", "Lisbon", key=OTHER_KEY), "cannot decrypt")
    write(memory, ".memdex/config.toml", f'encryption_key_file = "{key_file}"\n')  # the key from a file
    assert search_paths(runner, memory, "Lisbon", None) == ["MEMORY.md"]
    assert "third key" not in ok(run(runner, memory, "config", "--json")).stdout


def test_plain_index_is_refused_with_a_key_and_converted_only_when_asked(runner: CliRunner, memory: Path) -> None:
    ok(run(runner, memory, "index"))
    (memory / ".memdex" / "index.db.corrupt-20240101T000000").write_bytes(b"SQLite format 3\x00 Lisbon" * 100)
    before = files_under(memory / ".memdex")
    for command in (["index"], ["search", "Lisbon"]):
        one_line_error(run(runner, memory, *command, key=KEY), "run 'memdex encrypt'")
    assert files_under(memory / ".memdex") == before

    result = ok(run(runner, memory, "encrypt", key=KEY))
    assert "removed 1 damaged copies" in result.stdout
    assert_no_plaintext(memory / ".memdex")
    assert search_paths(runner, memory, "Lisbon", KEY) == ["MEMORY.md"]
    assert "already done" in ok(run(runner, memory, "encrypt", key=KEY)).stdout  # a re-run finishes, changes nothing
    ok(run(runner, memory, "index", key=KEY))
    assert_no_plaintext(memory / ".memdex")

    ok(run(runner, memory, "decrypt", key=KEY))
    assert search_paths(runner, memory, "Lisbon", None) == ["MEMORY.md"]
    one_line_error(run(runner, memory, "search", "Lisbon", key=KEY), "run 'memdex encrypt'")


def kept_newer_index(runner: CliRunner, memory: Path) -> Path:
    """An index a newer memdex wrote (its schema 99), kept by 'memdex rebuild' as index.db.newer-*."""
    ok(run(runner, memory, "index"))
    connection = apsw.Connection(str(memory / ".memdex" / "index.db"))
    connection.pragma("user_version", 99)
    connection.close()
    ok(run(runner, memory, "rebuild"))
    (kept,) = (memory / ".memdex").glob("index.db.newer-*")
    return kept


def test_an_index_from_a_newer_memdex_kept_by_rebuild_is_encrypted_too_never_deleted(
    runner: CliRunner, memory: Path
) -> None:
    """'memdex rebuild' keeps a newer index beside the new one (index.db.newer-*): encrypt
    and decrypt convert it like the index (it holds note text), and never delete it."""
    kept = kept_newer_index(runner, memory)
    assert leaks(kept.read_bytes())
    result = ok(run(runner, memory, "encrypt", key=KEY))
    assert "removed" not in result.stdout and kept.exists()
    assert_no_plaintext(memory / ".memdex")
    ok(run(runner, memory, "decrypt", key=KEY))
    connection = apsw.Connection(f"file:{kept}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    assert connection.pragma("user_version") == 99  # the newer memdex's index, whole, in the clear again
    connection.close()


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_kept_newer_index_that_cannot_be_converted_stops_encrypt_before_anything_changes(
    runner: CliRunner, memory: Path, tmp_path: Path, damage: str
) -> None:
    """Kept copies go first: a damaged one names itself and what to do, and the index and
    cache stay as they were (before, they were encrypted and the copy left in the clear)."""
    kept = kept_newer_index(runner, memory)
    if damage == "truncated":
        with open(kept, "r+b") as handle:
            handle.truncate(3000)  # damaged since rebuild kept it
    else:
        kept.write_bytes(b"x" * 8192)  # not SQLite any more: refused by the check before any write
    before = {name: data for name, data in files_under(memory / ".memdex").items() if name != kept.name}
    result = run(runner, memory, "encrypt", key=KEY)
    one_line_error(result, "move it out of")
    assert kept.name in result.stderr
    after = {name: data for name, data in files_under(memory / ".memdex").items() if name != kept.name}
    assert after == before  # nothing encrypted yet: the index and its cache as they were
    kept.rename(tmp_path / kept.name)
    ok(run(runner, memory, "encrypt", key=KEY))
    assert_no_plaintext(memory / ".memdex")


def test_key_sources_keyring_and_postgres(runner: CliRunner, memory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1  # type: ignore[assignment]
        entries: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.entries.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.entries[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.entries.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        env = {"MEMDEX_ENCRYPTION_KEYRING": "personal"}
        one_line_error(run(runner, memory, "index", **env), "keyring set memdex personal")
        keyring.set_password("memdex", "personal", KEY)
        ok(run(runner, memory, "index", **env))
        assert search_paths(runner, memory, "Lisbon", KEY) == ["MEMORY.md"]  # the same key as the env var
        monkeypatch.setitem(sys.modules, "keyring", None)  # not installed
        one_line_error(run(runner, memory, "index", **env), "'keyring' package is not installed")
    finally:
        keyring.set_keyring(previous)
    result = run(runner, memory, "--db", "postgresql://nobody@127.0.0.1:1/none", "search", "x", key=KEY)
    one_line_error(result, "memdex encrypts only a SQLite index")



@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
def test_a_conversion_never_writes_through_a_planted_link(runner: CliRunner, memory: Path, tmp_path: Path, command: str) -> None:
    """A dangling `index.db.convert` link: `exists()` said no, VACUUM INTO followed it and
    wrote the copy outside the folder (in plaintext, for decrypt)."""
    ok(run(runner, memory, "index"))
    if command == "decrypt":
        ok(run(runner, memory, "encrypt", key=KEY))
    outside = tmp_path / "outside.db"
    (memory / ".memdex" / "index.db.convert").symlink_to(outside)
    before = files_under(memory / ".memdex")
    one_line_error(run(runner, memory, command, key=KEY), "symbolic link")
    assert not outside.exists()
    after = files_under(memory / ".memdex")
    assert {n: after[n] for n in before if n != "write.lock"} == {n: v for n, v in before.items() if n != "write.lock"}


def test_encrypt_refuses_an_index_from_a_newer_memdex_and_leaves_it(runner: CliRunner, memory: Path) -> None:
    """Like every command but get and rebuild: exit 4, the file byte for byte (it was encrypted)."""
    ok(run(runner, memory, "index"))
    index_path = memory / ".memdex" / "index.db"
    connection = apsw.Connection(str(index_path))
    connection.pragma("user_version", 99)
    connection.pragma("journal_mode", "delete")
    connection.close()
    before = files_under(memory / ".memdex")
    result = run(runner, memory, "encrypt", key=KEY)
    assert result.exit_code == 4
    one_line_error(result, "newer than this memdex understands")
    assert files_under(memory / ".memdex") == before
