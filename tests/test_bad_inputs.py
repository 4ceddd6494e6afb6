"""Bad inputs: each is indexed or skipped with a one-line warning, and the rest of the folder is indexed.

Every test keeps two good notes, one sorting before and one after the bad input,
and checks that both are searchable in keyword mode afterwards. Tests that take
the ``settings`` fixture run on both engines: SQLite, and a namespace of the
session's PostgreSQL server.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import RecordingEmbedder, age_files, snapshot, write

import indexer.indexing.sync
from indexer import make_settings, open_index
from indexer.config.settings import Settings
from indexer.indexing.report import SyncReport

GOOD = {
    "aaa-first.md": ("# Aardvark\n\nThe aardvark digs burrows at night.\n", "aardvark"),
    "zzz-last.md": ("# Zeppelin\n\nThe zeppelin floated over the harbour.\n", "zeppelin"),
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, root: Path) -> Settings:
    """The memory root's settings, on each engine."""
    if request.param == "sqlite":
        return make_settings(root)
    return make_settings(root, request.getfixturevalue("pg_url"), namespace=f"bad-{uuid.uuid4().hex[:10]}")


# -- helpers ------------------------------------------------------------------------


def write_good(root: Path) -> None:
    for rel, (text, _) in GOOD.items():
        write(root, rel, text)


def keyword_paths(settings: Settings, embedder: RecordingEmbedder, query: str) -> set[str]:
    with open_index(settings, embedder=embedder) as index:
        return {hit.path for hit in index.search(query, mode="keyword", limit=50)}


def assert_good_searchable(settings: Settings, embedder: RecordingEmbedder) -> None:
    for rel, (_, word) in GOOD.items():
        assert rel in keyword_paths(settings, embedder, word), f"{rel} not searchable for {word!r}"


def indexed_files(settings: Settings, embedder: RecordingEmbedder) -> set[str]:
    return {row[0] for row in snapshot(settings, embedder)["files"]}


def chunks_of(settings: Settings, embedder: RecordingEmbedder, rel: str) -> list[tuple]:
    return [row for row in snapshot(settings, embedder)["chunks"] if row[0] == rel]


def assert_warnings_single_line(report: SyncReport) -> None:
    for message in report.warnings:
        assert "\n" not in message and "\r" not in message, f"multi-line warning: {message!r}"


def one_warning_about(report: SyncReport, name: str) -> str:
    """The one single-line warning that names ``name``."""
    assert_warnings_single_line(report)
    matching = [message for message in report.warnings if name in message]
    assert len(matching) == 1, f"expected one warning naming {name!r}, got {report.warnings!r}"
    return matching[0]


def fresh_rebuild(root: Path, tmp_path: Path, like: Settings | None = None) -> dict:
    """Snapshot of a brand-new index of the same folder (invariant 1), on ``like``'s engine."""
    if like is not None and like.database_url:
        fresh = make_settings(root, like.database_url, namespace=f"fresh-{uuid.uuid4().hex[:10]}")
    else:
        fresh = make_settings(root, tmp_path / "fresh" / "index.db")
    embedder = RecordingEmbedder()
    with open_index(fresh, write=True, embedder=embedder) as index:
        index.sync()
    return snapshot(fresh, embedder)


class HookedEmbedder(RecordingEmbedder):
    """Runs ``hook`` once, inside the first ``embed`` call: after every file was read, before any write."""

    def __init__(self, hook: Callable[[], None]) -> None:
        super().__init__()
        self.hook = hook
        self.fired = False

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not self.fired:
            self.fired = True
            self.hook()
        return super().embed(texts)


# -- frontmatter and encoding ---------------------------------------------------------


def test_broken_yaml_frontmatter_is_indexed_as_text(root, settings, embedder, do_sync) -> None:
    write_good(root)
    write(root, "broken.md", "---\ntags: [unclosed, quokka\n---\n# Broken\n\nThe quokka smiles.\n")
    report = do_sync()
    message = one_warning_about(report, "broken.md")
    assert "YAML" in message
    assert report.reindexed == 3
    # the frontmatter lines are text now: nothing is hidden from search
    assert "broken.md" in keyword_paths(settings, embedder, "quokka")
    assert "broken.md" in keyword_paths(settings, embedder, "unclosed")
    chunks = chunks_of(settings, embedder, "broken.md")
    assert min(row[1] for row in chunks) == 1
    assert_good_searchable(settings, embedder)


def test_frontmatter_that_is_not_a_mapping_is_not_hidden(root, settings, embedder, do_sync) -> None:
    """Valid YAML that is a list, not key/value pairs, must not vanish from search silently."""
    write_good(root)
    write(root, "listy.md", "---\n- wombat\n- platypus\n---\n# Listy\n\nbody text here\n")
    report = do_sync()
    assert_warnings_single_line(report)
    found = keyword_paths(settings, embedder, "wombat")
    warned = [m for m in report.warnings if "listy.md" in m]
    assert "listy.md" in found and warned, "list-valued frontmatter must be indexed as text, with a warning"
    assert_good_searchable(settings, embedder)


def test_invalid_utf8_is_indexed_with_replacement_character(root, settings, embedder, do_sync) -> None:
    write_good(root)
    write(root, "latin1.md", b"# Caf\xe9\n\nMeeting at the caf\xe9 with Rosalind.\n")
    report = do_sync()
    message = one_warning_about(report, "latin1.md")
    assert "UTF-8" in message
    assert "latin1.md" in keyword_paths(settings, embedder, "Rosalind")
    texts = " ".join(row[4] for row in chunks_of(settings, embedder, "latin1.md"))
    assert "caf\ufffd" in texts
    assert_good_searchable(settings, embedder)


def test_byte_order_mark_is_fine(root, settings, embedder, do_sync) -> None:
    write_good(root)
    write(root, "bom.md", "\ufeff# Heading\n\nbommy text\n".encode())
    report = do_sync()
    assert report.warnings == []
    chunks = chunks_of(settings, embedder, "bom.md")
    assert chunks and chunks[0][1] == 1 and not chunks[0][4].startswith("\ufeff")
    assert_good_searchable(settings, embedder)


# -- binary, empty, huge -------------------------------------------------------------------


def test_binary_file_named_md_is_skipped(root, settings, embedder, do_sync) -> None:
    write_good(root)
    write(root, "image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    report = do_sync()
    message = one_warning_about(report, "image.md")
    assert "binary" in message
    assert report.skipped_with_warning == 1
    assert report.reindexed == 2
    assert "image.md" not in indexed_files(settings, embedder)
    assert_good_searchable(settings, embedder)


def test_empty_file_is_indexed_without_chunks(root, settings, embedder, do_sync) -> None:
    write_good(root)
    write(root, "empty.md", "")
    write(root, "blank.md", "\n\n   \n")
    write(root, "only-frontmatter.md", "---\ntitle: Nothing yet\n---\n")
    report = do_sync()
    assert report.warnings == []
    assert report.reindexed == 5
    files = indexed_files(settings, embedder)
    assert {"empty.md", "blank.md", "only-frontmatter.md"} <= files
    assert chunks_of(settings, embedder, "empty.md") == []
    assert chunks_of(settings, embedder, "blank.md") == []
    assert_good_searchable(settings, embedder)
    # and a second sync is quiet and converges
    again = do_sync()
    assert again.warnings == [] and again.removed == 0
    assert snapshot(settings, embedder)["files"] == sorted(snapshot(settings, embedder)["files"])


def test_file_over_size_limit_is_skipped(root, embedder, tmp_path) -> None:
    settings = make_settings(root)
    assert settings.max_file_bytes == 5 * 1024 * 1024
    write_good(root)
    line = b"a pasted log line that goes on and on " * 2 + b"\n"
    with open(root / "huge.md", "wb") as handle:
        handle.write(line * (20 * 1024 * 1024 // len(line) + 1))
    assert (root / "huge.md").stat().st_size >= 20 * 1024 * 1024
    with open_index(settings, write=True, embedder=embedder) as index:
        report = index.sync()
    message = one_warning_about(report, "huge.md")
    assert "limit" in message
    assert report.skipped_with_warning == 1
    assert "huge.md" not in indexed_files(settings, embedder)
    assert not any("pasted log" in text for text in embedder.embedded)
    assert_good_searchable(settings, embedder)


def test_file_that_grows_over_the_limit_loses_its_rows(root, embedder) -> None:
    settings = make_settings(root, max_file_bytes=2_000)
    write_good(root)
    write(root, "grows.md", "# Grows\n\nsmall for now, mongoose\n")
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    assert "grows.md" in keyword_paths(settings, embedder, "mongoose")
    write(root, "grows.md", "# Grows\n\n" + "mongoose line\n" * 500)
    with open_index(settings, write=True, embedder=embedder) as index:
        report = index.sync()
    one_warning_about(report, "grows.md")
    assert report.removed == 1
    assert "grows.md" not in indexed_files(settings, embedder)
    assert keyword_paths(settings, embedder, "mongoose") == set()
    assert_good_searchable(settings, embedder)


def test_file_that_becomes_binary_loses_its_rows(root, settings, embedder, do_sync, tmp_path) -> None:
    write_good(root)
    write(root, "turns.md", "# Turns\n\nthe narwhal was here\n")
    do_sync()
    assert "turns.md" in keyword_paths(settings, embedder, "narwhal")
    write(root, "turns.md", b"\x00\x01\x02 narwhal \x00")
    report = do_sync()
    message = one_warning_about(report, "turns.md")
    assert "binary" in message
    assert report.removed == 1 and report.skipped_with_warning == 1
    assert "turns.md" not in indexed_files(settings, embedder)
    assert keyword_paths(settings, embedder, "narwhal") == set()
    with open_index(settings, embedder=embedder) as index:  # no full-text rows or postings left behind
        counts = index.store.consistency_counts()
    assert {name: n for name, n in counts.items() if name not in ("files", "chunks") and n} == {}
    assert_good_searchable(settings, embedder)
    assert snapshot(settings, embedder) == fresh_rebuild(root, tmp_path, settings)


# -- symlinks, hidden folders, the index folder ------------------------------------------


def test_symlink_to_file_outside_root_is_skipped(root, settings, embedder, do_sync, tmp_path) -> None:
    write_good(root)
    outside = write(tmp_path, "private.md", "# Private\n\nthe capybara secret\n")
    (root / "leak.md").symlink_to(outside)
    os.symlink(os.path.join("..", "private.md"), root / "relative-leak.md")
    report = do_sync()
    assert "outside" in one_warning_about(report, "relative-leak.md")
    assert [m for m in report.warnings if m.startswith("leak.md")], report.warnings
    assert report.reindexed == 2
    assert not {"leak.md", "relative-leak.md"} & indexed_files(settings, embedder)
    assert keyword_paths(settings, embedder, "capybara") == set()
    assert_good_searchable(settings, embedder)


def test_symlink_to_file_inside_root_is_indexed(root, settings, embedder, do_sync) -> None:
    write_good(root)
    write(root, "notes/real.md", "# Real\n\nthe axolotl regrows limbs\n")
    (root / "alias.md").symlink_to(root / "notes" / "real.md")
    report = do_sync()
    assert report.warnings == []
    assert {"alias.md", "notes/real.md"} <= keyword_paths(settings, embedder, "axolotl")
    assert_good_searchable(settings, embedder)


def test_broken_symlink_is_skipped_with_warning(root, settings, embedder, do_sync) -> None:
    write_good(root)
    (root / "dangling.md").symlink_to(root / "deleted-long-ago.md")
    report = do_sync()
    one_warning_about(report, "dangling.md")
    assert "dangling.md" not in indexed_files(settings, embedder)
    assert_good_searchable(settings, embedder)


def test_symlink_loop_is_skipped_with_warning(root, settings, embedder, do_sync) -> None:
    write_good(root)
    (root / "ping.md").symlink_to(root / "pong.md")
    (root / "pong.md").symlink_to(root / "ping.md")
    report = do_sync()
    one_warning_about(report, "ping.md")
    one_warning_about(report, "pong.md")
    assert indexed_files(settings, embedder) == set(GOOD)
    assert_good_searchable(settings, embedder)


def test_file_replaced_by_symlink_out_of_root_loses_its_rows(root, settings, embedder, do_sync, tmp_path) -> None:
    write_good(root)
    write(root, "swap.md", "# Swap\n\nthe meerkat\n")
    do_sync()
    assert "swap.md" in keyword_paths(settings, embedder, "meerkat")
    (root / "swap.md").unlink()
    (root / "swap.md").symlink_to(write(tmp_path, "outside.md", "# Out\n\nthe meerkat outside\n"))
    report = do_sync()
    assert "outside" in one_warning_about(report, "swap.md")
    assert report.removed == 1
    assert keyword_paths(settings, embedder, "meerkat") == set()
    assert_good_searchable(settings, embedder)


def test_fifo_named_md_does_not_block_the_sync(root, settings, embedder, do_sync) -> None:
    """Opening a FIFO for reading blocks until a writer appears; the scan must not try."""
    write_good(root)
    os.mkfifo(root / "pipe.md")
    (root / "pipe-link.md").symlink_to(root / "pipe.md")
    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("report", do_sync()), daemon=True)
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():
        with open(root / "pipe.md", "wb"):  # release the blocked reader so the thread can end
            pass
        pytest.fail("sync blocked on a FIFO named .md")
    report = outcome["report"]
    assert isinstance(report, SyncReport)
    assert_warnings_single_line(report)
    assert indexed_files(settings, embedder) == set(GOOD)
    assert_good_searchable(settings, embedder)


def test_symlinked_folder_is_not_followed(root, settings, embedder, do_sync, tmp_path) -> None:
    write_good(root)
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "pangolin.md", "# Pangolin\n\nscales everywhere\n")
    write(root, "inner/ibis.md", "# Ibis\n\nwading bird\n")
    (root / "linked-out").symlink_to(elsewhere, target_is_directory=True)
    (root / "linked-in").symlink_to(root / "inner", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    report = do_sync()
    assert_warnings_single_line(report)
    files = indexed_files(settings, embedder)
    assert files == {*GOOD, "inner/ibis.md"}
    assert keyword_paths(settings, embedder, "pangolin") == set()
    assert keyword_paths(settings, embedder, "ibis") == {"inner/ibis.md"}
    assert_good_searchable(settings, embedder)


def test_hidden_folders_and_index_folder_are_ignored(root, settings, embedder, do_sync) -> None:
    write_good(root)
    write(root, ".obsidian/workspace.md", "# Hidden\n\nmarmot\n")
    write(root, ".git/COMMIT_EDITMSG.md", "marmot\n")
    write(root, "notes/.trash/old.md", "marmot\n")
    write(root, ".hidden-note.md", "marmot\n")
    write(root, "notes/visible.md", "# Visible\n\nheron\n")
    do_sync()  # creates .memdex
    write(root, ".memdex/stray.md", "marmot\n")
    report = do_sync()
    assert report.warnings == []
    assert indexed_files(settings, embedder) == {*GOOD, "notes/visible.md"}
    assert keyword_paths(settings, embedder, "marmot") == set()
    assert_good_searchable(settings, embedder)


def test_custom_index_folder_inside_root_is_ignored(root, embedder) -> None:
    settings = make_settings(root, root / "index-here" / "index.db")
    write_good(root)
    write(root, "index-here/stray.md", "# Stray\n\nmarmot\n")
    with open_index(settings, write=True, embedder=embedder) as index:
        report = index.sync()
    assert report.warnings == []
    assert indexed_files(settings, embedder) == set(GOOD)
    assert_good_searchable(settings, embedder)


def test_folder_named_like_a_note_is_walked(root, settings, embedder, do_sync) -> None:
    write_good(root)
    write(root, "project.md/inner.md", "# Inner\n\ngecko\n")
    report = do_sync()
    assert report.warnings == []
    assert keyword_paths(settings, embedder, "gecko") == {"project.md/inner.md"}
    assert_good_searchable(settings, embedder)


# -- odd file names -------------------------------------------------------------------------


def test_file_name_that_is_not_utf8(root, settings, embedder, do_sync) -> None:
    """A name with invalid UTF-8 bytes must not crash the sync (SQLite TEXT must be UTF-8)."""
    write_good(root)
    name = os.path.join(os.fsencode(root), b"caf\xe9-notes.md")
    with open(name, "wb") as handle:
        handle.write(b"# Notes\n\nokapi sighting\n")
    report = do_sync()
    assert_warnings_single_line(report)
    assert [m for m in report.warnings if "notes.md" in m], (
        "a file whose name cannot be stored should be skipped with a warning"
    )
    assert_good_searchable(settings, embedder)


def test_warning_for_file_name_with_newline_is_one_line(root, settings, embedder, do_sync) -> None:
    write_good(root)
    write(root, "two\nlines.md", b"\x00binary\x00")
    report = do_sync()
    assert report.skipped_with_warning == 1
    assert len(report.warnings) == 1
    assert_warnings_single_line(report)
    assert_good_searchable(settings, embedder)


# -- files that change under the sync ---------------------------------------------------------


def test_file_deleted_while_embedding_is_not_written(root, settings, tmp_path) -> None:
    """B is read, then deleted while the model runs: it is read again at once, found gone,
    and loses its rows in the same sync (no warning: a deleted file is not a problem)."""
    write_good(root)
    write(root, "b-victim.md", "# Victim\n\nthe original tapir\n")
    first = RecordingEmbedder()
    with open_index(settings, write=True, embedder=first) as index:
        index.sync()
    assert "b-victim.md" in keyword_paths(settings, first, "tapir")

    # both change, so both are read and embedded in one group
    write(root, "aaa-first.md", "# Aardvark\n\nThe aardvark digs burrows at dawn, with a lemur.\n")
    write(root, "b-victim.md", "# Victim\n\nthe edited tapir and a lemur\n")
    hooked = HookedEmbedder(lambda: (root / "b-victim.md").unlink())
    with open_index(settings, write=True, embedder=hooked) as index:
        report = index.sync()
    assert hooked.fired
    assert any("edited tapir" in text for text in hooked.embedded), "the victim was read before the delete"
    assert report.warnings == []
    assert report.reindexed == 1 and report.reread == 1 and report.removed == 1
    # the edit that was never on disk at write time must not be in the index
    assert "b-victim.md" not in indexed_files(settings, hooked)
    assert keyword_paths(settings, hooked, "tapir") == set()
    assert "aaa-first.md" in keyword_paths(settings, hooked, "lemur")
    assert_good_searchable(settings, hooked)
    assert snapshot(settings, hooked) == fresh_rebuild(root, tmp_path, settings)


def test_new_file_deleted_while_embedding_never_enters_the_index(root, settings, tmp_path) -> None:
    write_good(root)
    write(root, "b-new.md", "# New\n\nthe ocelot\n")
    hooked = HookedEmbedder(lambda: (root / "b-new.md").unlink())
    with open_index(settings, write=True, embedder=hooked) as index:
        report = index.sync()
    assert report.warnings == [] and report.reread == 1
    assert "b-new.md" not in indexed_files(settings, hooked)
    assert_good_searchable(settings, hooked)
    assert snapshot(settings, hooked) == fresh_rebuild(root, tmp_path, settings)


def test_file_rewritten_while_embedding_is_read_again_in_the_same_sync(root, settings, tmp_path) -> None:
    """Rewritten while its first version is embedded: the stale version is not written;
    the file is read again at once and its new text indexed by the same sync."""
    write_good(root)
    write(root, "b-busy.md", "# Busy\n\nfirst draft about the jackal\n")

    def rewrite() -> None:
        write(root, "b-busy.md", "# Busy\n\nsecond, much longer draft about the jackal and the hyena\n")

    hooked = HookedEmbedder(rewrite)
    with open_index(settings, write=True, embedder=hooked) as index:
        report = index.sync()
    assert report.warnings == [] and report.reread == 1
    assert keyword_paths(settings, hooked, "hyena") == {"b-busy.md"}
    assert not any("first draft" in row[4] for row in chunks_of(settings, hooked, "b-busy.md"))
    assert_good_searchable(settings, hooked)
    assert snapshot(settings, hooked) == fresh_rebuild(root, tmp_path, settings)

    with open_index(settings, write=True, embedder=hooked) as index:
        again = index.sync()
    assert again.warnings == [] and again.reindexed == 0


def test_file_deleted_between_scan_and_read(root, settings, embedder, do_sync, monkeypatch, tmp_path) -> None:
    write_good(root)
    write(root, "b-gone.md", "# Gone\n\nthe dodo\n")
    write(root, "c-new.md", "# New\n\nthe moa\n")
    do_sync()
    (root / "c-new.md").unlink()
    write(root, "b-gone.md", "# Gone\n\nthe dodo, edited\n")  # changed, so the sync must read it
    write(root, "c-new.md", "# New\n\nthe moa, recreated\n")

    real_scan = indexer.indexing.sync.scan_all

    def scan_then_delete(*args, **kwargs):
        result = real_scan(*args, **kwargs)
        (root / "b-gone.md").unlink()
        (root / "c-new.md").unlink()
        return result

    monkeypatch.setattr(indexer.indexing.sync, "scan_all", scan_then_delete)
    report = do_sync()
    monkeypatch.undo()
    assert_warnings_single_line(report)
    assert report.removed >= 1
    files = indexed_files(settings, embedder)
    assert "b-gone.md" not in files and "c-new.md" not in files
    assert keyword_paths(settings, embedder, "dodo") == set()
    assert_good_searchable(settings, embedder)
    again = do_sync()
    assert again.removed == 0 and again.warnings == []
    assert snapshot(settings, embedder) == fresh_rebuild(root, tmp_path, settings)


# -- permissions --------------------------------------------------------------------------------


def test_unreadable_file_is_skipped(root, settings, embedder, do_sync) -> None:
    write_good(root)
    locked = write(root, "locked.md", "# Locked\n\nthe lynx\n")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running with privileges that read chmod 000 files (root)")
        report = do_sync()
        message = one_warning_about(report, "locked.md")
        assert "skipped" in message
        assert report.skipped_with_warning == 1
        assert "locked.md" not in indexed_files(settings, embedder)
        assert_good_searchable(settings, embedder)
    finally:
        locked.chmod(0o644)


def test_file_that_becomes_unreadable_loses_its_rows(root, settings, embedder, do_sync) -> None:
    write_good(root)
    locked = write(root, "locked.md", "# Locked\n\nthe lynx\n")
    do_sync()
    write(root, "locked.md", "# Locked\n\nthe lynx, edited\n")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running with privileges that read chmod 000 files (root)")
        report = do_sync()
        one_warning_about(report, "locked.md")
        assert report.removed == 1
        assert keyword_paths(settings, embedder, "lynx") == set()
        assert_good_searchable(settings, embedder)
    finally:
        locked.chmod(0o644)


def test_unreadable_folder_is_skipped(root, settings, embedder, do_sync) -> None:
    write_good(root)
    write(root, "vault/secret.md", "# Secret\n\nthe civet\n")
    (root / "vault").chmod(0)
    try:
        if os.access(root / "vault", os.R_OK | os.X_OK):
            pytest.skip("running with privileges that list chmod 000 folders (root)")
        report = do_sync()
        one_warning_about(report, "vault")
        assert indexed_files(settings, embedder) == set(GOOD)
        assert_good_searchable(settings, embedder)
    finally:
        (root / "vault").chmod(0o755)


# -- everything at once ---------------------------------------------------------------------------


def test_folder_full_of_bad_inputs_still_indexes_the_good_ones(root, settings, embedder, do_sync, tmp_path) -> None:
    write_good(root)
    write(root, "broken.md", "---\nkey: [\n---\ntext\n")
    write(root, "latin1.md", b"caf\xe9\n")
    write(root, "blob.md", b"\x00" * 64)
    write(root, "empty.md", b"")
    (root / "leak.md").symlink_to(write(tmp_path, "outside.md", "outside\n"))
    write(root, ".hidden/x.md", "hidden\n")
    age_files(root)
    report = do_sync()
    assert_warnings_single_line(report)
    for name in ("broken.md", "latin1.md", "blob.md", "leak.md"):
        one_warning_about(report, name)
    assert indexed_files(settings, embedder) == {*GOOD, "broken.md", "latin1.md", "empty.md"}
    assert_good_searchable(settings, embedder)
    # nothing changed: the second sync reads nothing and repeats only the skip warnings
    again = do_sync()
    assert again.reindexed == 0 and again.removed == 0
    assert again.skipped_unchanged_stat >= 5
    assert snapshot(settings, embedder) == fresh_rebuild(root, tmp_path, settings)


def test_ctrl_c_while_a_file_is_opened_stays_an_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C inside fdopen, after it made its file object (which closes the descriptor on
    the way out): a second close raised EBADF instead, and the sync recorded the file as
    unreadable and went on (review)."""
    import indexer.sources.read as read

    path = tmp_path / "note.md"
    path.write_text("# note\n")
    real = os.fdopen

    def interrupted(fd: int, *args: object, **kwargs: object) -> object:
        real(fd, *args, **kwargs).close()
        raise KeyboardInterrupt

    monkeypatch.setattr(read.os, "fdopen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        read.open_memory_file(path)
