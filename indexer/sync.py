"""Plan and apply changes: the only code that reads note files.

For each memory file: same size and mtime as indexed -> skip without reading;
same content hash -> update the stat only; otherwise parse, chunk, embed the
chunk texts the cache does not know, and replace the file's rows in one
transaction. Files that are gone lose their rows. Embedding runs over groups
of files so the model sees full batches.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date as Date
from pathlib import Path, PurePosixPath

import numpy as np

from .chunk import Chunk, chunk_note
from .config import CHUNKER_VERSION, Settings
from .discover import FileStamp, MemoryFile, resolve_inside, scan, scan_paths
from .embed import Embedder
from .errors import PathError
from .parse import NotText, decode, parse_note, split_lines
from .store import EmbeddingCache, FileRecord, FileState, Store

log = logging.getLogger(__name__)

# A file whose mtime is this close to the moment it was read may have been
# written again within the same timestamp tick, so the stat is not trusted.
RACY_WINDOW_NS = 1_000_000_000
# Embed when this many new chunk texts are waiting (several model batches).
EMBED_GROUP = 512

# The title words (path, date, frontmatter title/tags/aliases) are copied into
# every chunk's full-text row, so they are bounded: per value and in total.
TITLE_VALUE_CHARS = 200
TITLE_CHARS = 1000

Progress = Callable[[int, int], None]


@dataclass
class SyncReport:
    files_seen: int = 0
    skipped_unchanged_stat: int = 0
    unchanged_hash: int = 0
    reindexed: int = 0
    removed: int = 0
    skipped_with_warning: int = 0
    chunks_embedded: int = 0
    chunks_from_cache: int = 0
    seconds: float = 0.0
    full_reembed_reason: str | None = None
    symlinks: dict[str, str] = field(default_factory=dict)  # symlinked notes seen: link -> target
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        message = one_line(message)
        log.warning("%s", message)
        self.warnings.append(message)


def one_line(text: str) -> str:
    """Escape newlines, other control characters and undecodable bytes (file names may hold any)."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass(frozen=True)
class _Prepared:
    """A changed file, read and chunked, waiting for its embeddings."""

    found: MemoryFile
    record: FileRecord
    chunks: list[Chunk]
    read_at_ns: int  # when the bytes were read: the racy-mtime rule compares against it


def sync(
    settings: Settings,
    store: Store,
    cache: EmbeddingCache,
    embedder: Embedder,
    *,
    progress: Progress | None = None,
    paths: Iterable[str] | None = None,
    rehash: bool = False,
) -> SyncReport:
    """Bring the index up to date with every memory file, or only with ``paths``
    (root-relative files or folders, e.g. from file events: a path that is gone
    loses its rows, a folder is walked)."""
    started = time.perf_counter()
    report = SyncReport()
    report.full_reembed_reason = _check_configuration(store, cache, embedder)
    if report.full_reembed_reason:
        report.warn(f"re-embedding every chunk: {report.full_reembed_reason}")
        paths = None  # everything must be embedded again
    if paths is None:
        found, scan_warnings = scan(settings.root, index_dir=settings.index_dir)
        known = store.file_states()
    else:
        paths = set(paths)
        found, scan_warnings = scan_paths(settings.root, paths, index_dir=settings.index_dir)
        known = store.file_states(under=paths)
    for message in scan_warnings:
        report.warn(message)
    report.files_seen = len(found)
    report.symlinks = {item.path: item.target for item in found if item.target is not None}
    to_read = [item for item in found if rehash or not _unchanged_by_stat(item, known.get(item.path))]
    report.skipped_unchanged_stat = len(found) - len(to_read)

    pending: list[_Prepared] = []
    waiting_texts = done = 0
    for item in to_read:
        prepared = _prepare(settings, store, embedder, item, known.get(item.path), report)
        if prepared is None:
            done += 1
        else:
            pending.append(prepared)
            waiting_texts += len(prepared.chunks)
        if waiting_texts >= EMBED_GROUP:
            _embed_and_write(settings, store, cache, embedder, pending, report)
            done += len(pending)
            pending, waiting_texts = [], 0
        if progress:
            progress(done, len(to_read))  # counts files finished, i.e. written or skipped
    _embed_and_write(settings, store, cache, embedder, pending, report)
    if progress and to_read:
        progress(len(to_read), len(to_read))

    present = {item.path for item in found}
    for path in sorted(set(known) - present):
        store.remove_file(path)
        report.removed += 1
        log.info("removed %s", one_line(path))
    store.set_meta(last_sync=time.time())
    report.seconds = time.perf_counter() - started
    return report


def _check_configuration(store: Store, cache: EmbeddingCache, embedder: Embedder) -> str | None:
    """Record model and chunker in meta; clear the index if they changed.

    Returns the reason for a full re-embed, or None. The vector table is
    rebuilt from the embedding cache (no model calls) when it is missing, has
    other dimensions, or was not kept up to date while sqlite-vec was missing.
    """
    meta = store.meta()
    wanted = _configuration(embedder)
    reason = configuration_change(meta, embedder)
    if reason:
        store.clear()
    if store.vec_enabled and (
        reason or meta.get("vec_stale") == "1" or store.vec_dimensions() != embedder.dimensions
    ):
        hashes = [digest for _, digest in store.chunk_hashes()]
        vectors = cache.get_many(hashes)
        if len(vectors) < len(set(hashes)):
            reason = reason or "vectors missing from the embedding cache"
            store.clear()
            vectors = {}
        store.rebuild_vectors(embedder.dimensions, vectors)
        if hashes and vectors:
            log.info("vector table rebuilt from the embedding cache (%d chunks)", len(hashes))
    wanted["vec_stale"] = "0" if store.vec_enabled else "1"
    if reason or any(meta.get(key) != value for key, value in wanted.items()):
        store.set_meta(**wanted)
    return reason


def _configuration(embedder: Embedder) -> dict[str, str]:
    return {
        "model": embedder.model_id,
        "dimensions": str(embedder.dimensions),
        "chunker_version": str(CHUNKER_VERSION),
    }


def configuration_change(meta: dict[str, str], embedder: Embedder) -> str | None:
    """Why an index built as ``meta`` says must be embedded again, or None."""
    wanted = _configuration(embedder)
    if "model" not in meta:
        return None  # a new index
    changes = [f"{key} {meta.get(key)} -> {value}" for key, value in wanted.items() if meta.get(key) != value]
    return ", ".join(changes) or None


def _unchanged_by_stat(item: MemoryFile, state: FileState | None) -> bool:
    return (
        state is not None
        and state.stamp == item.stamp
        and item.stamp.mtime_ns + RACY_WINDOW_NS < state.indexed_at_ns
    )


def _prepare(
    settings: Settings,
    store: Store,
    embedder: Embedder,
    item: MemoryFile,
    state: FileState | None,
    report: SyncReport,
) -> _Prepared | None:
    """Read, hash, parse and chunk one file; None when nothing is left to write."""
    read_at = time.time_ns()
    try:
        data, stamp = _read(settings.root / item.path, settings.max_file_bytes)
    except FileNotFoundError:
        _drop(store, item.path, state, report, None)  # vanished after the scan
        return None
    except (OSError, _TooLarge) as exc:
        _drop(store, item.path, state, report, f"{item.path}: skipped, {exc}")
        return None
    digest = content_hash(data)
    if state is not None and state.hash == digest:
        store.touch_file(item.path, stamp, indexed_at_ns=read_at)
        report.unchanged_hash += 1
        return None
    try:
        note = parse_note(data)
        chunks = chunk_note(note, count_tokens=embedder.count_tokens, max_tokens=embedder.max_tokens)
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
        if chunk.oversized:
            report.warn(_oversized_message(item.path, chunk, embedder, is_heading=chunk.start_line in headings))
    record = FileRecord(
        path=item.path, kind=item.kind, date=item.date, stamp=stamp, hash=digest,
        frontmatter=note.frontmatter, title=title,
    )  # fmt: skip
    return _Prepared(item, record, chunks, read_at)


def _oversized_message(path: str, chunk: Chunk, embedder: Embedder, *, is_heading: bool) -> str:
    """Blame the right cause: the line itself, or the heading path prefixed to it."""
    window = f"the model's {embedder.max_tokens}-token window"
    if is_heading:
        return (
            f"{path}:{chunk.start_line}: heading longer than {window}; it is shortened in the heading path "
            "of the chunks below it, its own vector covers its start, keyword search all of it"
        )
    if embedder.count_tokens([chunk.text])[0] <= embedder.max_tokens:
        return (
            f"{path}:{chunk.start_line}: line plus its heading path is longer than {window}; "
            "its vector covers the start, keyword search all of it"
        )
    return (
        f"{path}:{chunk.start_line}: line longer than {window}; "
        "its vector covers the start of the line, keyword search all of it"
    )


def _embed_and_write(
    settings: Settings,
    store: Store,
    cache: EmbeddingCache,
    embedder: Embedder,
    pending: list[_Prepared],
    report: SyncReport,
) -> None:
    if not pending:
        return
    texts = {chunk.hash: chunk.embed_text for prepared in pending for chunk in prepared.chunks}
    vectors = cache.get_many(texts)
    missing = [digest for digest in texts if digest not in vectors]
    report.chunks_from_cache += sum(1 for p in pending for c in p.chunks if c.hash in vectors)
    if missing:
        fresh = embedder.embed([texts[digest] for digest in missing])
        new = dict(zip(missing, fresh))
        cache.put_many(new)
        vectors.update(new)
        report.chunks_embedded += len(missing)
    for prepared in pending:
        path = settings.root / prepared.found.path
        if _current_stamp(path) != prepared.record.stamp:  # the stamp of the handle we read from
            # Changed or deleted while we embedded: its rows would be stale.
            # The next sync (or the watcher's event) picks up the new content.
            report.warn(f"{prepared.found.path}: changed during sync; left for the next sync")
            continue
        matrix = np.stack([vectors[c.hash] for c in prepared.chunks]) if prepared.chunks else np.zeros((0, 0))
        store.replace_file(prepared.record, prepared.chunks, matrix, indexed_at_ns=prepared.read_at_ns)
        report.reindexed += 1
        log.info("indexed %s (%d chunks)", one_line(prepared.found.path), len(prepared.chunks))


def content_hash(data: bytes) -> str:
    """The hash stored for a file's bytes (``files.hash``)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class _TooLarge(Exception):
    pass


def _read(path: Path, limit: int) -> tuple[bytes, FileStamp]:
    """Read a file and the stat of the very handle we read from."""
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        if stat.st_size > limit:
            raise _TooLarge(f"{stat.st_size / 2**20:.1f} MiB is over the {limit / 2**20:.1f} MiB limit")
        data = handle.read()
    return data, FileStamp.of(stat)


def _current_stamp(path: Path) -> FileStamp | None:
    try:
        return FileStamp.of(path.stat())
    except OSError:
        return None


def _drop(store: Store, path: str, state: FileState | None, report: SyncReport, message: str | None) -> None:
    """A file that cannot be indexed keeps no rows: the index mirrors what is readable."""
    if message:
        report.warn(message)
        report.skipped_with_warning += 1
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


def read_lines(root: Path, user_path: str, *, max_bytes: int | None = None) -> tuple[str, list[str]]:
    """The raw lines of a memory file (for ``get``), split as the chunker splits them.
    A file over ``max_bytes`` (which a sync skips) is refused."""
    rel, real = resolve_inside(root, user_path)
    try:
        if max_bytes is not None and real.stat().st_size > max_bytes:
            raise PathError(f"{rel}: over the {max_bytes / 2**20:.1f} MiB limit, so memdex does not index or serve it")
        data = real.read_bytes()
        text, _ = decode(data)
    except NotText as exc:
        raise PathError(f"{rel}: {exc}") from None
    except OSError as exc:
        raise PathError(f"{rel}: cannot read ({exc.strerror or exc})") from None
    return rel, split_lines(text)
