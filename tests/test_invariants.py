"""The central invariant: the index is a function of the Markdown, on every engine.

Whatever sequence of edits a user makes, with ``memdex index`` run at any
points in between, the index ends up with exactly the rows a fresh rebuild of
the same folder would have: the same files, chunks (line ranges and text),
keyword rows (FTS5 rows; PostgreSQL's postings and counters), skipped files and
vectors. Hypothesis generates the sequences. Each test runs on both engines
(``engine_kind``, conftest.py: an SQLite file, and a namespace of the session's
PostgreSQL server compared with a fresh namespace), as part of the engine contract.

Files are never aged here: every edit happens within the racy-mtime window
of the sync that follows it, which is exactly the situation where trusting
size and mtime would be wrong. Set MEMDEX_HYPOTHESIS_EXAMPLES to explore
more sequences on SQLite (the default, 100, keeps it at about ten seconds) and
MEMDEX_PG_HYPOTHESIS_EXAMPLES on PostgreSQL (default 50).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from conftest import EngineKind, RecordingEmbedder, write
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from indexer import open_index
from indexer.config.settings import Settings

EXAMPLES = {
    "sqlite": int(os.environ.get("MEMDEX_HYPOTHESIS_EXAMPLES", "100")),
    "postgresql": int(os.environ.get("MEMDEX_PG_HYPOTHESIS_EXAMPLES", "50")),
}

# Paths cover every kind (soul, memory, daily with a date, note) and nesting.
PATHS = [
    "MEMORY.md",
    "SOUL.md",
    "notes/a.md",
    "notes/b.md",
    "notes/deep/c.md",
    "daily/2024-05-01.md",
    "daily/2024-05-02.md",
    "daily/not-a-date.md",
    "projects/greenhouse.md",
]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "kilo", "lima"]

words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join)
line = st.one_of(
    st.just(""),
    st.builds(lambda level, text: "#" * level + " " + text, st.integers(1, 3), words),
    words.map(lambda text: "- " + text),
    words,
    st.sampled_from(["```", "> quoted words", "| a | b |", "|---|---|", "1. first step", "---", "    indented code"]),
)
lines = st.lists(line, min_size=0, max_size=12)
# None: no frontmatter; "broken": YAML that does not parse; a dict: valid YAML.
frontmatter = st.one_of(
    st.none(),
    st.just("broken"),
    st.fixed_dictionaries({"title": words}, optional={"tags": st.lists(st.sampled_from(WORDS), max_size=3)}),
)
which = st.integers(min_value=0, max_value=50)
SAME_TICK_NS = 500_000_000  # a coarse timestamp tick, well inside sync's 1 s racy window  # picks an existing file, modulo their number


class Create(NamedTuple):
    path: str
    frontmatter: Any
    lines: list[str]
    crlf: bool


class EditLine(NamedTuple):
    which: int
    at: int
    line: str


class InsertLines(NamedTuple):
    which: int
    at: int
    lines: list[str]


class DeleteLines(NamedTuple):
    which: int
    at: int
    count: int


class DeleteFile(NamedTuple):
    which: int


class Rename(NamedTuple):
    which: int
    to: str


class SetFrontmatter(NamedTuple):
    which: int
    frontmatter: Any


class Touch(NamedTuple):
    which: int


class SameTickEdit(NamedTuple):
    """A same-size edit that keeps the file's mtime, as a second write within one
    timestamp tick does (coarse clocks, 1-2 s on some file systems). Kernels with
    fine-grained timestamps never produce it by themselves."""

    which: int
    at: int


class Sync(NamedTuple):
    pass


create = st.builds(Create, st.sampled_from(PATHS), frontmatter, lines, st.booleans())
operation = st.one_of(
    create,
    st.builds(EditLine, which, st.integers(0, 40), line),
    st.builds(InsertLines, which, st.integers(0, 40), st.lists(line, min_size=1, max_size=4)),
    st.builds(DeleteLines, which, st.integers(0, 40), st.integers(1, 4)),
    st.builds(DeleteFile, which),
    st.builds(Rename, which, st.sampled_from([*PATHS, "notes/sub/moved.md", "archive/2023/old.md"])),
    st.builds(SetFrontmatter, which, frontmatter),
    st.builds(Touch, which),
    st.builds(SameTickEdit, which, st.integers(0, 40)),
    st.just(Sync()),
    st.just(Sync()),  # twice: about one operation in five is a sync
)
# A few files to start from, then the edits.
operations = st.tuples(st.lists(create, min_size=1, max_size=6), st.lists(operation, min_size=5, max_size=30)).map(
    lambda pair: [*pair[0], *pair[1]]
)


class Memory:
    """The folder as the test believes it to be; every change is written to disk at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, tuple[Any, list[str], bool]] = {}  # path -> (frontmatter, body lines, crlf)
        self.touched: set[str] = set()  # paths changed since the last sync

    def pick(self, number: int) -> str | None:
        names = sorted(self.files)
        return names[number % len(names)] if names else None

    def render(self, path: str) -> None:
        front, body, crlf = self.files[path]
        head: list[str] = []
        if front == "broken":
            head = ["---", "title: [never closed", "---"]
        elif front is not None:
            head = ["---", f"title: {front['title']}"]
            if "tags" in front:
                head.append(f"tags: [{', '.join(front['tags'])}]")
            head.append("---")
        newline = "\r\n" if crlf else "\n"
        text = newline.join(head + body) + (newline if head or body else "")
        write(self.root, path, text.encode("utf-8"))
        self.touched.add(path)

    def apply(self, op: Any) -> None:
        if isinstance(op, Create):
            self.files[op.path] = (op.frontmatter, list(op.lines), op.crlf)
            self.render(op.path)
            return
        path = self.pick(op.which)
        if path is None:
            return
        front, body, crlf = self.files[path]
        if isinstance(op, EditLine):
            if body:
                body[op.at % len(body)] = op.line
            else:
                body.append(op.line)
        elif isinstance(op, InsertLines):
            at = op.at % (len(body) + 1)
            body[at:at] = op.lines
        elif isinstance(op, DeleteLines):
            if body:
                at = op.at % len(body)
                del body[at : at + op.count]
        elif isinstance(op, SetFrontmatter):
            front = op.frontmatter
        elif isinstance(op, DeleteFile):
            (self.root / path).unlink()
            del self.files[path]
            self.touched.add(path)
            return
        elif isinstance(op, Rename):
            if op.to == path:
                return
            target = self.root / op.to
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / path, target)  # keeps the mtime, may replace a file
            self.files[op.to] = self.files.pop(path)
            self.touched.update({path, op.to})
            return
        elif isinstance(op, Touch):
            os.utime(self.root / path)  # new mtime, same bytes
            self.touched.add(path)
            return
        elif isinstance(op, SameTickEdit):
            filled = [n for n, text in enumerate(body) if text]
            if not filled:
                return
            n = filled[op.at % len(filled)]
            body[n] = body[n][:-1] + ("x" if body[n][-1] != "x" else "y")  # same length, ASCII
            before = (self.root / path).stat()
            self.files[path] = (front, body, crlf)
            self.render(path)
            # Only while the previous write's tick could still be running: a
            # sync that read the file since then did so within the racy window.
            if time.time_ns() - before.st_mtime_ns < SAME_TICK_NS:
                os.utime(self.root / path, ns=(before.st_atime_ns, before.st_mtime_ns))
            return
        self.files[path] = (front, body, crlf)
        self.render(path)


def sync(settings: Settings, paths: set[str] | None = None) -> None:
    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index:
        index.sync(paths=paths)


def snapshot(settings: Settings) -> dict[str, Any]:
    with open_index(settings, embedder=RecordingEmbedder(), recover=False) as index:
        return index.store.snapshot()


@contextmanager
def fresh_folder() -> Iterator[tuple[Path, Path]]:
    """A new memory root per example (pytest's tmp_path is shared by all of them)."""
    with tempfile.TemporaryDirectory(prefix="memdex-invariant-") as tmp:
        root = Path(tmp) / "memory"
        root.mkdir()
        yield root, Path(tmp) / "fresh" / "index.db"


def assert_equals_fresh_rebuild(settings: Settings, fresh: Settings) -> None:
    """``settings``' index equals ``fresh``, a new index of the same root built now."""
    incremental = snapshot(settings)
    sync(fresh)
    rebuilt = snapshot(fresh)
    assert incremental["files"] == rebuilt["files"]
    assert incremental["chunks"] == rebuilt["chunks"]
    assert incremental == rebuilt


def matrix_rows(index: Any) -> list[tuple[str, int, bytes]]:
    """A long-lived reader's in-memory vector matrix, as (path, start_line, vector bytes) rows."""
    matrix = index.vector_matrix()
    rows = index.store.chunks_by_id([int(cid) for cid in matrix.ids])
    return sorted(
        (rows[int(cid)].path, rows[int(cid)].start_line, row.tobytes()) for cid, row in zip(matrix.ids, matrix.matrix)
    )


PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_any_edits_with_syncs_in_between_equal_a_fresh_rebuild(engine_kind: EngineKind) -> None:
    """Create, edit, insert, delete, rename (into subfolders, over other files),
    touch and frontmatter changes, with `memdex index` at any points: after a
    final `memdex index` the index equals a fresh rebuild of the folder."""

    @hypothesis_settings(max_examples=EXAMPLES[engine_kind.name], **PROPERTY)
    @given(operations)
    def run(ops: list[Any]) -> None:
        with fresh_folder() as (root, fresh_db), ExitStack() as stack:
            memory = Memory(root)
            settings = engine_kind.settings(root)
            reader = None  # a long-lived reader (an MCP server, say), open across every sync
            for op in ops:
                if isinstance(op, Sync):
                    sync(settings)
                    reader = reader or stack.enter_context(open_index(settings, embedder=RecordingEmbedder()))
                    if reader.engine.keeps_vectors_in_memory:  # its vector matrix follows every sync
                        reader.vector_matrix()
                else:
                    memory.apply(op)
            sync(settings)
            fresh = engine_kind.fresh(settings, fresh_db)
            assert_equals_fresh_rebuild(settings, fresh)
            # The derived matrix, kept current incrementally, equals the rebuild's vectors.
            if reader is not None and reader.engine.keeps_vectors_in_memory:
                assert matrix_rows(reader) == snapshot(fresh)["vec"]

    run()


def test_syncs_of_just_the_changed_paths_equal_a_fresh_rebuild(engine_kind: EngineKind) -> None:
    """A sync given only the paths that changed (as the watcher does: for a
    rename, both names) leaves the same index as a full rebuild."""

    @hypothesis_settings(max_examples=max(EXAMPLES[engine_kind.name] // 2, 1), **PROPERTY)
    @given(operations)
    def run(ops: list[Any]) -> None:
        with fresh_folder() as (root, fresh_db):
            memory = Memory(root)
            settings = engine_kind.settings(root)
            sync(settings)
            for op in [*ops, Sync()]:
                if isinstance(op, Sync):
                    sync(settings, paths=memory.touched)
                    memory.touched = set()
                else:
                    memory.apply(op)
            assert_equals_fresh_rebuild(settings, engine_kind.fresh(settings, fresh_db))

    run()


def test_a_hand_written_sequence_through_the_same_machinery(engine_kind: EngineKind) -> None:
    """Guard for the generator's helpers: every kind of file, each frontmatter
    style, CRLF, a rename into a subfolder and a rename over another file."""
    ops: list[Any] = [
        Create("MEMORY.md", {"title": "facts", "tags": ["kilo"]}, ["# Tools", "", "- alpha bravo"], False),
        Create("SOUL.md", None, ["be kind"], True),
        Create("daily/2024-05-01.md", "broken", ["went running"], False),
        Create("notes/a.md", None, ["# A", "", "charlie"], False),
        Create("notes/b.md", None, ["# B", "", "delta"], False),
        Sync(),
        Rename(3, "notes/sub/moved.md"),  # notes/a.md
        Rename(4, "notes/b.md"),  # notes/sub/moved.md, over notes/b.md
        SetFrontmatter(3, {"title": "now with a title"}),
        InsertLines(0, 0, ["# New top", ""]),
        Sync(),
        DeleteLines(0, 1, 2),
        EditLine(1, 0, "# Renamed heading"),
    ]
    with fresh_folder() as (root, fresh_db):
        memory = Memory(root)
        settings = engine_kind.settings(root)
        for op in ops:
            if isinstance(op, Sync):
                sync(settings)
            else:
                memory.apply(op)
        sync(settings)
        files = snapshot(settings)["files"]
        assert [row[0] for row in files] == sorted(memory.files)
        assert {row[1] for row in files} == {"memory", "soul", "daily", "note"}
        assert (root / "notes/b.md").read_text().splitlines()[-1] == "charlie"
        assert_equals_fresh_rebuild(settings, engine_kind.fresh(settings, fresh_db))


def test_rename_over_a_file_with_the_same_size_and_mtime_is_reindexed(tmp_path: Path, engine_kind: EngineKind) -> None:
    """`mv draft.md final.md` where both files have the same size and mtime (files
    written in the same clock tick, unpacked from an archive, copied with their
    times): the index must show the moved text under final.md afterwards."""
    root = tmp_path / "memory"
    a = write(root, "notes/draft.md", "alpha one\n")
    b = write(root, "notes/final.md", "bravo two\n")
    past = time.time() - 100
    for path in (a, b):
        os.utime(path, (past, past))
    settings = engine_kind.settings(root)
    sync(settings)
    os.replace(a, b)
    sync(settings)
    assert_equals_fresh_rebuild(settings, engine_kind.fresh(settings, tmp_path / "fresh" / "index.db"))
