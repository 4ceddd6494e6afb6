"""Logs that only grew (session transcripts, ``sources.base.AppendOnly``): where the sync
parses them again from, instead of from their first line; and which transcripts a change
of their size bound makes read again."""

from __future__ import annotations

from indexer.config.settings import Settings
from indexer.sources.base import AppendOnly
from indexer.sources.discover import FileStamp
from indexer.store import FileState, IndexStore

from .writer import content_hash

# meta key: the bound (Settings.session_max_file_bytes) the transcripts were indexed within.
BOUND_KEY = "session_max_file_bytes"


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


def rebound(settings: Settings, store: IndexStore) -> bool:
    """When ``session_max_file_bytes`` differs from the bound the transcripts were indexed
    with, mark the transcripts over the smaller of the two (their indexed part changes) so
    that this sync reads them again. True when some transcript must be read again."""
    wanted = str(settings.session_max_file_bytes)
    stored = store.meta().get(BOUND_KEY)
    if stored == wanted:
        return False
    over: list[str] = []
    if stored is not None and stored.isdigit():  # else a new index, or one from before the key
        low = min(int(stored), settings.session_max_file_bytes)
        states = store.file_states()
        over = sorted(
            path for path, (kind, _, _) in store.file_descriptions().items()
            if kind == "session" and path in states and states[path].stamp.size > low
        )  # fmt: skip
        store.invalidate_files(over)
    # Only then the new bound: a sync stopped between the two marks them again (review: the
    # bound stored first, an interrupt left them indexed within the old bound for good).
    store.set_meta(**{BOUND_KEY: wanted})
    return bool(over)
