"""The ``memdex`` command through click's CliRunner; JSON output is parsed, errors are one line.

``index`` would load the real sentence-transformers model; these tests patch
``indexer.embedding.configured.LazyEmbedder`` to a factory of ``RecordingEmbedder``
(the model is replaced, the SQLite index is real). Searches use ``--mode keyword``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import RecordingEmbedder, age_files, write

import indexer.api
import indexer.embedding.configured
from indexer.cli.app import cli

TEMPLATES = Path(__file__).resolve().parent.parent / "memory-files"

RESULT_KEYS = {"path", "start_line", "end_line", "heading", "kind", "date", "score", "snippet", "confidence"}

MEMORY = """---
title: Long-term facts
tags: [facts]
---
# Tools

- I edit everything in Helix.
- The laptop is a ThinkPad X1.

# People

Ada is my sister; she lives in Lisbon.
"""

DAILY = """# Wednesday

Went bouldering with Ada.

## Later

Fixed the flaky thermostat script.
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"MEMDEX_ROOT": None, "MEMDEX_DB": None, "MEMDEX_MODEL": None})


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> list[RecordingEmbedder]:
    """Every embedder the CLI builds is a RecordingEmbedder; returns the ones built."""
    built: list[RecordingEmbedder] = []

    def factory(*args: Any, **kwargs: Any) -> RecordingEmbedder:
        embedder = RecordingEmbedder()
        built.append(embedder)
        return embedder

    monkeypatch.setattr(indexer.embedding.configured, "LazyEmbedder", factory)
    return built


@pytest.fixture
def memory(root: Path) -> Path:
    write(root, "MEMORY.md", MEMORY)
    write(root, "daily/2024-05-01.md", DAILY)
    write(root, "notes/garden.md", "# Garden\n\nThe tomatoes need staking in June.\n")
    return root


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=True)


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, *, contains: str | None = None) -> str:
    """Non-zero exit, no traceback, exactly one stderr line starting 'memdex: error:'."""
    assert result.exit_code != 0, result.stdout
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("memdex: error:"), lines[0]
    if contains:
        assert contains in lines[0]
    return lines[0]


def index_json(runner: CliRunner, root: Path) -> dict[str, Any]:
    return ok_json(run(runner, "--root", root, "index", "--json"))


# -- init -------------------------------------------------------------------------------


def template_files() -> list[Path]:
    return sorted(p.relative_to(TEMPLATES) for p in TEMPLATES.rglob("*") if p.is_file())


def test_init_copies_templates(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "new-memory"
    result = run(runner, "init", target)
    assert result.exit_code == 0, result.output
    assert target.is_dir()
    for rel in template_files():
        assert (target / rel).read_bytes() == (TEMPLATES / rel).read_bytes(), rel
    for folder in (p for p in TEMPLATES.rglob("*") if p.is_dir()):
        assert (target / folder.relative_to(TEMPLATES)).is_dir(), f"template folder {folder.name}/ not created"


def test_init_prints_the_next_steps_index_then_an_assistant(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "new-memory"
    result = run(runner, "init", target)
    assert result.exit_code == 0, result.output
    after = result.stdout.split("\nnext:\n", 1)[1]
    index_at, connect_at = after.index(f"--root {target} index"), after.index(f"--root {target} mcp --watch")
    assert index_at < connect_at and "claude mcp add --scope user memdex -- memdex" in after


def test_init_next_steps_are_the_readme_newcomer_section(monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer.cli import init as app

    monkeypatch.setattr(app, "_memdex_path", lambda: "/home/me/memdex/.venv/bin/memdex")
    readme = (TEMPLATES.parent / "README.md").read_text(encoding="utf-8")
    assert app.next_steps(Path("/home/me/assistant-memory")).strip("\n") in readme


def test_init_templates_are_the_documented_ones() -> None:
    present = {p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*")}
    if not {"SOUL.md", "MEMORY.md"} <= present:
        pytest.skip("memory-files/ templates not written yet")
    assert {"SOUL.md", "MEMORY.md", "daily"} <= present


def test_init_never_overwrites(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "existing"
    names = [rel for rel in template_files()] or [Path("SOUL.md")]
    mine = {}
    for rel in names:
        mine[rel] = f"# mine, do not touch {rel}\n".encode()
        write(target, rel.as_posix(), mine[rel])
    write(target, "notes/unrelated.md", "keep me\n")
    result = run(runner, "init", target)
    assert result.exit_code == 0, result.output
    for rel, data in mine.items():
        assert (target / rel).read_bytes() == data
    assert (target / "notes/unrelated.md").read_text() == "keep me\n"
    if template_files():
        assert "kept existing" in result.stdout


def test_init_twice_keeps_edits(runner: CliRunner, tmp_path: Path) -> None:
    files = template_files()
    if not files:
        pytest.skip("memory-files/ has no template files yet")
    target = tmp_path / "twice"
    assert run(runner, "init", target).exit_code == 0
    edited = target / files[0]
    edited.write_text("edited by the user\n")
    result = run(runner, "init", target)
    assert result.exit_code == 0
    assert edited.read_text() == "edited by the user\n"
    assert "created" not in result.stdout


def test_init_on_a_file_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, "a-file", "x")
    result = run(runner, "init", path)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert path.read_text() == "x"


# -- index ------------------------------------------------------------------------------


def test_index_json_counts(runner: CliRunner, memory: Path, fake_model: list[RecordingEmbedder]) -> None:
    age_files(memory)
    first = index_json(runner, memory)
    assert first["files_seen"] == 3
    assert first["reindexed"] == 3
    assert first["removed"] == 0
    assert first["skipped_with_warning"] == 0
    assert first["chunks_embedded"] > 0
    assert first["warnings"] == []
    assert isinstance(first["seconds"], (int, float))

    second = index_json(runner, memory)
    assert second["files_seen"] == 3
    assert second["skipped_unchanged_stat"] == 3
    assert second["reindexed"] == 0
    assert second["chunks_embedded"] == 0

    (memory / "notes/garden.md").unlink()
    third = index_json(runner, memory)
    assert third["files_seen"] == 2
    assert third["removed"] == 1
    assert third["reindexed"] == 0


def test_index_json_reports_warnings(runner: CliRunner, memory: Path, fake_model: list[RecordingEmbedder]) -> None:
    write(memory, "blob.md", b"\x00\x01\x02")
    data = index_json(runner, memory)
    assert data["skipped_with_warning"] == 1
    assert len(data["warnings"]) == 1 and "blob.md" in data["warnings"][0]


def test_index_plain_output(runner: CliRunner, memory: Path, fake_model: list[RecordingEmbedder]) -> None:
    result = run(runner, "--root", memory, "index")
    assert result.exit_code == 0, result.output
    assert "3 files: 3 indexed" in result.stdout


def test_index_with_db_option(runner: CliRunner, memory: Path, tmp_path: Path, fake_model) -> None:
    db = tmp_path / "elsewhere" / "index.db"
    data = ok_json(run(runner, "--root", memory, "--db", db, "index", "--json"))
    assert data["reindexed"] == 3
    assert db.is_file()
    assert not (memory / ".memdex" / "index.db").exists()
    status = ok_json(run(runner, "--root", memory, "--db", db, "status", "--json"))
    assert status["files"] == 3


# -- search -----------------------------------------------------------------------------


def test_search_json(runner: CliRunner, memory: Path, fake_model) -> None:
    index_json(runner, memory)
    hits = ok_json(run(runner, "--root", memory, "search", "Helix editor", "--mode", "keyword", "--json"))
    assert isinstance(hits, list) and hits
    for hit in hits:
        assert set(hit) == RESULT_KEYS
        assert isinstance(hit["start_line"], int) and isinstance(hit["end_line"], int)
        assert 1 <= hit["start_line"] <= hit["end_line"]
        assert isinstance(hit["score"], (int, float))
    top = hits[0]
    assert top["path"] == "MEMORY.md"
    assert top["kind"] == "memory"
    assert top["date"] is None
    assert "Helix" in top["snippet"]


def test_search_result_lines_round_trip_through_get(runner: CliRunner, memory: Path, fake_model) -> None:
    """Invariant 2: `get` on a result prints exactly the result's raw lines."""
    index_json(runner, memory)
    hits = ok_json(run(runner, "--root", memory, "search", "thermostat bouldering Lisbon Helix",
                       "--mode", "keyword", "--limit", "20", "--json"))  # fmt: skip
    assert {hit["path"] for hit in hits} >= {"MEMORY.md", "daily/2024-05-01.md"}
    for hit in hits:
        raw = (memory / hit["path"]).read_text(encoding="utf-8").splitlines()
        result = run(runner, "--root", memory, "get", f"{hit['path']}:{hit['start_line']}-{hit['end_line']}")
        assert result.exit_code == 0, result.output
        assert result.stdout == "".join(line + "\n" for line in raw[hit["start_line"] - 1 : hit["end_line"]])
    daily = [hit for hit in hits if hit["path"] == "daily/2024-05-01.md"]
    assert all(hit["kind"] == "daily" and hit["date"] == "2024-05-01" for hit in daily)


def test_search_limit(runner: CliRunner, memory: Path, fake_model) -> None:
    index_json(runner, memory)
    hits = ok_json(run(runner, "--root", memory, "search", "the", "--mode", "keyword", "--limit", "1", "--json"))
    assert len(hits) <= 1


def test_search_budget_lines_and_tokens(runner: CliRunner, memory: Path, fake_model) -> None:
    index_json(runner, memory)
    query = ["search", "thermostat bouldering Lisbon Helix ThinkPad", "--mode", "keyword", "--json"]
    whole = ok_json(run(runner, "--root", memory, *query, "--budget-lines", "0"))
    assert len(whole) >= 2
    for budget in ("1", "3"):
        hits = ok_json(run(runner, "--root", memory, *query, "--budget-lines", budget))
        assert hits and sum(h["end_line"] - h["start_line"] + 1 for h in hits) <= int(budget)
    hits = ok_json(run(runner, "--root", memory, *query, "--budget-tokens", "12"))
    lines = [line for h in hits for line in (memory / h["path"]).read_text().splitlines()[h["start_line"] - 1 : h["end_line"]]]
    assert hits and sum(max(1, (len(line) + 3) // 4) for line in lines) <= 12
    bad = run(runner, "--root", memory, *query, "--budget-lines", "-1")
    assert bad.exit_code != 0 and "Traceback" not in bad.output


@pytest.mark.parametrize("intercept", [-50.0, 50.0])
def test_search_says_when_no_result_is_confident(
    runner: CliRunner, memory: Path, fake_model, monkeypatch: pytest.MonkeyPatch, intercept: float
) -> None:
    index_json(runner, memory)
    monkeypatch.setattr("indexer.retrieval.confidence.INTERCEPT", intercept)  # every confidence ~0, or ~1
    result = run(runner, "--root", memory, "search", "Helix editor", "--json")
    hits = ok_json(result)
    assert hits and all(isinstance(hit["confidence"], float) for hit in hits)  # the results still follow
    warned = "no confident match" in result.stderr
    assert warned == (intercept < 0) and (not warned or result.stderr.count("\n") == 1)
    kept = run(runner, "--root", memory, "search", "Helix editor", "--json", "--min-confidence", "0.5")
    assert (kept.exit_code, len(json.loads(kept.stdout))) == ((1, 0) if intercept < 0 else (0, len(hits)))
    keyword = ok_json(run(runner, "--root", memory, "search", "Helix editor", "--mode", "keyword", "--json"))
    assert keyword and all(hit["confidence"] is None for hit in keyword)


def test_search_no_results_json_is_empty_list_and_exit_1(runner: CliRunner, memory: Path, fake_model) -> None:
    index_json(runner, memory)
    result = run(runner, "--root", memory, "search", "xylophone", "--mode", "keyword", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout) == [] and result.stderr == ""


@pytest.mark.parametrize("query", ['"', "AND OR NOT", "NEAR(", "col:value", "*", "🙂", "'; DROP TABLE x"])
def test_search_any_query_is_safe(runner: CliRunner, memory: Path, fake_model, query: str) -> None:
    index_json(runner, memory)
    result = run(runner, "--root", memory, "search", query, "--mode", "keyword", "--json")
    assert result.exit_code in (0, 1), result.output  # 1: nothing found
    assert isinstance(json.loads(result.stdout), list) and "Traceback" not in result.output


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_search_empty_query_is_a_usage_error(runner: CliRunner, memory: Path, fake_model, query: str) -> None:
    index_json(runner, memory)
    result = run(runner, "--root", memory, "search", query)
    assert result.exit_code == 64 and result.stdout == ""
    assert_one_line_error(result, contains="the query is empty")


def test_search_quiet_prints_nothing_and_exits_by_what_it_found(runner: CliRunner, memory: Path, fake_model) -> None:
    index_json(runner, memory)
    found = run(runner, "--root", memory, "search", "-q", "tomatoes", "--mode", "keyword")
    assert found.exit_code == 0 and found.output == ""
    missing = run(runner, "--root", memory, "search", "--quiet", "xylophone", "--mode", "keyword")
    assert missing.exit_code == 1 and missing.output == ""


def test_search_jsonl_is_one_object_per_hit_per_line(runner: CliRunner, memory: Path, fake_model) -> None:
    index_json(runner, memory)
    listed = ok_json(run(runner, "--root", memory, "search", "Ada", "--mode", "keyword", "--json"))
    result = run(runner, "--root", memory, "search", "Ada", "--mode", "keyword", "--jsonl")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(listed) >= 2 and [json.loads(line) for line in lines] == listed
    assert all(set(json.loads(line)) == RESULT_KEYS for line in lines)
    none = run(runner, "--root", memory, "search", "xylophone", "--mode", "keyword", "--jsonl")
    assert none.exit_code == 1 and none.stdout == ""


def test_a_single_line_is_cited_path_n_and_get_reads_it(runner: CliRunner, memory: Path, fake_model) -> None:
    write(memory, "notes/one.md", "Marmalade is kept in the blue cupboard.\n")
    index_json(runner, memory)
    result = run(runner, "--root", memory, "search", "marmalade", "--mode", "keyword")
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.split()[1] == "notes/one.md:1", first
    got = run(runner, "--root", memory, "get", "notes/one.md:1")
    assert got.exit_code == 0 and got.stdout == "Marmalade is kept in the blue cupboard.\n"


def test_bare_memdex_prints_help_and_exits_0(runner: CliRunner) -> None:
    result = run(runner)
    assert result.exit_code == 0 and "Commands:" in result.stdout and "search" in result.stdout


@pytest.mark.parametrize("args", [["serch", "x"], ["search"], ["search", "x", "--limit", "0"], ["--no-such-flag"]])
def test_usage_errors_are_one_line_exit_64(runner: CliRunner, args: list[str]) -> None:
    result = run(runner, *args)
    assert result.exit_code == 64
    line = assert_one_line_error(result)
    assert "--help')" in line and "Usage:" not in result.output


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_help_has_examples(runner: CliRunner, command: str) -> None:
    result = run(runner, command, "--help")
    assert result.exit_code == 0
    examples = result.stdout.split("Examples:\n", 1)[1].split("\n\n")[0].splitlines()
    assert 1 <= len(examples) <= 2 and all(" memdex " in f" {line}" or line.strip().startswith("memdex ") for line in examples), examples


def test_search_plain_output(runner: CliRunner, memory: Path, fake_model) -> None:
    index_json(runner, memory)
    result = run(runner, "--root", memory, "search", "tomatoes", "--mode", "keyword")
    assert result.exit_code == 0, result.output
    assert "notes/garden.md:" in result.stdout
    result = run(runner, "--root", memory, "search", "xylophone", "--mode", "keyword")
    assert result.exit_code == 1 and result.stdout == ""  # as grep and rg: nothing found, nothing printed


def test_search_before_index_is_one_line_error(runner: CliRunner, memory: Path) -> None:
    result = run(runner, "--root", memory, "search", "Helix", "--mode", "keyword")
    assert_one_line_error(result, contains="memdex index")
    assert not (memory / ".memdex" / "index.db").exists(), "a reader must not create the index"


@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_search_bad_limit_is_rejected(runner: CliRunner, memory: Path, fake_model, limit: str) -> None:
    index_json(runner, memory)
    result = run(runner, "--root", memory, "search", "Helix", "--mode", "keyword", "--limit", limit)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "--limit" in result.stderr
    assert result.stdout == ""


def test_search_unknown_mode_is_rejected(runner: CliRunner, memory: Path, fake_model) -> None:
    index_json(runner, memory)
    result = run(runner, "--root", memory, "search", "Helix", "--mode", "telepathy")
    assert result.exit_code != 0
    assert "Traceback" not in result.output


# -- bad root ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["index", "--json"], ["search", "x", "--mode", "keyword"], ["status"], ["get", "a.md"]])
def test_missing_root_is_one_line_error(runner: CliRunner, tmp_path: Path, command: list[str], fake_model) -> None:
    result = run(runner, "--root", tmp_path / "does-not-exist", *command)
    assert_one_line_error(result, contains="does-not-exist")
    assert not (tmp_path / "does-not-exist").exists()


def test_root_that_is_a_file_is_one_line_error(runner: CliRunner, tmp_path: Path, fake_model) -> None:
    path = write(tmp_path, "not-a-folder.md", "x\n")
    assert_one_line_error(run(runner, "--root", path, "index"), contains="not-a-folder.md")


# -- get --------------------------------------------------------------------------------


def test_get_prints_exact_lines_with_frontmatter_counted(runner: CliRunner, memory: Path) -> None:
    result = run(runner, "--root", memory, "get", "MEMORY.md:1-3")
    assert result.exit_code == 0, result.output
    assert result.stdout == "---\ntitle: Long-term facts\ntags: [facts]\n"
    result = run(runner, "--root", memory, "get", "MEMORY.md:5-7")
    assert result.stdout == "# Tools\n\n- I edit everything in Helix.\n"


def test_get_single_line_and_whole_file(runner: CliRunner, memory: Path) -> None:
    assert run(runner, "--root", memory, "get", "MEMORY.md:12").stdout == "Ada is my sister; she lives in Lisbon.\n"
    assert run(runner, "--root", memory, "get", "MEMORY.md").stdout == MEMORY


def test_get_from_another_namespace_on_sqlite_is_one_line(runner: CliRunner, memory: Path, fake_model) -> None:
    """--from reads another namespace's stored text, which only a PostgreSQL index has."""
    ok_json(run(runner, "--root", memory, "index", "--json"))
    assert_one_line_error(run(runner, "--root", memory, "get", "MEMORY.md:1-3", "--from", "elsewhere"), contains="PostgreSQL")


def test_get_line_numbers(runner: CliRunner, memory: Path) -> None:
    result = run(runner, "--root", memory, "get", "-n", "daily/2024-05-01.md:3-3")
    assert result.exit_code == 0
    assert result.stdout == "     3  Went bouldering with Ada.\n"


def test_get_needs_no_index(runner: CliRunner, memory: Path) -> None:
    result = run(runner, "--root", memory, "get", "notes/garden.md:3")
    assert result.exit_code == 0
    assert result.stdout == "The tomatoes need staking in June.\n"
    assert not (memory / ".memdex").exists()


def test_get_crlf_file(runner: CliRunner, root: Path) -> None:
    write(root, "win.md", b"# Win\r\n\r\nline three\r\nline four\r\n")
    result = run(runner, "--root", root, "get", "win.md:3-4")
    assert result.stdout == "line three\nline four\n"


def test_get_end_past_eof_is_clamped(runner: CliRunner, memory: Path) -> None:
    result = run(runner, "--root", memory, "get", "notes/garden.md:2-99")
    assert result.exit_code == 0
    assert result.stdout == "\nThe tomatoes need staking in June.\n"


def test_get_refuses_dotdot(runner: CliRunner, memory: Path, tmp_path: Path) -> None:
    write(tmp_path, "x", "outside secret\n")
    write(tmp_path, "x.md", "outside secret\n")
    for target in ("../x", "../x.md:1", "notes/../../x.md"):
        result = run(runner, "--root", memory, "get", target)
        assert_one_line_error(result)
        assert "outside secret" not in result.output


def test_get_refuses_absolute_path_outside_root(runner: CliRunner, memory: Path, tmp_path: Path) -> None:
    outside = write(tmp_path, "outside.md", "outside secret\n")
    for target in (str(outside), f"{outside}:1", "/etc/passwd"):
        result = run(runner, "--root", memory, "get", target)
        assert_one_line_error(result)
        assert "outside secret" not in result.output


def test_get_refuses_symlink_out_of_root(runner: CliRunner, memory: Path, tmp_path: Path) -> None:
    outside = write(tmp_path, "outside.md", "outside secret\n")
    (memory / "link.md").symlink_to(outside)
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "n.md", "outside secret\n")
    (memory / "linked").symlink_to(elsewhere, target_is_directory=True)
    for target in ("link.md", "link.md:1", "linked/n.md:1"):
        result = run(runner, "--root", memory, "get", target)
        assert_one_line_error(result, contains="outside")
        assert "outside secret" not in result.stdout


@pytest.mark.parametrize("target", ["missing.md", "MEMORY.md:0", "MEMORY.md:5-2", "MEMORY.md:500", "MEMORY.md:3-", "notes"])
def test_get_bad_targets_are_one_line_errors(runner: CliRunner, memory: Path, target: str) -> None:
    assert_one_line_error(run(runner, "--root", memory, "get", target))


def test_get_binary_is_one_line_error(runner: CliRunner, memory: Path) -> None:
    write(memory, "blob.md", b"\x00\xff\x00")
    assert_one_line_error(run(runner, "--root", memory, "get", "blob.md"), contains="blob.md")


def test_verbose_shows_traceback(runner: CliRunner, memory: Path) -> None:
    result = run(runner, "--root", memory, "-v", "get", "../x")
    assert result.exit_code != 0
    assert not isinstance(result.exception, SystemExit)


# -- status -----------------------------------------------------------------------------


def test_status_json(runner: CliRunner, memory: Path, fake_model) -> None:
    index_json(runner, memory)
    info = ok_json(run(runner, "--root", memory, "status", "--json"))
    assert info["root"] == str(memory.resolve())
    assert info["index_path"] == str(memory.resolve() / ".memdex" / "index.db")
    assert info["files"] == 3
    assert info["chunks"] >= 3
    assert info["model"] == "test/recording"
    assert info["dimensions"] == 16
    assert set(info["by_kind"]) == {"memory", "daily", "note"}
    assert info["by_kind"]["memory"]["files"] == 1
    assert info["index_bytes"] > 0
    assert isinstance(info["last_sync"], float)
    assert info["vector_search"] in {"sqlite-vec", "numpy"}


def test_status_plain(runner: CliRunner, memory: Path, fake_model) -> None:
    index_json(runner, memory)
    result = run(runner, "--root", memory, "status")
    assert result.exit_code == 0, result.output
    assert "files:   3" in result.stdout
    assert re.search(r"^  memory +1 file +\d+ chunks?$", result.stdout, re.M), result.stdout  # not "1 files"
    synced = re.search(r"last sync: (\S+)", result.stdout)[1]
    assert datetime.fromisoformat(synced).utcoffset() is not None  # with its time zone


def test_status_before_index_is_one_line_error(runner: CliRunner, memory: Path) -> None:
    assert_one_line_error(run(runner, "--root", memory, "status", "--json"), contains="memdex index")


def test_garbage_index_is_moved_aside_and_rebuilt_on_search(runner: CliRunner, memory: Path, fake_model) -> None:
    """Automatic recovery: one warning line, the damaged file kept aside, the search answers."""
    write(memory, ".memdex/index.db", b"this is not a database at all" * 100)
    result = run(runner, "--root", memory, "search", "Helix", "--mode", "keyword", "--json")
    hits = ok_json(result)
    assert [hit["path"] for hit in hits] == ["MEMORY.md"]
    warnings = [line for line in result.stderr.splitlines() if line]
    assert len(warnings) == 1 and "moved it to index.db.corrupt-" in warnings[0], result.stderr
    assert "Traceback" not in result.stderr
    quarantined = list((memory / ".memdex").glob("index.db.corrupt-*"))
    assert [p.read_bytes()[:29] for p in quarantined] == [b"this is not a database at all"]


def test_garbage_index_while_a_writer_runs_is_one_line_error(
    runner: CliRunner, memory: Path, fake_model, settings
) -> None:
    write(memory, ".memdex/index.db", b"this is not a database at all" * 100)
    from indexer.indexing.lock import acquire_lock as _acquire_lock

    lock = _acquire_lock(settings.lock_path)
    try:
        result = run(runner, "--root", memory, "search", "Helix", "--mode", "keyword")
    finally:
        lock.close()
    assert result.exit_code == 2
    assert_one_line_error(result, contains="cannot be repaired now")


def test_index_never_writes_markdown(runner: CliRunner, memory: Path, fake_model) -> None:
    """Invariant 6: the CLI never modifies the user's Markdown."""
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in memory.rglob("*.md")}
    index_json(runner, memory)
    run(runner, "--root", memory, "search", "Helix", "--mode", "keyword", "--json")
    run(runner, "--root", memory, "get", "MEMORY.md:1-3")
    run(runner, "--root", memory, "status", "--json")
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in memory.rglob("*.md")}
    assert before == after


def test_real_process_error_is_one_line(memory: Path, tmp_path: Path) -> None:
    """Outside the runner too: ``python -m indexer get ../x`` prints one line and no traceback."""
    write(tmp_path, "x.md", "outside secret\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMDEX_")}
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "--root", str(memory), "get", "../x.md"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("memdex: error:"), done.stderr


def test_init_below_a_file_is_one_line_error(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    assert_one_line_error(run(runner, "init", str(tmp_path / "afile" / "sub")))


def test_db_below_a_file_is_one_line_error(
    runner: CliRunner, memory: Path, tmp_path: Path, fake_model: list[RecordingEmbedder]
) -> None:
    (tmp_path / "afile").write_text("x")
    result = run(runner, "--root", str(memory), "--db", str(tmp_path / "afile" / "x.db"), "index")
    assert_one_line_error(result, contains="index folder")


def test_get_of_an_unreadable_special_file_is_one_line_error(runner: CliRunner) -> None:
    result = run(runner, "--root", "/proc/self", "get", "mem")
    assert_one_line_error(result, contains="not a memory file")  # get serves only *.md
