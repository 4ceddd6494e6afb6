"""Logs that only grew (session transcripts, ``sources.base.AppendOnly``): where the sync
parses them again from, instead of from their first line; and what of a log that grew
past its size bound stays indexed."""

from __future__ import annotations

from pathlib import Path

from indexer.sources.base import AppendOnly
from indexer.sources.discover import FileStamp
from indexer.store import FileState, IndexStore

from .writer import content_hash, read_start


def resume_line(
    store: IndexStore, source: object, path: str, state: FileState | None, stamp: FileStamp, data: bytes
) -> int | None:
    """For a log (``AppendOnly`` source) that only grew since it was indexed (same inode,
    larger, its old bytes unchanged): the first line of its last stored chunk, from which
    it is parsed again. None: read the whole file."""
    if not isinstance(source, AppendOnly) or state is None or state.stamp.size <= 0:
        return None
    if stamp.inode != state.stamp.inode or stamp.size <= state.stamp.size:
        return None
    if content_hash(data[: state.stamp.size]) != state.hash:
        return None
    return store.last_chunk_start(path)


def line_offset(data: bytes, line: int) -> int:
    """The byte offset where 1-based ``line`` starts, found from the end (the line is near it)."""
    if line <= 1:
        return 0
    position = len(data)
    for _ in range(data.count(b"\n") - line + 2):  # back to the newline that ends line - 1
        position = data.rfind(b"\n", 0, position)
    return position + 1


def indexed_part(place: Path, source: object, state: FileState | None, stamp: FileStamp, limit: int) -> bytes | None:
    """For a log (``AppendOnly`` source) indexed within its size bound ``limit`` that has
    only grown past it since (same inode, the bytes indexed still its start): those bytes,
    whose rows stay (the user could search them a minute ago). None otherwise."""
    if not isinstance(source, AppendOnly) or state is None or not 0 < state.stamp.size <= limit:
        return None
    if stamp.inode != state.stamp.inode or stamp.size <= limit:
        return None
    return read_start(place, state.stamp.size, state.hash)
