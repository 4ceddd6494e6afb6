"""What `memdex index` reports matches what it did: chunk counters, skip counts,
warnings that are said once per bad file (not on every run), and a progress bar
that moves while the model works and is not garbled by warnings.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import RecordingEmbedder, age_files, snapshot, write

import indexer.api
import indexer.embedding.configured
import indexer.cli.app
import indexer.cli.write
from indexer import make_settings, open_index
from indexer.cli.app import cli
from indexer.indexing.check import HEALTHY, check_index

SAME = "# Same\n\nthe very same sentence in every copy\n"
# Unmistakably not text (an image header and every byte value, NULs throughout).
BINARY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2


def chunk_total(settings, embedder) -> int:
    return len(snapshot(settings, embedder)["chunks"])


# -- chunk counters -------------------------------------------------------------------------


def test_identical_files_count_every_chunk(root, settings, embedder, do_sync) -> None:
    """Ten copies of one note: one text goes to the model ("1 embedded"), the nine other
    chunks are "deduplicated"; a later copy takes its vector from the cache."""
    for n in range(10):
        write(root, f"copy-{n}.md", SAME)
    report = do_sync()
    assert chunk_total(settings, embedder) == 10
    assert len(embedder.embedded) == report.chunks_embedded == 1
    assert report.chunks_deduplicated == 9 and report.chunks_from_cache == 0
    assert report.chunks_embedded + report.chunks_from_cache + report.chunks_deduplicated == 10

    embedder.reset()
    write(root, "copy-10.md", SAME)
    again = do_sync()
    assert embedder.embedded == [] and again.chunks_embedded == 0
    assert again.chunks_from_cache == 1 and again.chunks_deduplicated == 0


def test_chunk_counters_add_up_over_groups(root, settings, embedder, do_sync, monkeypatch) -> None:
    """Across several embedding groups, each chunk written is counted exactly once."""
    import indexer.indexing.writer

    monkeypatch.setattr(indexer.indexing.writer, "EMBED_GROUP", 3)
    for n in range(12):
        write(root, f"note-{n:02d}.md", f"# Note\n\nfact {n % 4} about the lighthouse\n")
    report = do_sync()
    assert len(embedder.embedded) == report.chunks_embedded == len(set(embedder.embedded)) == 4
    assert report.chunks_embedded + report.chunks_from_cache + report.chunks_deduplicated == 12


# -- skip counts and warnings said once ----------------------------------------------------------


def make_bad_files(root: Path, outside: Path) -> None:
    write(root, "aaa-good.md", "# Good\n\nthe aardvark is fine\n")
    write(root, "binary.md", BINARY)
    write(root, "huge.md", "# Huge\n\n" + "a long line of words\n" * 80)
    os.symlink(root / "missing.md", root / "broken.md")
    write(outside, "secret.md", "# Secret\n\noutside the root\n")
    os.symlink(outside / "secret.md", root / "escape.md")
    with open(os.fsencode(root) + b"/caf\xe9.md", "wb") as handle:
        handle.write(b"# Cafe\n\nespresso\n")


BAD = {"binary.md", "huge.md", "broken.md", "escape.md"}  # and the one whose name is not UTF-8


@pytest.fixture
def bad_root(root: Path, tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    make_bad_files(root, outside)
    age_files(root)  # stat checks can trust the mtimes
    past = os.stat(root / "aaa-good.md").st_mtime
    for link in ("broken.md", "escape.md"):
        os.utime(root / link, (past, past), follow_symlinks=False)
    return root


@pytest.fixture
def small_limit(root: Path):
    return make_settings(root, max_file_bytes=1000)


def skip_warnings(report) -> list[str]:
    return [w for w in report.warnings if ": skipped, " in w]


def test_skip_count_matches_the_skip_warnings(bad_root, small_limit, embedder, do_sync) -> None:
    """Every file skipped with a warning is counted, whether the scan skipped it (broken or
    outside symlink, name not UTF-8) or the read did (binary, too large)."""
    report = do_sync(settings=small_limit)
    assert len(skip_warnings(report)) == 5, report.warnings
    assert report.skipped_with_warning == 5
    assert {p for p, *_ in snapshot(small_limit, embedder)["files"]} == {"aaa-good.md"}


def test_unchanged_bad_files_are_skipped_silently_until_they_change(
    bad_root, small_limit, embedder, do_sync, tmp_path
) -> None:
    """The second run says nothing about the same bad files (counted as skipped "as before"),
    `status` lists them, `check` finds the index healthy, and the index equals a fresh
    rebuild. A bad file that changes is looked at again: fixed, it is indexed; still bad,
    it is warned about once more."""
    do_sync(settings=small_limit)
    again = do_sync(settings=small_limit)
    assert again.warnings == [] and again.skipped_with_warning == 0
    assert again.skipped_as_before == 5

    with open_index(small_limit, embedder=embedder) as index:
        listed = {item["path"]: item["reason"] for item in index.status()["skipped"]}
        assert check_index(small_limit, index.engine, model_id=embedder.model_id).exit_code == HEALTHY
    assert set(listed) == BAD | {"caf\\udce9.md"}
    assert "binary" in listed["binary.md"], listed
    assert listed["broken.md"] == "broken symlink"
    assert snapshot(small_limit, embedder) == fresh_rebuild_with(small_limit, tmp_path)

    (bad_root / "binary.md").write_text("# Binary no more\n\nthe okapi\n")
    (bad_root / "broken.md").unlink()
    past = os.stat(bad_root / "aaa-good.md").st_mtime
    for rel in ("binary.md", "huge.md"):  # huge.md touched, still too large: warned about again, once
        os.utime(bad_root / rel, (past, past))
    third = do_sync(settings=small_limit)
    assert [w.split(":")[0] for w in skip_warnings(third)] == ["huge.md"]
    assert third.skipped_with_warning == 1 and third.skipped_as_before == 2
    with open_index(small_limit, embedder=embedder) as index:
        listed = {item["path"] for item in index.status()["skipped"]}
        assert check_index(small_limit, index.engine, model_id=embedder.model_id).exit_code == HEALTHY
    assert listed == {"huge.md", "escape.md", "caf\\udce9.md"}
    assert "binary.md" in {p for p, *_ in snapshot(small_limit, embedder)["files"]}
    assert snapshot(small_limit, embedder) == fresh_rebuild_with(small_limit, tmp_path)


def fresh_rebuild_with(settings, tmp_path: Path) -> dict[str, Any]:
    fresh = make_settings(settings.root, tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}" / "index.db",
                          max_file_bytes=settings.max_file_bytes)  # fmt: skip
    embedder = RecordingEmbedder()
    with open_index(fresh, write=True, embedder=embedder) as index:
        index.sync()
    return snapshot(fresh, embedder)


def test_raising_the_size_limit_indexes_a_file_skipped_as_too_large(bad_root, small_limit, embedder, do_sync) -> None:
    do_sync(settings=small_limit)
    report = do_sync(settings=make_settings(bad_root))  # the default limit: huge.md fits
    assert "huge.md" in {p for p, *_ in snapshot(small_limit, embedder)["files"]}
    assert report.reindexed == 1


# -- progress ----------------------------------------------------------------------------------


class ProgressSpy(RecordingEmbedder):
    """Notes the progress reported so far each time the model is called."""

    def __init__(self) -> None:
        super().__init__()
        self.latest: tuple[int, int] = (0, 0)
        self.seen_at_calls: list[tuple[int, int]] = []

    def progress(self, done: int, total: int) -> None:
        assert done >= self.latest[0], "progress went backwards"
        self.latest = (done, total)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.seen_at_calls.append(self.latest)
        return super().embed(texts)


def test_progress_moves_while_the_model_embeds(root, settings) -> None:
    """300 new one-chunk notes fit in one embedding group; the bar used to sit at 0 until
    everything was written. Now it advances between the model's calls."""
    for n in range(300):
        write(root, f"notes/n-{n:03d}.md", f"# Note {n}\n\nfact number {n} about tides\n")
    spy = ProgressSpy()
    with open_index(settings, write=True, embedder=spy) as index:
        index.sync(progress=spy.progress)
    assert len(spy.seen_at_calls) >= 3
    assert any(0 < done < total for done, total in spy.seen_at_calls[1:]), spy.seen_at_calls
    assert spy.latest == (300, 300)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@contextmanager
def terminal() -> Iterator[FakeTerminal]:
    """stderr as a terminal (so `memdex index` draws its bar), with the CLI's logging on it.
    Set up inside the test: pytest puts its own stderr back between a fixture and the test."""
    screen = FakeTerminal()
    logger = logging.getLogger("indexer")
    saved = (sys.stderr, logger.handlers[:], logger.level, logger.propagate)
    sys.stderr = screen
    try:
        indexer.cli.app._configure_logging(0)
        yield screen
    finally:
        sys.stderr, logger.handlers[:], logger.propagate = saved[0], saved[1], saved[3]
        logger.setLevel(saved[2])


def test_warnings_are_printed_after_the_progress_bar_not_over_it(root, settings) -> None:
    for n in range(40):
        write(root, f"n-{n:02d}.md", f"# Note {n}\n\nfact {n}\n")
    write(root, "binary.md", BINARY)
    with terminal() as shown, open_index(settings, write=True, embedder=RecordingEmbedder()) as index:
        report = indexer.cli.write._with_progress(index.sync, "indexing", False)
    screen = shown.getvalue()
    assert report.skipped_with_warning == 1
    warning = "memdex: warning: binary.md: skipped"
    assert screen.count(warning) == 1
    assert "100%" in screen and screen.index(warning) > screen.rindex("100%"), screen
    assert screen.endswith("\n") and not screen[screen.index(warning):].count("\r"), "bar redrawn over the warning"


# -- the CLI's one-line summary and status -------------------------------------------------------------


@pytest.fixture
def fake_model(monkeypatch) -> None:
    monkeypatch.setattr(indexer.embedding.configured, "LazyEmbedder", lambda *a, **k: RecordingEmbedder())


def memdex(*args: object):
    logger = logging.getLogger("indexer")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        return CliRunner(env={"MEMDEX_ROOT": None, "MEMDEX_DB": None, "MEMDEX_MODEL": None}).invoke(
            cli, [str(a) for a in args]
        )
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[2]
        logger.setLevel(saved[1])


def test_cli_summary_and_status_show_duplicates_and_skipped_files(root, fake_model) -> None:
    for n in range(10):
        write(root, f"copy-{n}.md", SAME)
    write(root, "binary.md", BINARY)
    age_files(root)
    first = memdex("--root", root, "index")
    assert first.exit_code == 0, first.output
    assert "1 skipped;" in first.stdout and "1 embedded, 0 from cache, 9 duplicates" in first.stdout
    assert first.stderr.count("binary.md: skipped") == 1
    second = memdex("--root", root, "index")
    assert second.exit_code == 0, second.output
    assert "1 skipped (1 as before, see 'memdex status')" in second.stdout
    assert second.stderr == ""
    status = memdex("--root", root, "status")
    assert [line for line in status.stdout.splitlines() if line.startswith("skipped:")] == [
        f"skipped: binary.md: {json.loads(memdex('--root', root, 'status', '--json').stdout)['skipped'][0]['reason']}"
    ]
    data = json.loads(memdex("--root", root, "index", "--json").stdout)
    assert data["skipped_as_before"] == 1 and data["skipped_with_warning"] == 0
