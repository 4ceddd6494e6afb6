"""An index (or embedding cache) written by a newer memdex: every command refuses it with
one line and leaves the file as it is; only ``memdex rebuild`` replaces an index, and keeps
the newer one beside it (never pruned). A newer cache is left alone and not used.

DESIGN.md: "a database newer than the code is a clear error". Two versions used in turn
must not rebuild (and, by pruning, delete) each other's index.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import apsw
import pytest
from click.testing import CliRunner, Result
from conftest import RecordingEmbedder, write

import indexer.embedding.configured
from indexer import make_settings, open_index
from indexer.cli.app import cli
from indexer.errors import NewerIndex
from indexer.serve.service import IndexService
from indexer.store.sqlite.connection import KEEP_QUARANTINED, SCHEMA_VERSION

FUTURE = SCHEMA_VERSION + 7
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexer.embedding.configured, "LazyEmbedder", lambda *a, **k: RecordingEmbedder())


def memdex(*args: object) -> Result:
    logger = logging.getLogger("indexer")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        runner = CliRunner(env={"MEMDEX_ROOT": None, "MEMDEX_DB": None, "MEMDEX_MODEL": None})
        return runner.invoke(cli, [str(a) for a in args])
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def set_version(path: Path, version: int) -> None:
    connection = apsw.Connection(str(path))
    connection.pragma("user_version", version)
    connection.pragma("wal_checkpoint(TRUNCATE)")
    connection.close()


def user_version(path: Path) -> int:
    connection = apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    try:
        return int(connection.pragma("user_version"))
    finally:
        connection.close()


@pytest.fixture
def newer(root: Path, fake_model: None) -> Path:
    """A memory root whose index says it is from a newer memdex."""
    write(root, "MEMORY.md", "# Tools\n\nI edit everything in Helix.\n")
    assert memdex("--root", root, "index").exit_code == 0
    index_path = root / ".memdex" / "index.db"
    set_version(index_path, FUTURE)
    return index_path


def beside(index_path: Path) -> list[str]:
    return sorted(p.name for p in index_path.parent.iterdir() if p.name.startswith("index.db."))


@pytest.mark.parametrize(
    "command",
    [
        ["index"], ["search", "Helix", "--mode", "keyword"], ["status"], ["check"],
        ["check", "--repair"],
    ],
    ids=lambda c: " ".join(c),
)  # fmt: skip
def test_every_command_refuses_a_newer_index_and_leaves_it(root: Path, newer: Path, command: list[str]) -> None:
    before = digest(newer)
    result = memdex("--root", root, *command)
    assert result.exit_code == 4  # its own code: check's 1 is drift, 2 corrupt
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("memdex: error: "), result.stderr
    assert f"has schema {FUTURE}, newer than this memdex understands ({SCHEMA_VERSION}); upgrade memdex" in lines[0]
    assert digest(newer) == before and user_version(newer) == FUTURE
    assert beside(newer) == []  # nothing moved aside, nothing rebuilt


@pytest.mark.parametrize("command", [["index"], ["search", "Helix", "--mode", "keyword"], ["status"], ["check"]])
def test_a_newer_index_in_rollback_journal_mode_is_not_switched_to_wal(
    root: Path, newer: Path, command: list[str]
) -> None:
    """Setting WAL mode rewrites the header: it must wait until the version is known."""
    connection = apsw.Connection(str(newer))
    connection.pragma("journal_mode", "delete")
    connection.close()
    before = digest(newer)
    result = memdex("--root", root, *command)
    assert result.exit_code != 0 and "newer than this memdex" in result.stderr
    assert digest(newer) == before


def test_watch_refuses_a_newer_index_and_exits(root: Path, newer: Path, tmp_path: Path) -> None:
    """In a process of its own: before the fix, watch rebuilt the index and went on watching."""
    before = digest(newer)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEMDEX_CONFIG": str(tmp_path / "none.toml")}
    env.pop("MEMDEX_ROOT", None)
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "--root", str(root), "watch"], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 4
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memdex: error: ") and "newer than this memdex" in lines[0]
    assert digest(newer) == before and beside(newer) == []


def test_get_reads_the_markdown_and_leaves_a_newer_index_alone(root: Path, newer: Path) -> None:
    before = digest(newer)
    result = memdex("--root", root, "get", "MEMORY.md:3")
    assert result.exit_code == 0 and result.stdout == "I edit everything in Helix.\n"
    assert digest(newer) == before and beside(newer) == []


def test_mcp_refuses_a_newer_index_before_serving(root: Path, newer: Path) -> None:
    before = digest(newer)
    result = memdex("--root", root, "mcp")
    assert result.exit_code == 4
    assert result.stderr.strip().startswith("memdex: error: ") and "newer than this memdex" in result.stderr
    assert digest(newer) == before and beside(newer) == []


def test_a_served_writer_stops_on_a_newer_index_instead_of_rebuilding_it(root: Path, newer: Path) -> None:
    before = digest(newer)
    service = IndexService(make_settings(root), watch=True, embedder=RecordingEmbedder())
    service.start(warm_up=False)
    try:
        assert service._thread is not None
        service._thread.join(timeout=60)  # returns: retrying cannot help (before: rebuilt it, then watched)
        assert not service._thread.is_alive()
        assert service.writer_state == "stopped" and "newer than this memdex" in (service.writer_note or "")
        with pytest.raises(NewerIndex):
            with service.reader():
                pass
    finally:
        service.close()
    assert digest(newer) == before and beside(newer) == []


def test_rebuild_keeps_the_newer_index_beside_and_never_prunes_it(root: Path, newer: Path) -> None:
    before = digest(newer)
    first = memdex("--root", root, "rebuild", "--json")
    assert first.exit_code == 0, first.output
    assert "written by a newer memdex" in first.stderr
    (kept,) = beside(newer)
    assert kept.startswith("index.db.newer-")
    assert digest(newer.parent / kept) == before  # the newer memdex's file, byte for byte
    assert user_version(newer) == SCHEMA_VERSION
    found = memdex("--root", root, "search", "Helix", "--mode", "keyword", "--json")
    assert found.exit_code == 0 and "MEMORY.md" in found.stdout
    # More recoveries than are kept: damaged copies are pruned, the newer ones never.
    for _ in range(KEEP_QUARANTINED + 1):
        newer.write_bytes(b"\0" * 4096)  # damaged: moved aside as .corrupt-*, pruned to the newest ones
        assert memdex("--root", root, "index").exit_code == 0
    set_version(newer, FUTURE)
    assert memdex("--root", root, "rebuild").exit_code == 0
    names = beside(newer)
    assert sum(n.startswith("index.db.newer-") for n in names) == 2
    assert sum(n.startswith("index.db.corrupt-") for n in names) == KEEP_QUARANTINED
    assert digest(newer.parent / kept) == before


def test_a_newer_embedding_cache_is_left_alone_and_not_used(root: Path, fake_model: None, caplog: Any) -> None:
    write(root, "MEMORY.md", "# Tools\n\nI edit everything in Helix.\n")
    assert memdex("--root", root, "index").exit_code == 0
    cache_path = root / ".memdex" / "embeddings.db"
    set_version(cache_path, 3)
    before = digest(cache_path)
    embedder = RecordingEmbedder()
    settings = make_settings(root)
    with caplog.at_level(logging.WARNING, logger="indexer"):
        with open_index(settings, write=True, embedder=embedder) as index:
            report = index.rebuild()
    assert report.chunks_from_cache == 0 and embedder.embedded  # its vectors are not trusted
    assert any("embedding cache" in r.getMessage() and "newer than this memdex" in r.getMessage() for r in caplog.records)
    assert digest(cache_path) == before and user_version(cache_path) == 3
    assert not list(cache_path.parent.glob("embeddings.db.corrupt-*"))
    with open_index(settings, embedder=embedder) as index:
        assert index.search("Helix", mode="hybrid")
