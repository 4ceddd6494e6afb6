"""Reading a memory file's lines back from the file itself: ``get`` targets
(``path``, ``path:N``, ``path:START-END``) and the bounded excerpts of MCP's
``memory_get``. No index needed; paths outside the root are refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from indexer.errors import PathError, mib

from .base import AppendOnly
from .discover import lexical_inside, refuse_unindexed, resolve_inside
from .markdown.parse import NotText, decode, split_lines
from .registry import source_for
from .sessions.discover import session_file
from .sessions.source import split_session_path

Sessions = Mapping[str, Path]  # label -> session folder (``Settings.session_labels``)


@dataclass(frozen=True)
class Lines:
    path: str
    start_line: int
    end_line: int
    lines: list[str]


@dataclass(frozen=True)
class Excerpt:
    """A bounded run of a memory file's lines (MCP ``memory_get``)."""

    path: str
    start_line: int
    lines: list[str]
    total_lines: int
    found: bool = True

    @property
    def next_line(self) -> int | None:
        """The first line not returned, or None at the end of the file."""
        after = self.start_line + len(self.lines)
        return after if self.found and after <= self.total_lines else None


def read_excerpt(
    root: Path, path: str, *, start: int = 1, count: int = 200, max_bytes: int | None = None,
    sessions: Sessions | None = None, session_tools: bool = False, session_max_bytes: int | None = None,
) -> Excerpt:
    """At most ``count`` lines of a memory file from line ``start`` (1-based).

    Only memory files (files a source owns, no hidden part) inside the root are read; a
    memory file that does not exist gives an empty excerpt with ``found=False``.
    """
    if start < 1 or count < 1:
        raise PathError(f"{path}: from and lines must be at least 1")
    if sessions and _is_session(path, sessions):
        place = session_file(sessions, path)
        if place is not None and not os.path.lexists(place):  # as for a note: a transcript not there reads as empty
            return Excerpt(path, start, [], 0, found=False)
        rel, lines, limit = _read_lines(
            root, path, max_bytes=max_bytes, sessions=sessions, session_tools=session_tools,
            session_max_bytes=session_max_bytes, first_part=True,
        )  # fmt: skip
        if limit is not None and start > len(lines):
            raise PathError(_past_limit(rel, start, limit))
        if start > max(len(lines), 1):
            raise PathError(f"{rel} has only {len(lines)} lines")
        # Past the bound, more lines follow: nextFrom points at them (reading there says why not).
        total = len(lines) + (1 if limit is not None else 0)
        return Excerpt(rel, start, lines[start - 1 : start - 1 + count], total)
    rel, lexical = lexical_inside(root, path)
    if not os.path.lexists(lexical):
        refuse_unindexed(root, rel, path)  # the same rules as get: only a memory file reads as empty
        return Excerpt(rel, start, [], 0, found=False)
    rel, lines = read_lines(root, path, max_bytes=max_bytes)  # refuses paths outside the root, symlinks out, huge files
    if start > max(len(lines), 1):
        raise PathError(f"{rel} has only {len(lines)} lines")
    return Excerpt(rel, start, lines[start - 1 : start - 1 + count], len(lines))


def read_target(
    root: Path, target: str, *, max_bytes: int | None = None, sessions: Sessions | None = None,
    session_tools: bool = False, session_max_bytes: int | None = None,
) -> Lines:
    """Lines of a memory file: ``path``, ``path:N`` or ``path:START-END`` (1-based, inclusive).

    Reads the file itself, so it needs no index; paths outside ``root`` are refused,
    except the transcripts of the session folders ``sessions``, cited ``sessions/<label>/...``
    (their lines read as turns: ``[time] role: text``).
    """
    user_path, start, end = parse_target(target)
    rel, lines, limit = _read_lines(
        root, user_path, max_bytes=max_bytes, sessions=sessions, session_tools=session_tools,
        session_max_bytes=session_max_bytes, first_part=start is not None,
    )  # fmt: skip
    if start is None:
        return Lines(rel, 1, len(lines), lines)
    end = start if end is None else end
    if start < 1 or end < start:
        raise PathError(f"{target}: line range must be START-END with 1 <= START <= END")
    if limit is not None and end > len(lines):
        raise PathError(_past_limit(rel, len(lines) + 1, limit))
    if start > len(lines):
        raise PathError(f"{target}: {rel} has only {len(lines)} lines")
    end = min(end, len(lines))
    return Lines(rel, start, end, lines[start - 1 : end])


def parse_target(target: str) -> tuple[str, int | None, int | None]:
    """Split ``path[:START[-END]]``; a colon not followed by numbers belongs to the path."""
    path, sep, span = target.rpartition(":")
    if not sep or not span or not span.replace("-", "").isdigit() or span.count("-") > 1:
        return target, None, None
    first, dash, last = span.partition("-")
    if not first or (dash and not last):
        raise PathError(f"{target}: expected PATH:START-END")
    return path, int(first), int(last) if dash else None


def _is_session(user_path: str, sessions: Sessions) -> bool:
    split = split_session_path(user_path)
    return split is not None and split[0] in sessions


def read_lines(
    root: Path, user_path: str, *, max_bytes: int | None = None, sessions: Sessions | None = None,
    session_tools: bool = False, session_max_bytes: int | None = None,
) -> tuple[str, list[str]]:
    """The lines of a memory file (for ``get``) as its source reads them back: a note's raw
    lines, split as the chunker splits them; a transcript's turns, one line per JSONL line.
    A file over ``max_bytes`` (a transcript: ``session_max_bytes``), which a sync skips, is refused."""
    rel, lines, _ = _read_lines(
        root, user_path, max_bytes=max_bytes, sessions=sessions, session_tools=session_tools,
        session_max_bytes=session_max_bytes,
    )  # fmt: skip
    return rel, lines


def _read_lines(
    root: Path, user_path: str, *, max_bytes: int | None = None, sessions: Sessions | None = None,
    session_tools: bool = False, session_max_bytes: int | None = None, first_part: bool = False,
) -> tuple[str, list[str], int | None]:
    """``read_lines``, and with ``first_part`` a transcript (an append-only log) over its bound
    reads as its whole lines within the bound (``lines_within``): the lines a sync indexes. The third value is that bound
    when only the first part was read, else None."""
    if sessions and _is_session(user_path, sessions):
        found = session_file(sessions, user_path)  # only through the configured folders, no links
        if found is None:
            raise PathError(f"{user_path}: not a session transcript memdex indexes (hidden, a symlink, or outside its folder)")
        rel, real = user_path, found
        max_bytes = session_max_bytes if session_max_bytes is not None else max_bytes
    else:
        rel, real = resolve_inside(root, user_path)
    source = source_for(rel, session_tools=session_tools)
    partial = None
    try:
        with open_memory_file(real) as handle:
            if max_bytes is not None and os.fstat(handle.fileno()).st_size > max_bytes:
                if not (first_part and isinstance(source, AppendOnly)):
                    raise PathError(f"{rel}: over the {mib(max_bytes)} limit, so memdex does not index or serve it")
                data, partial = lines_within(handle, max_bytes), max_bytes
            else:
                data = handle.read()
        lines = source.readable_lines(data) if source is not None else split_lines(decode(data)[0])
    except FileNotFoundError:
        raise PathError(f"{user_path}: no such file") from None
    except NotText as exc:
        raise PathError(f"{rel}: {exc}") from None
    except OSError as exc:
        raise PathError(f"{rel}: cannot read ({exc.strerror or exc})") from None
    return rel, lines, partial


def _past_limit(rel: str, line: int, limit: int) -> str:
    if line == 1:  # no whole line within the bound: nothing of the log is indexed
        return f"{rel}: its first line is longer than the {mib(limit)} limit, so memdex does not index or serve it"
    return (
        f"{rel}: line {line} on is past the first {mib(limit)} (the limit), "
        "so memdex does not index or serve it"
    )


def lines_within(handle: BinaryIO, limit: int) -> bytes:
    """What memdex indexes and serves of an append-only log over its bound ``limit``: its
    whole lines within its first ``limit`` bytes (cut after the last newline there)."""
    handle.seek(0)
    data = handle.read(limit)
    return data[: data.rfind(b"\n") + 1]


def open_memory_file(path: Path) -> BinaryIO:
    """A memory file opened for reading: its last part is not followed if it is a
    link (callers pass the path a scan or ``resolve_inside`` vetted), and it
    must be a regular file (a FIFO or device never blocks the open or the read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    # From here the file object owns the descriptor: when fdopen fails (Ctrl-C inside it) it
    # has closed it already, and a second close would replace the interrupt with EBADF, or
    # close a number another thread has reused meanwhile.
    return os.fdopen(fd, "rb")


def lines_from_chunks(chunks: list[tuple[int, int, str]]) -> list[str]:
    """A file's lines rebuilt from its stored chunks, (first line, last line, text)
    each (another host's file, from a PostgreSQL index); lines between chunks are blank."""
    total = max((last for _, last, _ in chunks), default=0)
    lines = [""] * total
    for first, last, text in chunks:
        lines[first - 1 : last] = text.split("\n")[: last - first + 1]
    return lines


def stored_range(target: str, chunks: list[tuple[int, int, str]], namespace: str) -> tuple[str, int, int, list[str]]:
    """(path, start, end, lines) of ``target`` (PATH, PATH:N or PATH:START-END) in a file of
    namespace ``namespace`` rebuilt from its stored ``chunks`` (lines_from_chunks)."""
    path, start, end = parse_target(target)
    lines = lines_from_chunks(chunks)
    total = len(lines)
    if start is None:  # the whole file
        start, end = 1, total
    else:  # PATH:N is one line, PATH:START-END a range (cut at the last stored line)
        end = start if end is None else min(end, total)
    if start < 1 or start > max(total, 1) or end < start:
        raise PathError(f"{target}: {path} has {total} stored lines in namespace {namespace!r}")
    return path, start, end, lines[start - 1 : end]
