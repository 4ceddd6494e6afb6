"""``status``'s files and chunks by kind without reading every chunk (issue 21): SQLite keeps
each file's chunk count (``files.chunk_count``, checked by ``check``); PostgreSQL counts the
chunks per path from the ``chunks_by_path`` index in one statement. Both engines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import apsw
from conftest import EngineKind, RecordingEmbedder, write
from test_sessions_growth import append, status_and_check, synced, turns

from indexer import make_settings, open_index
from indexer.indexing.check import CORRUPT, HEALTHY


def counted(settings: Any) -> dict[str, dict[str, int]]:
    """Files and chunks by kind, counted from the index's full content."""
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        snap = index.store.snapshot()
    kinds = {path: kind for path, kind, *_ in snap["files"]}
    chunks = Counter(kinds[path] for path, *_ in snap["chunks"])
    files = Counter(kinds.values())
    return {kind: {"files": files[kind], "chunks": chunks[kind]} for kind in files}


def test_status_counts_by_kind_follow_writes_appends_and_deletes(engine_kind: EngineKind, tmp_path: Path) -> None:
    root, chats = tmp_path / "memory", tmp_path / "chats"
    write(root, "MEMORY.md", "# Facts\n\n- the spare key is under the flowerpot\n\n# More\n\n- the boat is blue\n")
    write(root, "notes/a.md", "# A\n\none\n\n# B\n\ntwo\n\n# C\n\nthree\n")
    write(root, "daily/2024-05-01.md", "# Day\n\nrain\n")
    log = write(chats, "s.jsonl", turns(*(f"the ferry number {n} leaves from pier nineteen " * 8 for n in range(12))))
    settings = engine_kind.settings(root, session_folders=[str(chats)])
    synced(settings)
    before = counted(settings)["session"]["chunks"]
    append(log, turns(*(f"more chatter number {n} " * 8 for n in range(12)), minute=30))  # a transcript that grew
    (root / "notes" / "a.md").unlink()
    write(root, "notes/b.md", "# B\n\nfour\n")
    assert synced(settings).tail_only == 1 and before > 2  # its chunks before the last one stay
    assert counted(settings)["session"]["chunks"] > before
    status, verdict = status_and_check(settings)
    assert status["by_kind"] == counted(settings) and status["by_kind"]["session"]["chunks"] > 1
    assert status["chunks"] == sum(kind["chunks"] for kind in counted(settings).values())
    assert verdict.exit_code == HEALTHY, verdict.as_dict()


def tables_read(index: Any) -> set[str]:
    """The tables SQLite reads for ``counts_by_kind`` (its authorizer sees every column read)."""
    seen: set[str] = set()

    def authorizer(action: int, table: str | None, *_: Any) -> int:
        if action == apsw.SQLITE_READ and table:
            seen.add(table)
        return apsw.SQLITE_OK

    connection = index.store.connection
    connection.authorizer = authorizer
    try:
        index.store.counts_by_kind()
    finally:
        connection.authorizer = None
    return seen


def test_sqlite_status_reads_no_chunk_and_check_sees_a_wrong_kept_count(root: Path, do_sync: Any) -> None:
    write(root, "MEMORY.md", "# Facts\n\n- one\n\n# More\n\n- two\n")
    do_sync()
    settings = make_settings(root)
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        assert tables_read(index) == {"files"}
    connection = apsw.Connection(str(settings.index_path))
    connection.execute("UPDATE files SET chunk_count = chunk_count + 1 WHERE path = 'MEMORY.md'")
    connection.close()
    status, verdict = status_and_check(settings)
    assert verdict.exit_code == CORRUPT
    assert "1 files whose kept chunk count is off" in [p["message"] for p in verdict.as_dict()["problems"]]


def test_an_index_from_before_the_kept_counts_is_counted_when_migrated(root: Path, do_sync: Any) -> None:
    write(root, "MEMORY.md", "# Facts\n\n- one\n\n# More\n\n- two\n")
    write(root, "daily/2024-05-01.md", "# Day\n\nrain\n")
    do_sync()
    settings = make_settings(root)
    expected = counted(settings)
    connection = apsw.Connection(str(settings.index_path))  # as the schema before the kept count left it
    version = connection.pragma("user_version")
    connection.execute("DROP INDEX files_kind_chunks; ALTER TABLE files DROP COLUMN chunk_count")
    connection.pragma("user_version", version - 1)
    connection.close()
    do_sync()
    status, verdict = status_and_check(settings)
    assert status["by_kind"] == expected and verdict.exit_code == HEALTHY
