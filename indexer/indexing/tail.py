"""Logs that only grew (session transcripts, ``sources.base.AppendOnly``): where the sync
parses them again from, instead of from their first line; the size bound the index's
transcripts are indexed within, and which transcripts a change of it makes read again."""

from __future__ import annotations

import time
from typing import Any

from indexer.config.settings import Settings
from indexer.errors import mib
from indexer.sources.base import AppendOnly
from indexer.sources.discover import FileStamp
from indexer.store import FileState, IndexStore

from .writer import content_hash

# meta key: the bound (Settings.session_max_file_bytes) the transcripts were indexed within.
BOUND_KEY = "session_max_file_bytes"
# meta keys: each PostgreSQL writer's (host:root) own setting, the bound it last synced with, and when.
WRITER_PREFIX = BOUND_KEY + "@"
# A writer that has not synced for this long no longer counts toward the bound (a host retired).
WRITER_KEPT_SECONDS = 30 * 86400
WRITER_REFRESH_SECONDS = 86400  # a writer's record is written again after this long, to stay counted


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


def rebound(settings: Settings, store: IndexStore) -> tuple[int, bool, str | None]:
    """The bound this sync indexes the transcripts within, whether some transcript must be
    read again for it, and a warning when it is not this host's ``session_max_file_bytes``.

    The bound is the index's: the largest ``session_max_file_bytes`` of its writers. A
    SQLite index has one (its root): its setting is the bound. A PostgreSQL namespace has
    one per host and root, each recorded in meta as it last synced, so two hosts with
    different settings agree on the larger instead of each sync flipping it (and reading
    the over-bound transcripts again); one that has not synced for ``WRITER_KEPT_SECONDS``
    no longer counts. When the bound differs from the one this writer last indexed within,
    its transcripts over the smaller of the two are marked, so that this sync reads them again."""
    wanted = settings.session_max_file_bytes
    meta = store.meta()
    stored = meta.get(BOUND_KEY)
    bound, mine, now = wanted, writer_key(settings), int(time.time())
    retired: list[str] = []  # other writers' records past the window: removed with this sync's own meta write
    if mine is not None:
        # A record this memdex cannot read (a later one's) neither counts nor is removed.
        parsed = {key: _record(value) for key, value in meta.items() if key.startswith(WRITER_PREFIX) and key != mine}
        records = {key: record for key, record in parsed.items() if record is not None}
        retired = [key for key, (_, at) in records.items() if now - at >= WRITER_KEPT_SECONDS]
        bound = max([wanted, *(setting for setting, at in records.values() if now - at < WRITER_KEPT_SECONDS)])
    seen = f"{wanted}:{bound}"  # this writer's setting, and the bound it indexes within
    mine_before, at = meta.get(mine, "").rpartition(":")[::2] if mine is not None else ("", "")
    warning = None
    if bound != wanted and mine_before != seen:  # said when it is new to this writer
        warning = (
            f"session_max_file_bytes is {mib(wanted)} here, but another writer of this index set {mib(bound)}: "
            f"its transcripts are indexed within the larger, {mib(bound)}"
        )
    updates: dict[str, str | int | None] = {}
    if mine is not None and (mine_before != seen or not at.isdigit() or now - int(at) > WRITER_REFRESH_SECONDS):
        updates[mine] = f"{seen}:{now}"  # kept fresh (a day at a time) while this writer syncs
        updates.update(dict.fromkeys(retired))  # None: removed (a retired host's record is never read again)
    # The bound this writer's transcripts were indexed within: its own record's (another
    # writer may have changed the index's since), else the index's (a first sync, an older index).
    previous = mine_before.partition(":")[2] if mine_before else stored
    over: list[str] = []
    if previous is not None and previous.isdigit() and int(previous) != bound:  # else a new index
        over = sorted(store.files_over("session", min(int(previous), bound)))
        store.invalidate_files(over)
    # Only then the new bound: a sync stopped between the two marks them again (review: the
    # bound stored first, an interrupt left them indexed within the old bound for good).
    if stored != str(bound):
        updates[BOUND_KEY] = bound
    if updates:
        store.set_meta(**updates)
    return bound, bool(over), warning


def _record(record: str) -> tuple[int, int] | None:
    """A writer's meta record ("setting:bound:unix time", maybe more fields a later memdex
    appends): its ``session_max_file_bytes`` and when it last synced (None: not that form)."""
    parts = record.split(":")
    if len(parts) < 3 or not all(part.isdigit() for part in parts[:3]):
        return None
    return int(parts[0]), int(parts[2])


def writer_key(settings: Settings) -> str | None:
    """Where meta keeps this writer's ``session_max_file_bytes``: a PostgreSQL namespace has a
    writer per host and root; a SQLite index has one, whose setting is the bound (None)."""
    return f"{WRITER_PREFIX}{settings.host}:{settings.root}" if settings.database_url else None


def index_bound(settings: Settings, meta: dict[str, str]) -> int:
    """The bound the index's transcripts were indexed within (what status, check and get go
    by): the one stored, else (an index not synced since) this host's setting."""
    stored = meta.get(BOUND_KEY, "")
    return int(stored) if stored.isdigit() else settings.session_max_file_bytes


def over_bound_status(settings: Settings, store: IndexStore, meta: dict[str, str]) -> dict[str, Any]:
    """``status``'s transcripts over the index's bound (a bounded read: an index on the size):
    those whose lines within it are indexed, and those whose first line is longer than it
    (nothing of them is indexed; their stored hash is that of no bytes)."""
    bound = index_bound(settings, meta)
    over = store.files_over("session", bound)
    empty = content_hash(b"")
    return {
        "session_max_file_bytes": bound,
        "partly_indexed": sorted(path for path, digest in over.items() if digest != empty),
        "first_line_over_bound": sorted(path for path, digest in over.items() if digest == empty),
    }
