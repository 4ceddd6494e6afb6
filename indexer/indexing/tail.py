"""Logs that only grew (session transcripts, ``sources.base.AppendOnly``): where the sync
parses them again from, instead of from their first line."""

from __future__ import annotations

from indexer.sources.base import AppendOnly
from indexer.sources.discover import FileStamp
from indexer.store import FileState, IndexStore

from .writer import content_hash


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
