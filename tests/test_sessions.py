"""Session transcripts as a source (issue 18): each format, written here, is found by a hybrid
search with kind ``session``, cited by its JSONL lines, read back as turns, dated by its
timestamps, filtered by ``--after``/``--kind``/``corpus``, re-read only from its tail when it
grew, followed by the watcher, and never a traceback on a hostile line."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from conftest import RecordingEmbedder, age_files, write
from mcp import Client

from indexer import make_filters, make_settings, open_index
from indexer.cli.app import cli
from indexer.config.resolve import load_configuration
from indexer.config.settings import Settings
from indexer.errors import ConfigError, PathError
from indexer.indexing.check import HEALTHY, check_index
from indexer.serve.mcp import build_server
from indexer.serve.service import IndexService
from indexer.watch.watcher import Watcher, WatchOptions


def local_day(stamp: str) -> str:
    return datetime.fromisoformat(stamp).astimezone().date().isoformat()


def jsonl(*records: Any) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def openclaw(fact: str, day: str = "2026-11-30") -> str:
    return jsonl(
        {"type": "session", "version": 3, "id": "s1", "timestamp": f"{day}T12:00:00.000Z", "cwd": "/w"},
        {"type": "model_change", "id": "m", "timestamp": f"{day}T12:00:01.000Z", "modelId": "x"},
        {"type": "message", "id": "1", "parentId": None, "timestamp": f"{day}T12:01:00.000Z",
         "message": {"role": "user", "content": [{"type": "text", "text": "Where did we land on the venue?"}]}},
        {"type": "message", "id": "2", "parentId": "1", "timestamp": f"{day}T12:02:00.000Z",
         "message": {"role": "assistant", "content": [
             {"type": "thinking", "thinking": "secret deliberation zebra"},
             {"type": "toolCall", "id": "t", "name": "calendar", "arguments": {"q": "quokka"}}]}},
        {"type": "message", "id": "3", "parentId": "2", "timestamp": f"{day}T12:02:30.000Z",
         "message": {"role": "toolResult", "toolCallId": "t", "content": [{"type": "text", "text": "free saturday"}]}},
        {"type": "message", "id": "4", "parentId": "3", "timestamp": f"{day}T12:03:00.000Z",
         "message": {"role": "assistant", "content": [{"type": "text", "text": fact}], "timestamp": 1}},
    )  # fmt: skip


def claude_code(fact: str, day: str = "2026-11-28") -> str:
    base = {"isSidechain": False, "userType": "external", "cwd": "/home/me/app", "sessionId": "u1", "version": "2.0"}
    return jsonl(
        {"type": "summary", "summary": "Dependency pinning", "leafUuid": "a2"},
        {**base, "type": "user", "uuid": "a1", "parentUuid": None, "timestamp": f"{day}T12:00:00.000Z",
         "message": {"role": "user", "content": "Why did the build break again?"}},
        {**base, "type": "assistant", "uuid": "a2", "parentUuid": "a1", "timestamp": f"{day}T12:00:09.000Z",
         "message": {"id": "msg", "type": "message", "role": "assistant", "model": "m", "content": [
             {"type": "thinking", "thinking": "secret deliberation zebra", "signature": "x"},
             {"type": "text", "text": fact},
             {"type": "tool_use", "id": "tu", "name": "Bash", "input": {"command": "pip freeze quokka"}}]}},
        {**base, "type": "user", "uuid": "a3", "parentUuid": "a2", "timestamp": f"{day}T12:00:10.000Z",
         "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu", "content": "numpy==1.26"}]}},
        {"type": "file-history-snapshot", "messageId": "a3", "snapshot": {}},
    )  # fmt: skip


def codex(fact: str, day: str = "2026-11-27") -> str:
    def item(time: str, payload: dict[str, Any], kind: str = "response_item") -> dict[str, Any]:
        return {"timestamp": f"{day}T{time}Z", "type": kind, "payload": payload}

    return jsonl(
        item("12:00:00.000", {"id": "c1", "cwd": "/w", "cli_version": "0.46.0", "source": "cli"}, "session_meta"),
        item("12:00:00.100", {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "<environment_context>cwd /w</environment_context>"}]}),
        item("12:00:01.000", {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Which port does staging use?"}]}),
        item("12:00:01.000", {"type": "user_message", "message": "Which port does staging use?"}, "event_msg"),
        item("12:00:02.000", {"model": "gpt-5-codex"}, "turn_context"),
        item("12:00:03.000", {"type": "reasoning", "summary": [{"type": "summary_text", "text": "secret deliberation zebra"}]}),
        item("12:00:04.000", {"type": "function_call", "name": "shell", "arguments": "{\"cmd\": \"quokka\"}", "call_id": "f"}),
        item("12:00:05.000", {"type": "function_call_output", "call_id": "f", "output": "6543"}),
        item("12:00:06.000", {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": fact}]}),
    )  # fmt: skip


def plain(fact: str, day: str = "2026-11-26") -> str:
    return jsonl(
        {"role": "user", "content": "What goes into the kimchi?", "timestamp": f"{day}T12:00:00Z"},
        {"role": "assistant", "content": fact, "timestamp": f"{day}T12:00:05Z"},
    )


def speech(fact: str, day: str = "2026-11-25") -> str:
    return jsonl(
        {"speaker": "Ana", "text": "Quick standup: anything blocking?", "timestamp": f"{day}T12:00:00Z", "start": 0.0},
        {"speaker": "Ben", "text": fact, "timestamp": f"{day}T12:00:20Z", "start": 20.5},
    )


# (format, session folder, file inside it, writer, fact, query, label, first day)
FORMATS = {
    "openclaw": ("oc/agents/main/sessions", "s1.jsonl", openclaw,
                 "We settled on the Lantern Boathouse by the river for Maya's party.",
                 "which boathouse did we pick for the party", "main-sessions", "2026-11-30T12:01:00+00:00"),
    "openclaw-transcripts": ("oc/transcripts", "2026-11-29/s2/transcript.jsonl", lambda f: openclaw(f, "2026-11-29"),
                             "Your passport renewal appointment is at the Oslo consulate.",
                             "passport renewal consulate", "transcripts", "2026-11-29T12:01:00+00:00"),
    "claude-code": ("claude/projects", "-home-me-app/u1.jsonl", claude_code,
                    "Numpy is pinned to 1.26 because the 2.0 wheel segfaults on import.",
                    "why is numpy pinned", "projects", "2026-11-28T12:00:00+00:00"),
    "codex": ("codex/sessions", "2026/11/27/rollout-2026-11-27T12-00-00-c1.jsonl", codex,
              "The staging database listens on port 6543.",
              "staging database port", "codex-sessions", "2026-11-27T12:00:01+00:00"),
    "speech": ("oc/transcripts", "2026-11-25/standup/transcript.jsonl", speech,
               "The invoice run moves to Thursday because the bank holiday blocks Monday.",
               "when is the invoice run", "transcripts", "2026-11-25T12:00:00+00:00"),
    "plain": ("chats", "export.jsonl", plain,
              "Grandma's kimchi takes three tablespoons of gochugaru.",
              "kimchi gochugaru grandma", "chats", "2026-11-26T12:00:00+00:00"),
}  # fmt: skip


def make_world(tmp_path: Path, **options: Any) -> Settings:
    """A memory root with one note and a session folder per format (outside the root)."""
    root = tmp_path / "memory"
    write(root, "MEMORY.md", "# Facts\n\n- The party venue question is open.\n")
    age_files(root)
    for folder, inside, writer, fact, *_ in FORMATS.values():
        write(tmp_path / folder, inside, writer(fact))
    folders = [str(tmp_path / spec[0]) for spec in FORMATS.values()]
    return make_settings(root, session_folders=folders, **options)


def synced(settings: Settings, embedder: RecordingEmbedder | None = None) -> Any:
    with open_index(settings, write=True, embedder=embedder or RecordingEmbedder()) as index:
        return index.sync()


@pytest.fixture
def world(tmp_path: Path) -> Settings:
    settings = make_world(tmp_path)
    synced(settings)
    return settings


@pytest.mark.parametrize("name", list(FORMATS))
def test_a_fact_said_only_in_a_chat_is_found_cited_and_read_back(world: Settings, name: str) -> None:
    folder, inside, _, fact, query, label, first = FORMATS[name]
    with open_index(world, embedder=RecordingEmbedder()) as index:
        hits = index.search(query, mode="hybrid", filters=make_filters(kinds=["session"]), limit=3)
        assert hits and hits[0].path == f"sessions/{label}/{inside}", hits
        top = hits[0]
        assert top.kind == "session" and top.date == local_day(first)
        lines = index.get(f"{top.path}:{top.start_line}-{top.end_line}")
    text = "\n".join(lines.lines)
    speakers = ("Ana", "Ben") if name == "speech" else ("user", "assistant")
    assert fact in text and f"{speakers[1]}: " in text
    assert f"[{datetime.fromisoformat(first).astimezone():%Y-%m-%d %H:%M}] {speakers[0]}: " in text
    assert "{" not in text  # turns, not raw JSON
    # thinking, tool calls and tool results are not indexed by default, and not shown
    assert "zebra" not in text and "quokka" not in text and "<environment_context>" not in text


def test_tool_traffic_is_indexed_when_the_setting_says_so(tmp_path: Path) -> None:
    quiet = make_world(tmp_path)
    synced(quiet)
    with open_index(quiet, embedder=RecordingEmbedder()) as index:
        assert not index.search("quokka zebra", mode="keyword")
    loud = make_settings(quiet.root, session_folders=quiet.session_folders, session_tools=True)
    report = synced(loud)
    assert report.reindexed == len(FORMATS)  # the setting changed: every transcript is read again
    with open_index(loud, embedder=RecordingEmbedder()) as index:
        found = {hit.path.split("/")[1] for hit in index.search("quokka", mode="keyword", limit=20)}
        assert found == {"main-sessions", "transcripts", "projects", "codex-sessions"}
        assert index.search("zebra deliberation", mode="keyword")
        cited = index.search("quokka", mode="keyword", filters=make_filters(path_prefix="sessions/projects/"))[0]
        assert "tool: Bash(" in "\n".join(index.get(f"{cited.path}:{cited.start_line}-{cited.end_line}").lines)


def test_chunks_are_dated_by_their_own_turns_and_filtered(tmp_path: Path) -> None:
    """A session spanning two days: each chunk has its day; --after keeps the later one only."""
    root = tmp_path / "memory"
    root.mkdir()
    write(tmp_path / "chats", "long.jsonl", jsonl(
        {"role": "user", "content": "Book the ferry to Bergen", "timestamp": "2026-10-01T10:00:00Z"},
        {"role": "assistant", "content": "Ferry booked for Friday", "timestamp": "2026-10-01T10:00:05Z"},
        {"role": "user", "content": "Cancel the ferry, we fly instead", "timestamp": "2026-10-03T10:00:00Z"},
        {"role": "assistant", "content": "Ferry cancelled, flight SK123 booked", "timestamp": "2026-10-03T10:01:00Z"},
    ))  # fmt: skip
    settings = make_settings(root, session_folders=[str(tmp_path / "chats")])
    synced(settings)
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        every = index.search("ferry", mode="keyword", budget_lines=None)
        assert sorted((h.start_line, h.end_line, h.date) for h in every) == [
            (1, 2, local_day("2026-10-01T10:00:00+00:00")), (3, 4, local_day("2026-10-03T10:00:00+00:00"))]
        later = index.search("ferry", mode="keyword", filters=make_filters(after=local_day("2026-10-02T12:00:00+00:00")))
        assert [(h.start_line, h.end_line) for h in later] == [(3, 4)]



def test_a_transcript_mixing_times_with_and_without_an_offset_is_indexed(tmp_path: Path) -> None:
    """A time without an offset is local time: a file that mixes both is chunked and dated,
    not skipped whole (naive and aware times cannot be compared)."""
    root = tmp_path / "memory"
    root.mkdir()
    write(tmp_path / "chats", "mixed.jsonl", jsonl(
        {"role": "user", "content": "where is the spare canoe paddle", "timestamp": "2026-10-01T10:00:00"},
        {"role": "assistant", "content": "behind the boathouse door", "timestamp": "2026-10-01T10:00:05Z"},
        {"role": "user", "content": "and the life vests", "timestamp": "2026-10-01T10:01:00"},
    ))  # fmt: skip
    settings = make_settings(root, session_folders=[str(tmp_path / "chats")])
    report = synced(settings)
    assert report.reindexed == 1 and report.warnings == []
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        (hit,) = index.search("canoe paddle boathouse", mode="keyword")
        assert hit.path == "sessions/chats/mixed.jsonl" and hit.date == "2026-10-01"
        assert index.get("sessions/chats/mixed.jsonl:1").lines == ["[2026-10-01 10:00] user: where is the spare canoe paddle"]

def memdex(*args: Any, env: dict[str, str] | None = None) -> Any:
    return CliRunner(env={"MEMDEX_ROOT": None, **(env or {})}).invoke(cli, [str(a) for a in args])


def test_cli_flag_search_filters_and_get(tmp_path: Path) -> None:
    settings = make_world(tmp_path)
    flags = [arg for folder in settings.session_folders for arg in ("--session-folder", folder)]
    synced(settings)  # the recording embedder; keyword search below needs no model
    base = ["--root", settings.root, *flags]
    found = memdex(*base, "search", "gochugaru", "--mode", "keyword", "--kind", "session", "--json")
    assert found.exit_code == 0, found.output
    (hit,) = json.loads(found.output)
    assert hit["path"] == "sessions/chats/export.jsonl" and hit["kind"] == "session" and hit["date"] == "2026-11-26"
    assert memdex(*base, "search", "gochugaru", "--mode", "keyword", "--kind", "note", "--json").exit_code == 1
    assert memdex(*base, "search", "gochugaru", "--mode", "keyword", "--after", "2026-11-27").exit_code == 1
    assert memdex(*base, "search", "gochugaru", "--mode", "keyword", "--before", "2026-11-26", "-q").exit_code == 0
    status = json.loads(memdex(*base, "status", "--json").output)
    assert status["session_folders"]["chats"] == str(tmp_path / "chats") and status["by_kind"]["session"]["files"] == 6
    got = memdex(*base, "get", f"{hit['path']}:{hit['start_line']}-{hit['end_line']}")
    assert got.exit_code == 0 and "assistant: Grandma's kimchi" in got.output
    # without the setting the transcript is not served; path tricks never reach it
    unset = memdex("--root", settings.root, "get", "sessions/chats/export.jsonl")
    assert unset.exit_code == 1 and unset.output.startswith("memdex: error: sessions/chats/export.jsonl: no such file")
    for trick in ("sessions/chats/../../chats/export.jsonl", "sessions/chats/.hidden.jsonl", str(tmp_path / "chats/export.jsonl")):
        refused = memdex(*base, "get", trick)
        assert refused.exit_code == 1 and refused.output.startswith("memdex: error:"), refused.output


def test_session_folders_from_file_environment_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "memory"
    (root / ".memdex").mkdir(parents=True)
    (root / ".memdex" / "config.toml").write_text('session_folders = ["../chats", "~/oc/agents/main/sessions"]\n')
    monkeypatch.setenv("HOME", str(tmp_path))
    from_file = load_configuration({"root": str(root)}, env={"HOME": str(tmp_path)}, user_file=False).settings
    assert from_file.session_folders == ((tmp_path / "chats").resolve(), tmp_path / "oc/agents/main/sessions")
    assert list(from_file.session_labels) == ["chats", "main-sessions"]
    env = {"MEMDEX_SESSION_FOLDERS": os.pathsep.join([str(tmp_path / "a" / "logs"), str(tmp_path / "b" / "logs")])}
    from_env = load_configuration({"root": str(root)}, env=env, user_file=False).settings
    assert from_env.session_labels == {"logs": tmp_path / "a/logs", "logs-2": tmp_path / "b/logs"}
    from_flag = load_configuration({"root": str(root), "session_folders": ("x", "y")}, env=env, user_file=False)
    assert from_flag.settings.session_folders == (root / "x", root / "y")
    assert from_flag.values["session_folders"].source == "flag --session-folders"
    (tmp_path / "file.jsonl").write_text("")
    with pytest.raises(ConfigError, match="is not a folder"):
        make_settings(root, session_folders=[str(tmp_path / "file.jsonl")])


def test_an_appended_message_is_searchable_and_only_the_tail_is_embedded(tmp_path: Path, engine_kind: Any) -> None:
    root = tmp_path / "memory"
    root.mkdir()
    turns = [{"role": "user" if i % 2 else "assistant", "content": f"turn {i} talks about subject{i}",
              "timestamp": f"2026-11-20T10:{i:02d}:00Z"} for i in range(40)]  # fmt: skip
    path = write(tmp_path / "chats", "long.jsonl", jsonl(*turns))
    settings = engine_kind.settings(root, session_folders=[str(tmp_path / "chats")])
    embedder = RecordingEmbedder()
    first = synced(settings, embedder)
    assert first.chunks_embedded > 4 and first.tail_only == 0
    with path.open("a", encoding="utf-8") as handle:
        handle.write(jsonl({"role": "user", "content": "Remember the wifi password is hunter-kestrel",
                            "timestamp": "2026-11-20T10:45:00Z"}))  # fmt: skip
    embedder.reset()
    second = synced(settings, embedder)
    assert second.tail_only == 1 and second.reindexed == 1
    assert 1 <= len(embedder.embedded) <= 2  # the last chunk (grown) and perhaps one new one
    assert all("subject0 " not in text and "turn 1 " not in text for text in embedder.embedded)
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        (hit,) = index.search("hunter kestrel wifi", mode="keyword", limit=1)
        assert hit.end_line == 41 and hit.path == "sessions/chats/long.jsonl"
        grown = index.store.snapshot()
        verdict = check_index(settings, index.engine, model_id=embedder.model_id)
        assert verdict.exit_code == HEALTHY, verdict.problems
    fresh = engine_kind.fresh(settings)
    synced(fresh)
    with open_index(fresh, embedder=RecordingEmbedder()) as index:
        assert index.store.snapshot() == grown  # the tail read left what a full read leaves
    # a rewrite (not an append) is read whole
    path.write_text(jsonl(*turns[:10]))
    assert synced(settings, embedder).tail_only == 0


def test_hostile_lines_are_skipped_with_one_warning_each(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    root.mkdir()
    good = {"role": "user", "content": "the orchard gate code is 4471", "timestamp": "2026-11-01T09:00:00Z"}
    bad = [
        b"this is not json",
        json.dumps({"role": "user", "content": 5}).encode(),
        json.dumps({"type": "message", "message": "just text"}).encode(),
        json.dumps({"role": 7, "content": "x"}).encode(),
        json.dumps(["a", "list"]).encode(),
        b'{"role": "user", "content": "caf\xe9 \xff"}',
        json.dumps({"role": "user", "content": "A" * (5 * 2**20)}).encode(),
        b"[" * 100000,
        json.dumps({"role": "user", "content": [{"type": ["text"], "text": "x"}]}).encode(),
        json.dumps({"type": "message", "message": {"role": "user", "content": [{"type": {"a": 1}}]}}).encode(),
    ]
    data = b"\n".join([*bad, json.dumps(good).encode()]) + b"\n"
    write(tmp_path / "chats", "hostile.jsonl", data)
    settings = make_settings(root, session_folders=[str(tmp_path / "chats")], max_file_bytes=20 * 2**20)
    report = synced(settings)
    assert report.reindexed == 1
    assert report.warnings[:5] == [f"sessions/chats/hostile.jsonl: line {n}: skipped, {why}" for n, why in [
        (1, "not JSON"), (2, "not a message of a known transcript format"),
        (3, "not a message of a known transcript format"), (4, "not a message of a known transcript format"),
        (5, "not a message of a known transcript format")]]  # fmt: skip
    assert report.warnings[5] == "sessions/chats/hostile.jsonl: 5 more lines skipped (not JSON or of no known format)"
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        (hit,) = index.search("orchard gate", mode="keyword")
        assert (hit.start_line, hit.end_line) == (11, 11)
        assert index.get("sessions/chats/hostile.jsonl:11").lines[0].endswith("user: the orchard gate code is 4471")
        assert index.get("sessions/chats/hostile.jsonl:1-10").lines == [""] * 10


def test_a_200_mb_transcript_is_read_within_its_bound_and_a_symlink_out_of_the_folder_is_skipped(
    tmp_path: Path,
) -> None:
    """Only the first session_max_file_bytes of a transcript are read: here NUL bytes, no line."""
    root = tmp_path / "memory"
    root.mkdir()
    chats = tmp_path / "chats"
    write(chats, "ok.jsonl", jsonl({"role": "user", "content": "harmless", "timestamp": "2026-11-01T09:00:00Z"}))
    with (chats / "huge.jsonl").open("wb") as handle:
        handle.truncate(200 * 2**20)  # sparse: 200 MB, of which the first 64 MiB are read
    secret = write(tmp_path, "secret.jsonl", jsonl({"role": "user", "content": "the vault combination", "timestamp": 1}))
    (chats / "link.jsonl").symlink_to(secret)
    settings = make_settings(root, session_folders=[str(chats)])
    report = synced(settings)
    assert report.reindexed == 2
    over = "sessions/chats/huge.jsonl: its first line is longer than the 64.0 MiB limit, so nothing of it is indexed"
    assert any(w.startswith(over) and "200.0 MiB is over" in w for w in report.warnings), report.warnings
    assert any(w.startswith("sessions/chats/link.jsonl: skipped, symlink leads outside") for w in report.warnings)
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        assert not index.search("vault combination", mode="keyword")
        with pytest.raises(PathError):
            index.get("sessions/chats/link.jsonl")
    past = time.time() - 10
    for name in ("huge.jsonl", "link.jsonl"):
        os.utime(chats / name, (past, past), follow_symlinks=False)
    synced(settings)
    again = synced(settings)  # the same files: no second warning
    assert again.warnings == [] and again.skipped_as_before == 1
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        assert index.store.counts_by_kind()["session"] == {"files": 2, "chunks": 1}  # no line within the bound


def test_the_watcher_picks_up_a_new_transcript_and_an_append(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    root.mkdir()
    chats = tmp_path / "chats"
    chats.mkdir()
    settings = make_settings(root, session_folders=[str(chats)])
    new_file_then_append(settings, chats, "new.jsonl", ("plant the tulip bulbs", "tulip"), ("the bulbs go in by the fence", "fence"))



def test_the_watcher_follows_a_session_folder_that_appears_after_it_started(tmp_path: Path) -> None:
    """A tool used for the first time creates its folder while the watcher runs: its
    transcripts are found without waiting for the 5-minute reconcile."""
    root = tmp_path / "memory"
    root.mkdir()
    chats = tmp_path / "later" / "chats"
    settings = make_settings(root, session_folders=[str(chats)])
    new_file_then_append(settings, chats, "first.jsonl", ("water the ferns", "ferns"), ("the orchids need less", "orchids"))


def test_the_watcher_follows_a_session_folder_deleted_and_made_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A tool's folder removed (a cleanup, a reinstall) and made again while the watcher runs:
    the transcripts gone leave the index, and the new folder's are found without waiting for
    the 5-minute reconcile. The memory root's events never stopped: no restart, no full sync."""
    root = tmp_path / "memory"
    root.mkdir()
    chats = tmp_path / "chats"
    chats.mkdir()
    settings = make_settings(root, session_folders=[str(chats)])
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index, running_watcher(index):
        write(chats, "old.jsonl", jsonl({"role": "user", "content": "prune the lilac", "timestamp": 1}))
        wait_for(lambda: watcher_found(settings, "lilac"))
        shutil.rmtree(chats)
        wait_for(lambda: not watcher_found(settings, "lilac"))
        write(chats, "new.jsonl", jsonl({"role": "user", "content": "repot the jasmine", "timestamp": 2}))
        wait_for(lambda: watcher_found(settings, "jasmine"))
        assert not [r for r in caplog.records if "stopped reporting file events" in r.getMessage()]


@contextmanager
def running_watcher(index: Any) -> Iterator[Watcher]:
    """A real watcher on ``index`` in a thread, ready, stopped on the way out."""
    watcher = Watcher(index, WatchOptions(debounce=0.05, max_wait=0.5))
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        assert watcher.ready.wait(10)
        yield watcher
    finally:
        watcher.stop()
        thread.join(10)


def new_file_then_append(
    settings: Settings, folder: Path, name: str, first: tuple[str, str], second: tuple[str, str]
) -> None:
    """With a real watcher running: a new transcript ``name`` in ``folder`` (its message
    ``first[0]``) is found by ``first[1]``, then an appended one by ``second[1]``."""
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index, running_watcher(index):
        path = write(folder, name, jsonl({"role": "user", "content": first[0], "timestamp": 1}))
        wait_for(lambda: watcher_found(settings, first[1]))
        with path.open("a") as handle:
            handle.write(jsonl({"role": "assistant", "content": second[0], "timestamp": 2}))
        wait_for(lambda: watcher_found(settings, second[1]))


def watcher_found(settings: Settings, word: str) -> bool:
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        return bool(index.search(word, mode="keyword", filters=make_filters(kinds=["session"])))


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds (no fixed sleep), or fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail("timed out waiting for the watcher")
        time.sleep(0.02)


# -- MCP ----------------------------------------------------------------------------------


@pytest.fixture
def service(world: Settings) -> Iterator[IndexService]:
    embedder = RecordingEmbedder()
    yield IndexService(world, embedder=embedder)


def with_client(service: IndexService, body: Any) -> Any:
    server = build_server(service)

    async def main() -> Any:
        async with Client(server) as client:
            return await body(client)

    try:
        return anyio.run(main)
    finally:
        service.close()


def test_mcp_corpus_citation_and_no_prompts_or_resources(service: IndexService) -> None:
    async def body(client: Client) -> Any:
        capabilities = client.server_capabilities
        search = {"query": "boathouse party venue", "mode": "keyword"}
        sessions = await client.call_tool("memory_search", {**search, "corpus": "sessions"})
        memory = await client.call_tool("memory_search", {**search, "corpus": "memory"})
        everything = await client.call_tool("memory_search", search)
        top = sessions.structured_content["results"][0]
        got = await client.call_tool("memory_get", {"path": top["citation"]})
        clash = await client.call_tool("memory_search", {**search, "corpus": "sessions", "kind": "note"})
        gone = await client.call_tool("memory_get", {"path": "sessions/chats/not-yet.jsonl"})
        outside = await client.call_tool("memory_get", {"path": "sessions/chats/../../secret.jsonl"})
        return capabilities, sessions, memory, everything, top, got, clash, gone, outside

    capabilities, sessions, memory, everything, top, got, clash, gone, outside = with_client(service, body)
    assert gone.structured_content["text"] == "" and gone.structured_content["lines"] == 0
    assert outside.is_error
    assert capabilities.tools is not None and capabilities.prompts is None and capabilities.resources is None
    assert {hit["kind"] for hit in sessions.structured_content["results"]} == {"session"}
    assert {hit["kind"] for hit in memory.structured_content["results"]} == {"memory"}
    assert {hit["kind"] for hit in everything.structured_content["results"]} == {"memory", "session"}
    assert top["citation"] == f"{top['path']}#L{top['startLine']}-L{top['endLine']}"
    assert "assistant: We settled on the Lantern Boathouse" in got.structured_content["text"]
    assert clash.is_error and "not in corpus 'sessions'" in clash.content[0].text


def test_instructions_and_readme_cite_as_the_results_do() -> None:
    from indexer.serve.mcp import INSTRUCTIONS

    assert "path#Lstart-Lend (the result's citation)" in INSTRUCTIONS
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    quoted = readme.split("For the assistant's system prompt:", 1)[1].split("\n## ", 1)[0]
    prompt = " ".join(line.removeprefix(">").strip() for line in quoted.splitlines())
    assert "`path#Lstart-Lend` (the result's `citation`)" in prompt and "path:start-end" not in prompt


# -- OpenClaw daily files, .gitignore ----------------------------------------------------------


def test_a_slugged_openclaw_daily_file_is_a_dated_daily_log(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    write(root, "memory/2026-11-30-vendor-pitch.md", "# Vendor pitch\n\nThe pitch went well.\n")
    write(root, "memory/2026-11-31-bad.md", "# Not a day\n")
    write(root, "notes/2026-11-30-elsewhere.md", "# Not a daily folder\n")
    age_files(root)
    settings = make_settings(root)
    synced(settings)
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        kinds = {path: (kind, day) for path, (kind, day, _) in index.store.file_descriptions().items()}
        hits = index.search("pitch", mode="keyword", filters=make_filters(kinds=["daily"], after="2026-11-30"))
    assert kinds == {"memory/2026-11-30-vendor-pitch.md": ("daily", "2026-11-30"),
                     "memory/2026-11-31-bad.md": ("note", None), "notes/2026-11-30-elsewhere.md": ("note", None)}  # fmt: skip
    assert [hit.path for hit in hits] == ["memory/2026-11-30-vendor-pitch.md"]


def test_the_index_folder_carries_its_own_gitignore(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    write(root, "MEMORY.md", "# Facts\n")
    synced(make_settings(root))
    assert (root / ".memdex" / ".gitignore").read_text().splitlines()[-1] == "*"
    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    synced(make_settings(root, elsewhere / "work.db"))
    assert not (elsewhere / ".gitignore").exists()  # a --db folder is the user's: nothing added
    (root / ".memdex" / ".gitignore").write_text("# mine\n")
    synced(make_settings(root))
    assert (root / ".memdex" / ".gitignore").read_text() == "# mine\n"


@pytest.mark.slow
def test_the_real_model_finds_a_chat_fact_in_plain_language_and_its_chunks_fit(tmp_path: Path) -> None:
    """Hybrid search with the real model: a question sharing no word with the chat's answer."""
    from indexer.embedding.torch_backend import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder()
    settings = make_world(tmp_path)
    synced(settings, model)  # type: ignore[arg-type]
    query = "where will the celebration be held"  # said: "We settled on the Lantern Boathouse ... party"
    with open_index(settings, embedder=model) as index:  # type: ignore[arg-type]
        assert not index.search(query, mode="keyword", filters=make_filters(kinds=["session"]))
        top = index.search(query, mode="hybrid", filters=make_filters(kinds=["session"]), limit=1)[0]
        assert top.path == "sessions/main-sessions/s1.jsonl"
        assert "Lantern Boathouse" in "\n".join(index.get(f"{top.path}:{top.start_line}-{top.end_line}").lines)
        for hit in index.search("party passport numpy port kimchi invoice", mode="keyword", budget_lines=None, limit=50):
            text = "\n".join(index.get(f"{hit.path}:{hit.start_line}-{hit.end_line}").lines)
            assert len(model._model.tokenizer(text, truncation=False)["input_ids"]) <= model._model.max_seq_length


@pytest.mark.parametrize("data", [b"a\nbb\n\nccc\n", b"a\nbb\n\nccc", b"only", b"x\n"])
def test_line_offset_finds_each_line_from_the_end(data: bytes) -> None:
    from indexer.indexing.tail import line_offset

    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == ord("\n") and i + 1 < len(data)]
    assert [line_offset(data, n) for n in range(1, len(starts) + 1)] == starts


def test_a_service_definition_keeps_the_session_folders_given_as_flags(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    root.mkdir()
    unit = memdex("--root", root, "--session-folder", "../chats", "watch", "--print-service", "systemd")
    assert unit.exit_code == 0, unit.output
    assert f"--session-folder {tmp_path / 'chats'} watch --wait-for-lock" in unit.output
    env = memdex("--root", root, "watch", "--print-service", "systemd", env={"MEMDEX_SESSION_FOLDERS": "/srv/a:/srv/b"})
    assert "--session-folder" not in env.output and "MEMDEX_SESSION_FOLDERS=/srv/a:/srv/b" in env.output


def test_a_long_message_is_indexed_without_a_warning_while_a_long_note_line_still_warns(tmp_path: Path) -> None:
    """A transcript's long assistant message is normal and its vector pools every part of it
    (indexing/windows.py): no warning per message. A Markdown line as long still warns."""
    long_text = " ".join(f"word{n}" for n in range(400)) + " the spare key is under the blue flowerpot"
    root = tmp_path / "memory"
    write(root, "MEMORY.md", f"# Facts\n\n- {long_text}\n")
    write(tmp_path / "chats", "export.jsonl", plain(long_text))
    settings = make_settings(root, session_folders=[str(tmp_path / "chats")])
    report = synced(settings)
    long_warnings = [w for w in report.warnings if "longer than" in w]
    assert [w.split(":")[0] for w in long_warnings] == ["MEMORY.md"], report.warnings
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        hits = index.search("spare key flowerpot", mode="keyword", filters=make_filters(kinds=["session"]))
        assert hits and hits[0].path == "sessions/chats/export.jsonl"


def test_transcripts_have_their_own_size_bound(tmp_path: Path) -> None:
    """A long session (over max_file_bytes, under session_max_file_bytes) is indexed, read back
    and healthy; a note of that size is still skipped; a transcript over its own bound is
    indexed within it, and read again once that bound is raised."""
    root = tmp_path / "memory"
    chats = tmp_path / "chats"
    write(root, "MEMORY.md", "# Log\n\n" + "padding words for a long note\n" * 200)
    turns = [{"role": "user", "content": f"filler message number {n} " * 4, "timestamp": "2026-11-01T09:00:00Z"}
             for n in range(60)]  # fmt: skip
    turns.append({"role": "assistant", "content": "the ferry leaves from pier nineteen", "timestamp": "2026-11-01T09:05:00Z"})
    write(chats, "long.jsonl", jsonl(*turns))
    size = (chats / "long.jsonl").stat().st_size
    assert size > 5000 and (root / "MEMORY.md").stat().st_size > 5000
    env = {"MEMDEX_MAX_FILE_BYTES": "5000", "MEMDEX_SESSION_FOLDERS": str(chats)}
    settings = load_configuration({"root": str(root)}, env=env, user_file=False).settings
    assert settings.session_max_file_bytes == 64 * 2**20
    report = synced(settings)
    assert report.reindexed == 1
    assert any(w.startswith("MEMORY.md: skipped") for w in report.warnings)
    embedder = RecordingEmbedder()
    with open_index(settings, embedder=embedder) as index:
        (hit,) = index.search("ferry pier", mode="keyword")
        assert hit.path == "sessions/chats/long.jsonl"
        assert index.get(f"{hit.path}:{hit.start_line}-{hit.end_line}").lines[-1].endswith("pier nineteen")
        verdict = check_index(settings, index.engine, model_id=embedder.model_id)
        assert verdict.exit_code == HEALTHY, verdict.problems
    tight = load_configuration({"root": str(root)}, env={**env, "MEMDEX_SESSION_MAX_FILE_BYTES": "5000"}, user_file=False)
    tight_report = synced(tight.settings)
    assert any(w.startswith("sessions/chats/long.jsonl: only its first") for w in tight_report.warnings)
    with open_index(tight.settings, embedder=RecordingEmbedder()) as index:
        assert not index.search("ferry pier", mode="keyword")  # the last line, past the bound
        assert index.search("filler message number 3", mode="keyword")
        with pytest.raises(PathError, match="limit"):
            index.get("sessions/chats/long.jsonl")
    past = time.time() - 10
    os.utime(chats / "long.jsonl", (past, past))
    assert not [w for w in synced(tight.settings).warnings if w.startswith("sessions/")]  # said once
    again = synced(settings)  # the bound raised: read although its stamp did not change
    assert again.reindexed == 1
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        assert index.search("ferry pier", mode="keyword")


def test_a_session_folder_in_a_hidden_folder_has_a_visible_label_and_syncs_by_path(tmp_path: Path) -> None:
    """~/.codex/sessions is cited as sessions/codex-sessions/... (as the README says): a label
    with a leading dot was a hidden path part, so the watcher's path syncs never read an append."""
    root = tmp_path / "memory"
    root.mkdir()
    chats = tmp_path / ".codex" / "sessions"
    path = write(chats, "rollout.jsonl", jsonl({"role": "user", "content": "otters", "timestamp": "2026-11-01T09:00:00Z"}))
    settings = make_settings(root, session_folders=[str(chats)])
    assert settings.session_labels == {"codex-sessions": chats.resolve()}
    assert synced(settings).reindexed == 1
    with path.open("a", encoding="utf-8") as handle:
        handle.write(jsonl({"role": "assistant", "content": "the beaver dam is downstream", "timestamp": "2026-11-01T09:01:00Z"}))
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index:
        assert index.sync(paths=["sessions/codex-sessions/rollout.jsonl"]).reindexed == 1
        (hit,) = index.search("beaver dam", mode="keyword")
        assert hit.path == "sessions/codex-sessions/rollout.jsonl"
        assert index.get(f"{hit.path}:2").lines[0].endswith("assistant: the beaver dam is downstream")


def test_check_is_healthy_for_a_transcript_with_a_run_of_nul_bytes(tmp_path: Path) -> None:
    """A crash can leave NUL bytes in a log: the sync skips that line and indexes the rest,
    so the check must not call the file binary (it reported it changed, forever)."""
    root = tmp_path / "memory"
    root.mkdir()
    chats = tmp_path / "chats"
    chats.mkdir()
    said = jsonl({"role": "user", "content": "the kiln fires at dawn", "timestamp": "2026-11-01T09:00:00Z"})
    (chats / "s.jsonl").write_bytes(said.encode() + b"\x00" * 4096 + b"\n")
    settings = make_settings(root, session_folders=[str(chats)])
    report = synced(settings)
    assert report.reindexed == 1 and report.warnings == ["sessions/chats/s.jsonl: line 2: skipped, not JSON"]
    embedder = RecordingEmbedder()
    with open_index(settings, embedder=embedder) as index:
        assert index.search("kiln dawn", mode="keyword")
        verdict = check_index(settings, index.engine, model_id=embedder.model_id)
        assert verdict.exit_code == HEALTHY, verdict.problems


def test_a_byte_order_mark_does_not_cost_the_first_message(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    root.mkdir()
    chats = tmp_path / "chats"
    chats.mkdir()
    said = jsonl({"role": "user", "content": "the quokka enclosure opens at nine", "timestamp": "2026-11-01T09:00:00Z"})
    (chats / "win.jsonl").write_bytes(b"\xef\xbb\xbf" + said.encode())
    settings = make_settings(root, session_folders=[str(chats)])
    assert synced(settings).warnings == []
    with open_index(settings, embedder=RecordingEmbedder()) as index:
        (hit,) = index.search("quokka enclosure", mode="keyword")
        assert index.get(f"{hit.path}:1").lines[0].endswith("user: the quokka enclosure opens at nine")
