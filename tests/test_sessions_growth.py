"""A transcript that keeps growing (issue 21, defects left open by issue 18): past its size
bound it keeps what was indexed (said once; ``status`` and ``check`` tell), and a bad line
read before is not warned about again on every append. Both engines."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from conftest import EngineKind, RecordingEmbedder, write
from test_sessions import jsonl

from indexer import open_index
from indexer.config.settings import Settings
from indexer.errors import PathError
from indexer.indexing.check import HEALTHY, check_index
from indexer.sources.read import read_excerpt

PATH = "sessions/chats/s.jsonl"


def turns(*texts: str, minute: int = 0) -> str:
    return jsonl(*(
        {"role": "user", "content": text, "timestamp": f"2026-11-01T09:{minute + n:02d}:00Z"}
        for n, text in enumerate(texts)
    ))  # fmt: skip


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def synced(settings: Settings) -> Any:
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index:
        return index.sync()


def found(settings: Settings, query: str) -> list[str]:
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        return [hit.path for hit in index.search(query, mode="keyword")]


def status_and_check(settings: Settings) -> tuple[dict[str, Any], Any]:
    embedder = RecordingEmbedder()
    with open_index(settings, embedder=embedder) as index:
        return index.status(), check_index(settings, index.engine, model_id=embedder.model_id)


def test_a_transcript_that_grows_past_its_bound_keeps_what_was_indexed(engine_kind: EngineKind, tmp_path: Path) -> None:
    """Growing past ``session_max_file_bytes`` lost every chunk of the transcript (review of
    issue 18): now the lines indexed before stay searchable, one warning says so, later appends
    say nothing more, status lists it, check is healthy with a note; a raised bound indexes the rest."""
    root, chats = tmp_path / "memory", tmp_path / "chats"
    write(root, "MEMORY.md", "# Facts\n\n- the spare key is under the flowerpot\n")
    log = write(chats, "s.jsonl", turns("the ferry leaves from pier nineteen", "filler words " * 20))
    bound = 3 * log.stat().st_size
    settings = engine_kind.settings(root, session_folders=[str(chats)], session_max_file_bytes=bound)
    assert synced(settings).reindexed == 2
    chatter = (f"more filler chatter number {n} " * 6 for n in range(30))
    filler = turns(*chatter, "the lighthouse keeper waved", minute=5)
    assert len(filler) > bound
    append(log, filler)

    grown = synced(settings)
    assert grown.removed == 0 and grown.reindexed == 0
    (warning,) = grown.warnings
    assert warning.startswith(f"{PATH}: skipped, its new lines are not indexed (the lines indexed before stay")
    assert warning.endswith(" MiB limit")
    assert found(settings, "ferry pier nineteen") == [PATH]  # searchable a minute ago: still
    assert found(settings, "lighthouse keeper") == []
    with open_index(settings, embedder=RecordingEmbedder()) as index:  # and get serves what it cites
        (hit,) = index.search("ferry pier nineteen", mode="keyword")
        assert index.get(f"{PATH}:{hit.start_line}-{hit.end_line}").lines[0].endswith("pier nineteen")
        with pytest.raises(PathError, match="limit"):
            index.get(PATH)  # the whole file is not served
        with pytest.raises(PathError, match="past the first"):
            index.get(f"{PATH}:1-40")  # nor its lines past the bound
    options = {"sessions": settings.session_labels, "session_max_bytes": bound}
    excerpt = read_excerpt(root, PATH, **options)
    assert excerpt.lines[0].endswith("pier nineteen") and excerpt.next_line == len(excerpt.lines) + 1
    with pytest.raises(PathError, match="past the first"):
        read_excerpt(root, PATH, start=excerpt.next_line, **options)

    append(log, turns("and the otters came back", minute=40))
    again = synced(settings)
    assert again.warnings == [] and again.skipped_as_before == 1 and again.removed == 0  # said once
    assert found(settings, "ferry pier nineteen") == [PATH]
    assert synced(settings).warnings == []  # unchanged since: skipped as before, nothing read
    status, verdict = status_and_check(settings)
    assert [entry["path"] for entry in status["skipped"]] == [PATH]
    assert status["by_kind"]["session"]["files"] == 1
    assert verdict.exit_code == HEALTHY, verdict.problems
    assert any(PATH in note and "grew past session_max_file_bytes" in note for note in verdict.notes), verdict.notes

    raised = dataclasses.replace(settings, session_max_file_bytes=64 * 2**20)
    rest = synced(raised)
    assert rest.reindexed == 1 and rest.tail_only == 1 and rest.warnings == []
    assert found(raised, "lighthouse keeper") == [PATH] and found(raised, "ferry pier nineteen") == [PATH]
    status, verdict = status_and_check(raised)
    assert status["skipped"] == [] and verdict.exit_code == HEALTHY and verdict.notes == [], verdict.as_dict()
    fresh = engine_kind.fresh(raised)
    synced(fresh)
    with open_index(raised, embedder=RecordingEmbedder()) as a, open_index(fresh, embedder=RecordingEmbedder()) as b:
        assert a.store.snapshot() == b.store.snapshot()


def test_a_transcript_rewritten_past_its_bound_loses_its_rows(engine_kind: EngineKind, tmp_path: Path) -> None:
    """Only a log that grew keeps its rows: one whose indexed lines changed is skipped whole."""
    root, chats = tmp_path / "memory", tmp_path / "chats"
    root.mkdir()
    log = write(chats, "s.jsonl", turns("the ferry leaves from pier nineteen", "filler words " * 20))
    bound = 3 * log.stat().st_size
    settings = engine_kind.settings(root, session_folders=[str(chats)], session_max_file_bytes=bound)
    assert synced(settings).reindexed == 1
    with log.open("r+b") as handle:  # the same file (inode), its first line changed, then past the bound
        handle.write(b'{"role": "user", "content": "the ferry leaves from pier twenty!!')
        handle.seek(0, 2)
        handle.write(turns(*(f"more filler chatter number {n} " * 6 for n in range(30)), minute=5).encode())
    report = synced(settings)
    (warning,) = report.warnings
    assert report.removed == 1 and warning.startswith(f"{PATH}: skipped, ") and "indexed before" not in warning
    assert found(settings, "ferry pier") == []


def test_a_bad_line_is_warned_about_once_however_often_the_transcript_grows(
    engine_kind: EngineKind, tmp_path: Path
) -> None:
    """Lines after the last chunk's start are parsed again on every append: a line over 4 MiB
    (or not JSON) there was warned about again each time (review of issue 18). Now only lines
    that were not whole before are; a line that was being written is warned about once done."""
    root, chats = tmp_path / "memory", tmp_path / "chats"
    root.mkdir()
    log = write(chats, "s.jsonl", turns("the ferry leaves from pier nineteen"))
    append(log, '{"role": "user", "content": "' + "x" * (4 * 2**20) + '"}\n')  # line 2: over 4 MiB
    append(log, "not json at all\n")  # line 3
    settings = engine_kind.settings(root, session_folders=[str(chats)])
    first = synced(settings)
    assert first.warnings == [f"{PATH}: line 2: skipped, longer than 4 MiB", f"{PATH}: line 3: skipped, not JSON"]
    append(log, turns("the otters came back", minute=5) + '{"role": "user", "con')  # line 5 is being written
    second = synced(settings)
    assert second.tail_only == 1 and second.warnings == []
    assert found(settings, "otters") == [PATH]
    append(log, "tent is broken\n")  # line 5, done: not JSON
    third = synced(settings)
    assert third.tail_only == 1 and third.warnings == [f"{PATH}: line 5: skipped, not JSON"]
