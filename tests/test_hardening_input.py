"""Hardening, hostile input (issue 12): real files, real SQLite, the recording embedder.

- frontmatter with recursive anchors, billion laughs, too many aliases or too
  deep: one warning naming the file, the rest indexed, in index, rebuild and
  check --repair;
- any parse failure of one file is a warning for that file;
- a giant heading or title is capped, and the oversized-line warning blames
  the right cause;
- ``get`` serves only what memdex indexes; a closed pipe exits quietly; a
  newline in a file name keeps a citation on one line;
- API argument checks; a stray NUL, UTF-16 with a BOM and frontmatter-only
  notes are indexed; a line inserted in a huge paragraph re-embeds little.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import RecordingEmbedder, write
from test_cli import assert_one_line_error, ok_json, run, runner  # noqa: F401
from test_hardening_data import fake_model  # noqa: F401
from test_watch import start_watcher  # noqa: F401

from indexer import make_settings, open_index
from indexer.errors import ConfigError
from indexer.indexing.prepare import TITLE_CHARS
from indexer.sources.markdown.chunk import chunk_note
from indexer.sources.markdown.parse import parse_note

REPO = Path(__file__).resolve().parent.parent

RECURSIVE = "---\na: &a [*a]\n---\n# R\nrecursive body words\n"
NINE_LEVELS = "---\n" + "\n".join(
    [f'l0: &l0 ["{"lol" * 3}"]']
    + [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 10)]
) + "\n---\n# Laughs\nbillion body words\n"
MANY_ALIASES = "---\nx: &x word\nlist: [" + ", ".join(["*x"] * 150) + "]\n---\nmany aliases body\n"
DEEP = "---\na: " + "[" * 80 + "1" + "]" * 80 + "\n---\ndeep body words\n"
VERY_DEEP = "---\na: " + "[" * 5000 + "1" + "]" * 5000 + "\n---\nvery deep body words\n"
HOSTILE = {"rec.md": RECURSIVE, "laughs.md": NINE_LEVELS, "aliases.md": MANY_ALIASES, "deep.md": DEEP,
           "verydeep.md": VERY_DEEP}  # fmt: skip


@pytest.fixture
def hostile(root: Path) -> Path:
    write(root, "MEMORY.md", "# Facts\n\nThe tomatoes need staking in June.\n")
    for name, text in HOSTILE.items():
        write(root, name, text)
    return root


def stderr_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("command", [["index", "--json"], ["rebuild", "--json"]])
def test_hostile_frontmatter_is_one_warning_per_file_and_everything_is_indexed(
    runner: CliRunner, hostile: Path, fake_model, command: list[str]
) -> None:
    if command[0] == "rebuild":
        ok_json(run(runner, "--root", hostile, "index", "--json"))
    report = ok_json(run(runner, "--root", hostile, *command))
    warnings = [w for w in report["warnings"] if "frontmatter" in w]
    assert sorted(w.split(":")[0] for w in warnings) == sorted(HOSTILE)
    assert (hostile / ".memdex" / "index.db").stat().st_size < 2_000_000
    for words, path in [("recursive", "rec.md"), ("billion", "laughs.md"), ("tomatoes", "MEMORY.md"),
                        ("aliases", "aliases.md"), ("deep", "deep.md")]:  # fmt: skip
        hits = ok_json(run(runner, "--root", hostile, "search", "--mode", "keyword", words, "--json"))
        assert path in {hit["path"] for hit in hits}, words
    checked = ok_json(run(runner, "--root", hostile, "check", "--json"))
    assert checked["state"] == "healthy", checked


def test_hostile_frontmatter_in_check_repair(runner: CliRunner, hostile: Path, fake_model) -> None:
    result = run(runner, "--root", hostile, "check", "--repair", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["after"]["state"] == "healthy"


def test_frontmatter_bounds_keep_ordinary_frontmatter(root: Path) -> None:
    note = parse_note(b"---\ntitle: Plans\ntags: [a, b]\nday: 2024-05-01\nbase: &b {x: 1}\nuse: *b\n---\nbody\n")
    assert note.frontmatter == {"title": "Plans", "tags": ["a", "b"], "day": "2024-05-01",
                                "base": {"x": 1}, "use": {"x": 1}}  # fmt: skip
    assert note.warnings == [] and note.body_start == 8


class PickyEmbedder(RecordingEmbedder):
    """A tokenizer that fails on one character, as real tokenizers can on odd input."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if any("\u2603" in text for text in texts):
            raise ValueError("tokenizer cannot handle this text")
        return super().count_tokens(texts)


def test_one_files_parse_failure_is_a_warning_and_the_rest_is_indexed(root: Path) -> None:
    write(root, "MEMORY.md", "# Facts\n\nThe tomatoes need staking.\n")
    write(root, "snow.md", "# Snow\n\na snowman \u2603 here\n")
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=PickyEmbedder()) as index:
        report = index.sync()
        assert report.reindexed == 1 and report.skipped_with_warning == 1
        assert [w for w in report.warnings if w.startswith("snow.md: skipped, cannot parse")]
        assert index.search("tomatoes", mode="keyword")


# -- caps on what is copied into every chunk ----------------------------------------------------------


def test_huge_title_is_capped_in_every_full_text_row(root: Path, embedder: RecordingEmbedder) -> None:
    title = "Opening " + "verylongtitleword " * 12_000  # about 200 KB
    body = "\n\n".join(f"paragraph {n} about the garden and the tomatoes and more words" for n in range(60))
    write(root, "notes/big-title.md", f"---\ntitle: {title}\n---\n# Notes\n\n{body}\n")
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
        titles = [row[0] for row in index.store.connection.execute("SELECT title FROM chunks_fts")]
        assert len(titles) > 5 and max(len(t) for t in titles) <= TITLE_CHARS
        assert index.search("Opening", mode="keyword")
    assert settings.index_path.stat().st_size < 1_000_000


def test_huge_heading_is_capped_and_no_line_is_blamed(root: Path, embedder: RecordingEmbedder) -> None:
    heading = " ".join(f"word{n}" for n in range(3000))
    body = "\n".join(f"line {n} with a few ordinary words" for n in range(40))
    write(root, "notes/heading.md", f"# {heading}\n\n{body}\n")
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as index:
        report = index.sync()
        rows = list(index.store.connection.execute("SELECT heading, text FROM chunks"))
    # Only the heading's own line is longer than the window (and it is named as such).
    assert [w for w in report.warnings if "longer than" in w] == [
        "notes/heading.md:1: heading longer than the model's 64-token window; it is shortened in the heading "
        "path of the chunks below it, its own vector pools windows over all of it"
    ], report.warnings
    assert len(rows) <= 12  # 42 lines: not one chunk per line
    assert all(text.strip() for _, text in rows)
    assert all(embedder.count_tokens([h])[0] <= embedder.max_tokens // 4 for h, _ in rows)
    assert all(h.startswith("word0 word1") and h.endswith("…") for h, _ in rows)


def test_oversized_warning_blames_the_heading_path_or_the_line(root: Path, embedder: RecordingEmbedder) -> None:
    heading = " ".join(f"h{n}" for n in range(14))  # 14 tokens: under the cap of 64 // 4
    fits_alone = " ".join(f"w{n}" for n in range(58))  # fits 64 alone, not after the heading path
    too_long = " ".join(f"x{n}" for n in range(100))
    write(root, "notes/long.md", f"# {heading}\n\n{fits_alone}\n\n{too_long}\n")
    with open_index(make_settings(root), write=True, embedder=embedder) as index:
        warnings = [w for w in index.sync().warnings if "longer than" in w]
    assert any(w.startswith("notes/long.md:3: line plus its heading path") for w in warnings), warnings
    assert any(w.startswith("notes/long.md:5: line longer than") for w in warnings), warnings


# -- get, pipes and citations --------------------------------------------------------------------------


@pytest.mark.parametrize("target", [".env", ".git/config", "notes.txt", ".hidden.md", "sub/.secret.md",
                                    "linked/inner.md"])  # fmt: skip
def test_get_serves_only_memory_files(runner: CliRunner, root: Path, target: str) -> None:
    write(root, ".env", "API_KEY=secret\n")
    write(root, ".git/config", "[core]\n")
    write(root, "notes.txt", "plain text\n")
    write(root, ".hidden.md", "# hidden\n")
    write(root, "sub/.secret.md", "# secret\n")
    write(root, "real/inner.md", "# inner\n")
    (root / "linked").symlink_to(root / "real", target_is_directory=True)
    result = run(runner, "--root", root, "get", target)
    line = assert_one_line_error(result)
    assert "secret" not in result.stdout and "API_KEY" not in result.stdout
    assert any(word in line for word in ("hidden", "not a memory file", "folder symlink")), line


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def closed_early(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run memdex with stdout read for one line and then closed, like `| head -1`."""
    process = subprocess.Popen([sys.executable, "-m", "indexer", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=subprocess_env(), text=True)  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=60)
    return subprocess.CompletedProcess(args, process.returncode, first, stderr)


def test_broken_pipe_exits_quietly(root: Path, embedder: RecordingEmbedder) -> None:
    write(root, "long.md", "".join(f"line {n} about tomatoes\n" for n in range(100_000)))  # 2.4 MB
    for number in range(700):
        write(root, f"notes/n{number}.md", f"# Note {number}\n\n" + "tomatoes grow in the garden " * 8 + "\n")
    with open_index(make_settings(root), write=True, embedder=embedder) as index:
        index.sync()
    for args in (["get", "long.md"], ["search", "--mode", "keyword", "--limit", "1000", "--budget-lines", "0", "tomatoes"]):
        done = closed_early(["--root", str(root), *args])
        assert done.stdout and done.returncode == 141, (args, done.returncode, done.stderr)
        assert "error" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_newline_in_a_file_name_keeps_the_citation_on_one_line(
    runner: CliRunner, root: Path, embedder: RecordingEmbedder
) -> None:
    write(root, "two\nlines.md", "# Odd\n\nzanzibar is the word\n")
    with open_index(make_settings(root), write=True, embedder=embedder) as index:
        index.sync()
    result = run(runner, "--root", root, "search", "--mode", "keyword", "--budget-lines", "0", "zanzibar")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and "two\\nlines.md:1-3" in lines[0]
    hits = json.loads(run(runner, "--root", root, "search", "--mode", "keyword", "zanzibar", "--json").stdout)
    assert hits[0]["path"] == "two\nlines.md"


# -- the Python API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("query, limit", [("x", 10**9), ("x", 0), ("x", True), ("x", 2.5), (b"x", 5), (None, 5)])
def test_api_search_arguments_are_config_errors(root: Path, embedder: RecordingEmbedder, query, limit) -> None:
    write(root, "MEMORY.md", "# Facts\n\nx marks the spot\n")
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    with open_index(settings, embedder=embedder) as index:
        with pytest.raises(ConfigError):
            index.search(query, mode="keyword", limit=limit)
        assert index.search("x", mode="keyword", limit=1000)


# -- whole-file rejections --------------------------------------------------------------------------------


def test_a_stray_nul_does_not_make_a_file_binary(runner: CliRunner, root: Path, embedder: RecordingEmbedder) -> None:
    write(root, "nul.md", b"# Note\n\nbefore\x00after and kiwi\nsecond line\n")
    write(root, "image.md", b"\x89PNG\r\n\x1a\n" + b"kiwi " * 100)
    write(root, "zeros.md", b"kiwi" + b"\x00" * 100)
    with open_index(make_settings(root), write=True, embedder=embedder) as index:
        report = index.sync()
        assert report.reindexed == 1 and report.skipped_with_warning == 2
        assert [hit.path for hit in index.search("kiwi", mode="keyword")] == ["nul.md"]
    result = run(runner, "--root", root, "get", "nul.md:3")
    assert result.exit_code == 0 and result.stdout == "before\ufffdafter and kiwi\n"


@pytest.mark.parametrize("encoding, bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_with_a_bom_is_indexed_with_exact_lines(
    runner: CliRunner, root: Path, embedder: RecordingEmbedder, encoding: str, bom: bytes
) -> None:
    text = "---\ntitle: Wide\n---\n# Wide note\r\n\r\nthe mangosteen is ripe\r\nsecond line\r\n"
    write(root, "wide.md", bom + text.encode(encoding))
    with open_index(make_settings(root), write=True, embedder=embedder) as index:
        index.sync()
        hit = index.search("mangosteen", mode="keyword", budget_lines=None)[0]  # the whole chunk
        got = index.get(f"{hit.path}:{hit.start_line}-{hit.end_line}")
    assert got.lines[got.lines.index("the mangosteen is ripe")] == "the mangosteen is ripe"
    assert (hit.start_line, hit.end_line) == (4, 7)
    checked = json.loads(run(runner, "--root", root, "check", "--json").stdout)
    assert [p["kind"] for p in checked["problems"]] == ["drift"]  # only the recording model's name


def test_frontmatter_only_note_is_found_by_its_title(runner: CliRunner, root: Path, fake_model) -> None:
    write(root, "notes/contact.md", "---\ntitle: Dentist appointment\ntags: [health]\n---\n")
    write(root, "notes/empty-frontmatter.md", "---\n---\n")
    ok_json(run(runner, "--root", root, "index", "--json"))
    hits = ok_json(run(runner, "--root", root, "search", "--mode", "keyword", "dentist", "--json"))
    assert [(h["path"], h["start_line"], h["end_line"]) for h in hits] == [("notes/contact.md", 1, 4)]
    assert ok_json(run(runner, "--root", root, "check", "--json"))["state"] == "healthy"


# -- chunk stability ---------------------------------------------------------------------------------------


def test_a_line_inserted_in_a_huge_paragraph_re_embeds_at_most_two_chunks(root: Path) -> None:
    words = "alpha beta gamma delta editor vim coffee meeting project deadline python rust".split()
    lines = [" ".join(words[(n * 7 + k * 3) % len(words)] for k in range(3 + n % 9)) + f" n{n}" for n in range(20_000)]
    embedder = RecordingEmbedder(max_tokens=256)
    write(root, "huge.md", "# Big\n" + "\n".join(lines) + "\n")
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    for at in (3_000, 9_999, 15_500):
        lines.insert(at, f"an inserted line number {at}")
        write(root, "huge.md", "# Big\n" + "\n".join(lines) + "\n")
        embedder.reset()
        with open_index(settings, write=True, embedder=embedder) as index:
            index.sync()
        assert 1 <= len(embedder.embedded) <= 2, (at, len(embedder.embedded))


def test_huge_paragraph_chunks_stay_within_the_window() -> None:
    embedder = RecordingEmbedder(max_tokens=64)
    note = parse_note(("# H\n" + "\n".join(f"some words on line {n}" for n in range(3000)) + "\n").encode())
    chunks = chunk_note(note, count_tokens=embedder.count_tokens, max_tokens=64)
    assert all(embedder.count_tokens([c.embed_text])[0] <= 64 for c in chunks)
    covered = [n for c in chunks for n in range(c.start_line, c.end_line + 1)]
    assert covered == list(range(1, 3002))


def test_get_refuses_a_file_too_large_to_be_indexed(runner: CliRunner, root: Path) -> None:
    write(root, "huge.md", "a line of a pasted log\n" * 300_000)  # about 6.6 MiB, over the 5 MiB limit
    line = assert_one_line_error(run(runner, "--root", root, "get", "huge.md:1"))
    assert "limit" in line


def test_hostile_frontmatter_under_the_watcher(root: Path, start_watcher, caplog) -> None:
    """The running watcher logs one warning naming each hostile file, indexes it
    as text, and keeps indexing the files that follow."""
    from test_watch import keyword_paths, wait_until

    settings = make_settings(root)
    write(root, "MEMORY.md", "# Facts\n\nThe tomatoes need staking.\n")
    watcher = start_watcher()
    with caplog.at_level("WARNING", logger="indexer"):
        write(root, "rec.md", RECURSIVE)
        write(root, "laughs.md", NINE_LEVELS)
        wait_until(lambda: keyword_paths(settings, "recursive billion") == {"rec.md", "laughs.md"},
                   message="the hostile files indexed as text")  # fmt: skip
        write(root, "after.md", "# After\n\nquokka sighting\n")
        wait_until(lambda: keyword_paths(settings, "quokka") == {"after.md"}, message="the next file")
    assert watcher.alive
    named = {record.getMessage().split(":")[0] for record in caplog.records if "frontmatter" in record.getMessage()}
    assert named == {"rec.md", "laughs.md"}


def test_chunks_that_overflow_once_joined_are_split_again() -> None:
    """A tokenizer whose count of joined lines exceeds the sum of the lines' own
    counts (here: each line break costs 5 tokens) sends chunks through the final
    budget check, which splits them by lines (a regression: it once failed there)."""

    def count(texts: Sequence[str]) -> list[int]:
        return [len(text.split()) + 5 * text.count("\n") for text in texts]

    heading = " ".join(f"h{n}" for n in range(40))
    note = parse_note((f"# {heading}\n" + "\n".join(f"a b c d e f {n}" for n in range(200)) + "\n").encode())
    chunks = chunk_note(note, count_tokens=count, max_tokens=64)
    assert all(count([c.embed_text])[0] <= 64 for c in chunks)
    assert [n for c in chunks for n in range(c.start_line, c.end_line + 1)] == list(range(1, 202))
