"""One changed file's turn in a sync: read it (bounded), hash it, parse and chunk it.

``prepare_file`` reads a memory file through the handle it stats, so the stamp
stored describes the bytes read; a file that cannot be indexed (unreadable, too
large, not text, unparsable) is skipped with one warning and keeps no rows. A log
(``AppendOnly`` source) over its bound is indexed as its whole lines within the bound,
by every sync and rebuild alike; one that only grew (``tail``) is parsed from its last
stored chunk on.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import date as Date
from pathlib import Path, PurePosixPath

from indexer.config.settings import Settings
from indexer.embedding.protocol import Embedder
from indexer.errors import mib
from indexer.sources.base import AppendOnly, Chunk
from indexer.sources.discover import FileStamp, MemoryFile
from indexer.sources.markdown.parse import NotText
from indexer.sources.read import lines_within, open_memory_file
from indexer.sources.registry import source_for
from indexer.store import FileRecord, FileState, IndexStore, SkippedFile

from .report import SyncReport
from .tail import line_offset, resume_line
from .writer import Prepared, content_hash

log = logging.getLogger(__name__)

# A read during which the file's stat changed is repeated this many times.
READ_RETRIES = 2
# How the warning about a file over the size limit ends.
TOO_LARGE = " MiB limit"  # mib() ends every size with " MiB"
# The title words (path, date, frontmatter title/tags/aliases) are copied into
# every chunk's full-text row, so they are bounded: per value and in total.
TITLE_VALUE_CHARS = 200
TITLE_CHARS = 1000


def prepare_file(
    settings: Settings,
    store: IndexStore,
    embedder: Embedder,
    item: MemoryFile,
    state: FileState | None,
    report: SyncReport,
    skipped: SkippedFile | None = None,
) -> Prepared | None:
    """Read, hash, parse and chunk one file; None when nothing is left to write.
    ``skipped``: how the file was skipped with a warning before, if it was."""
    read_at = time.time_ns()
    limit = file_limit(settings, item.kind)
    source = source_for(item.path, session_tools=settings.session_tools)
    assert source is not None, "scans list only the files a source owns"
    try:
        data, stamp = _read(item.file(settings.root), limit, isinstance(source, AppendOnly))
    except FileNotFoundError:
        _drop(store, item.path, state, report, None)  # vanished after the scan
        return None
    except OSError as exc:
        _drop(store, item.path, state, report, f"{item.path}: skipped, {exc}")
        return None
    if stamp.size > limit and (state is None or state.stamp.size <= limit):  # said once, not on every append
        report.warn(f"{item.path}: {over_bound(stamp.size, limit, nothing=not data)}")
    digest = content_hash(data)
    if state is not None and state.hash == digest:
        store.touch_file(item.path, stamp, indexed_at_ns=read_at)
        if skipped is not None:  # indexed as it is (a log over its bound skipped by an older memdex)
            store.forget_skipped(item.path)
        report.unchanged_hash += 1
        return None
    try:
        resume = resume_line(store, source, item.path, state, stamp, data)
        if resume is None:
            note = source.parse(data)
        else:  # a log that only grew: its last chunk and what follows
            warned = data.count(b"\n", 0, state.stamp.size) if state is not None else 0  # lines read whole before
            tail = data[line_offset(data, resume) :]
            note = source.parse_from(tail, resume, warned_through=warned)  # type: ignore[union-attr]
            report.tail_only += 1
        chunks = source.chunk(note, count_tokens=embedder.count_tokens, max_tokens=embedder.max_tokens)
        title = file_title(item.path, item.date, note.frontmatter)
    except NotText as exc:
        _drop(store, item.path, state, report, f"{item.path}: skipped, {exc}")
        return None
    except Exception as exc:  # noqa: BLE001 - one file's content never stops the sync of the others
        log.debug("cannot parse %s", item.path, exc_info=True)
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        _drop(store, item.path, state, report, f"{item.path}: skipped, cannot parse it ({type(exc).__name__}: {detail})")
        return None
    for message in note.warnings:
        report.warn(f"{item.path}: {message}")
    headings = {block.start for block in note.blocks if block.kind == "heading"}
    for chunk in chunks:
        if chunk.oversized and item.kind != "session":  # a long message is normal in a transcript, and pooled
            report.warn(_oversized_message(item.path, chunk, embedder, is_heading=chunk.start_line in headings))
    record = FileRecord(
        path=item.path, kind=item.kind, date=item.date, stamp=stamp, hash=digest,
        frontmatter=note.frontmatter, title=title,
    )  # fmt: skip
    size_read = len(data) if len(data) != stamp.size else None  # a log over its bound: the part within it
    return Prepared(item, record, chunks, read_at, keep_before=resume, size_read=size_read)


def _oversized_message(path: str, chunk: Chunk, embedder: Embedder, *, is_heading: bool) -> str:
    """Blame the right cause: the line itself, or the heading path prefixed to it."""
    window = f"the model's {embedder.max_tokens}-token window"
    if is_heading:
        return (
            f"{path}:{chunk.start_line}: heading longer than {window}; it is shortened in the heading path "
            "of the chunks below it, its own vector pools windows over all of it"
        )
    if embedder.count_tokens([chunk.text])[0] <= embedder.max_tokens:
        return (
            f"{path}:{chunk.start_line}: line plus its heading path is longer than {window}; "
            "its vector pools windows over all of it"
        )
    return (
        f"{path}:{chunk.start_line}: line longer than {window}; "
        "its vector pools windows over all of it"
    )


def over_bound(size: int, limit: int, *, nothing: bool = False) -> str:
    """Why only part of a log over its bound is indexed; ``nothing``: why none of it is (its
    first line is longer than the bound, so no whole line lies within it)."""
    if nothing:
        return (
            f"its first line is longer than the {mib(limit)} limit, so nothing of it is indexed "
            f"(raise session_max_file_bytes to index it): {mib(size)} is over the {mib(limit)} limit"
        )
    return (
        f"only its first {mib(limit)} are indexed (raise session_max_file_bytes for the rest): "
        f"{mib(size)} is over the {mib(limit)} limit"
    )


def _read(path: Path, limit: int, append_only: bool) -> tuple[bytes, FileStamp]:
    """Read a file and the stat of the very handle we read from; a file over ``limit`` is
    refused (``OSError``), an append-only log's read is its whole lines within it.

    The handle's stat is taken before and after the read; while they differ
    (a writer was busy), the read is repeated a few times. The stamp returned
    is the one from before the read, so a file changed during the read never
    looks unchanged to a later stat check.
    """
    with open_memory_file(path) as handle:  # a link's vetted target; never a FIFO or a device
        for _ in range(READ_RETRIES + 1):
            before = os.fstat(handle.fileno())
            if before.st_size > limit and not append_only:
                raise OSError(f"{mib(before.st_size)} is over the {mib(limit)} limit")
            handle.seek(0)
            data = lines_within(handle, limit) if before.st_size > limit else handle.read()
            if FileStamp.of(os.fstat(handle.fileno())) == FileStamp.of(before):
                break
    return data, FileStamp.of(before)


def file_limit(settings: Settings, kind: str) -> int:
    """The size over which a file of ``kind`` is skipped: transcripts have their own bound."""
    return settings.session_max_file_bytes if kind == "session" else settings.max_file_bytes


def _drop(store: IndexStore, path: str, state: FileState | None, report: SyncReport, message: str | None) -> None:
    """A file that cannot be indexed keeps no rows: the index mirrors what is readable."""
    if message:
        report.warn_skipped(message)
    if state is not None:
        store.remove_file(path)
        report.removed += 1


def file_title(path: str, day: str | None, frontmatter: dict[str, object]) -> str:
    """Searchable words that name a file: its path words, its date, frontmatter title and tags."""
    pure = PurePosixPath(path)
    words = [part for part in pure.parent.parts] + [pure.stem.replace("-", " ").replace("_", " ")]
    if day:
        parsed = Date.fromisoformat(day)
        words.append(f"{parsed:%A} {parsed.day} {parsed:%B} {parsed.year}")
    for key in ("title", "tags", "aliases"):
        value = frontmatter.get(key)
        if isinstance(value, (list, tuple)):
            words.extend(str(v)[:TITLE_VALUE_CHARS] for v in value)
        elif value:
            words.append(str(value)[:TITLE_VALUE_CHARS])
    return " ".join(words)[:TITLE_CHARS]  # copied into every chunk's full-text row: bounded
