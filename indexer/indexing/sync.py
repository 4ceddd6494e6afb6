"""Plan and apply changes: decide which memory files to read (``prepare`` reads them).

For each memory file: same size and mtime as indexed -> skip without reading;
same content hash -> update the stat only; otherwise parse, chunk, embed the
chunk texts the cache does not know, and replace the file's rows in one
transaction. Files that are gone lose their rows. Embedding runs over groups
of files so the model sees full batches.

A file that changes while it is being embedded is read again at once, and
if it keeps changing, the version read is written anyway (``writer.py``).

A file skipped with a warning (unreadable, too large, not text) is recorded
with its stamp in ``skipped``: while the stamp stays the same, later syncs
skip it silently instead of warning again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterable

from indexer.config.settings import CHUNKER_VERSION, Settings
from indexer.embedding.protocol import Embedder
from indexer.errors import one_line
from indexer.sources.catalog import place_of, scan_all, scan_all_paths
from indexer.sources.discover import FileStamp, MemoryFile, classify, is_utf8
from indexer.store import FileState, IndexStore, SkippedFile, VectorCache
from indexer.store.tokenizer import TOKENIZER_VERSION

from .prepare import TOO_LARGE, file_limit, prepare_file
from .report import SKIPPED_MARK, Progress, SyncReport
from .tail import rebound
from .writer import Prepared as _Prepared
from .writer import Writer

log = logging.getLogger(__name__)

# A file whose mtime is this close to the moment it was read may have been
# written again within the same timestamp tick, so the stat is not trusted.
RACY_WINDOW_NS = 1_000_000_000
# meta key: the daily folders the files' kinds and dates were derived with.
CLASSIFICATION_KEY = "daily_folders"
# meta key: the rules kinds and dates were derived by (2: slugged daily files, YYYY-MM-DD-slug.md, are dated).
CLASSIFIER_KEY = "classifier"
CLASSIFIER_VERSION = "2"
# meta key: whether the transcripts were read with their tool traffic (Settings.session_tools).
SESSION_TOOLS_KEY = "session_tools"
TOKENIZER_KEY = "tokenizer"  # meta: tokenizer.TOKENIZER_VERSION the keyword index was built with


def sync(
    settings: Settings,
    store: IndexStore,
    cache: VectorCache,
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
    keyword_only = keyword_index_only(store.meta(), embedder)  # vectors from the cache (announced by the caller)
    report.full_reembed_reason = _check_configuration(store, cache, embedder)
    if report.full_reembed_reason:
        paths = None  # every file is indexed again
        if keyword_only:  # announced by the caller (api.sync); every vector comes from the cache
            report.full_reembed_reason = None
        else:
            report.warn(rebuild_message(report.full_reembed_reason))
    bound, reread, bound_warning = rebound(settings, store)
    if bound_warning:
        report.warn(bound_warning)
    if bound != settings.session_max_file_bytes:  # another writer's larger bound is the index's
        settings = dataclasses.replace(settings, session_max_file_bytes=bound)
    if reclassify(settings, store) | reread:
        paths = None  # files whose kind or date (or indexed part) changed are read again, wherever they are
    if paths is None:
        found, scan_warnings = scan_all(
            settings.root, index_dir=settings.index_dir, daily_folders=settings.daily_folders,
            sessions=settings.session_labels,
        )  # fmt: skip
        known = store.file_states()
        skipped = store.skipped_files()
    else:
        paths = set(paths)
        found, scan_warnings = scan_all_paths(
            settings.root, paths, index_dir=settings.index_dir, daily_folders=settings.daily_folders,
            sessions=settings.session_labels,
        )  # fmt: skip
        known = store.file_states(under=paths)
        skipped = store.skipped_files(under=paths)
    scan_skipped = _report_scan_warnings(settings, store, report, scan_warnings, skipped)
    report.files_seen = len(found)
    report.symlinks = {item.path: item.target for item in found if item.target is not None}
    to_read = []
    for item in found:
        if rehash:
            to_read.append(item)
        elif _unchanged_by_stat(item, known.get(item.path)):
            if known[item.path].rewritten_elsewhere:
                report.rewritten_elsewhere += 1
                report.warn(
                    f"{item.path}: rewritten in the index by another writer since this root indexed it; "
                    "indexing this root's file again"
                )
                to_read.append(item)
            else:
                report.skipped_unchanged_stat += 1
        elif _still_skipped(item, skipped.get(item.path), file_limit(settings, item.kind)):
            report.skipped_as_before += 1  # still the same bad file: no second warning
        else:
            to_read.append(item)

    def prepare(item: MemoryFile) -> _Prepared | None:
        before = report.skipped_with_warning
        read_at = time.time_ns()
        prepared = prepare_file(settings, store, embedder, item, known.get(item.path), report, skipped.get(item.path))
        if prepared is None and report.skipped_with_warning > before:
            # Skipped with a warning: remember its stamp so that, unchanged, it is skipped silently.
            reason = report.warnings[-1].partition(SKIPPED_MARK)[2] or report.warnings[-1]
            store.record_skipped(item.path, item.stamp, reason=reason, skipped_at_ns=read_at)
        return prepared

    writer = Writer(settings.root, store, cache, embedder, report, prepare, progress=progress, total=len(to_read),
                    batch_size=settings.embed_batch_size)
    with store.bulk_load(files=len(to_read)):
        try:
            for item in to_read:
                writer.add(item)
            writer.flush()
        except BaseException as exc:
            try:
                if isinstance(exc, KeyboardInterrupt):
                    writer.keep_returned()
            finally:  # a second Ctrl-C while caching still stops the worker
                writer.close(wait=False)  # an error or a stop shows now: the model's current call is not waited for
            raise
        writer.close()  # the model's worker thread (``pipeline``) ends (it has nothing left to do)
        # Inside the bulk load: deletions count toward its end (SQLite's FTS5 merge after many).
        present = {item.path for item in found}
        for path in sorted(set(known) - present):
            if not known[path].seen:  # another root's or host's file in a shared namespace: not ours to remove
                report.left_to_other_writers += 1
                continue
            store.remove_file(path)
            report.removed += 1
            log.info("removed %s", one_line(path))
    if report.left_to_other_writers:
        report.warn(
            f"{report.left_to_other_writers} indexed files are not in this root and were never indexed from it "
            "(another root or host wrote them): left in place"
        )
    for path in sorted(set(skipped) - present - set(known) - scan_skipped):
        store.forget_skipped(path)
    store.set_meta(last_sync=time.time())
    report.seconds = time.perf_counter() - started
    return report


def _report_scan_warnings(
    settings: Settings, store: IndexStore, report: SyncReport, warnings: list[str], skipped: dict[str, SkippedFile]
) -> set[str]:
    """Report what the scan skipped (broken or outside symlinks, names that are not UTF-8),
    except what was skipped before with the same stamp. Returns the keys of those skips."""
    keys = set()
    for message in warnings:
        rel, mark, reason = message.partition(SKIPPED_MARK)
        if not mark:
            report.warn(message)
            continue
        key = rel if is_utf8(rel) else one_line(rel)  # the table's text must be UTF-8
        keys.add(key)
        checked_at = time.time_ns()
        try:
            stamp = FileStamp.of(os.lstat(place_of(settings.root, settings.session_labels, rel)))
        except OSError:
            stamp = None
        record = skipped.get(key)
        if stamp is not None and record is not None and record.stamp == stamp and (
            stamp.mtime_ns + RACY_WINDOW_NS < record.skipped_at_ns
        ):
            report.skipped_as_before += 1
            continue
        report.warn_skipped(message)
        if stamp is not None:
            store.record_skipped(key, stamp, reason=reason, skipped_at_ns=checked_at)
    return keys


def _check_configuration(store: IndexStore, cache: VectorCache, embedder: Embedder) -> str | None:
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


def reclassify(settings: Settings, store: IndexStore) -> bool:
    """When the daily folders differ from the ones the index was classified with,
    mark the files whose kind or date changes so that this sync reads them again
    (their kind, date and full-text title words change; vectors come from the cache).
    True when some file must be read again. The same when the classification rules
    changed (``CLASSIFIER_VERSION``), and for the transcripts when ``session_tools`` changed."""
    wanted = classification(settings.daily_folders)
    meta = store.meta()
    tools = str(int(settings.session_tools))
    same_rules = meta.get(CLASSIFICATION_KEY) == wanted and meta.get(CLASSIFIER_KEY) == CLASSIFIER_VERSION
    if same_rules and meta.get(SESSION_TOOLS_KEY) == tools:
        return False
    descriptions = store.file_descriptions()
    changed = [] if same_rules else [
        path for path, (kind, day, _) in descriptions.items() if classify(path, settings.daily_folders) != (kind, day)
    ]  # fmt: skip
    retooled = [path for path, (kind, _, _) in descriptions.items() if kind == "session"]
    if meta.get(SESSION_TOOLS_KEY, "0") == tools:
        retooled = []
    store.invalidate_files(sorted(set(changed + retooled)))
    store.set_meta(**{CLASSIFICATION_KEY: wanted, CLASSIFIER_KEY: CLASSIFIER_VERSION, SESSION_TOOLS_KEY: tools})
    if changed:
        log.warning("daily folders are now %s: re-classifying %d files", ", ".join(settings.daily_folders), len(changed))
    if retooled:
        log.warning("session_tools is now %s: reading %d transcripts again", settings.session_tools, len(retooled))
    return bool(changed or retooled)


def classification(daily_folders: tuple[str, ...]) -> str:
    """How meta records the daily folders the index's kinds and dates were derived with."""
    return json.dumps(sorted(daily_folders))


def _configuration(embedder: Embedder) -> dict[str, str]:
    return {
        "model": embedder.model_id,
        "dimensions": str(embedder.dimensions),
        "chunker_version": str(CHUNKER_VERSION),
        TOKENIZER_KEY: TOKENIZER_VERSION,
    }


def rebuild_message(reason: str) -> str:
    """What a full pass says: every chunk is re-embedded when the model changed; after a
    chunker or tokenizer change only chunks whose text changed are (the rest come from the
    embedding cache), so it does not claim more."""
    if all(part.startswith(("chunker_version ", "tokenizer ")) for part in reason.split(", ")):
        return f"indexing every file again: {reason}; unchanged chunk texts take their vectors from the embedding cache"
    return f"re-embedding every chunk: {reason}"


def keyword_index_only(meta: dict[str, str], embedder: Embedder) -> bool:
    """True when the keyword tokenizer is all that changed: a rebuild takes every
    vector from the embedding cache (same chunks, same model)."""
    wanted = _configuration(embedder)
    changed = {key for key, value in wanted.items() if meta.get(key, "1" if key == TOKENIZER_KEY else None) != value}
    return "model" in meta and changed == {TOKENIZER_KEY}


def configuration_change(meta: dict[str, str], embedder: Embedder) -> str | None:
    """Why an index built as ``meta`` says must be embedded again, or None."""
    wanted = _configuration(embedder)
    if "model" not in meta:
        return None  # a new index
    built = {**meta, TOKENIZER_KEY: meta.get(TOKENIZER_KEY, "1")}  # an index from before issue 19 has no record
    changes = [f"{key} {built.get(key)} -> {value}" for key, value in wanted.items() if built.get(key) != value]
    return ", ".join(changes) or None


def _unchanged_by_stat(item: MemoryFile, state: FileState | SkippedFile | None) -> bool:
    """Same stamp as when indexed (or skipped), and the file was not written in the same
    timestamp tick as that read (``RACY_WINDOW_NS``)."""
    return (
        state is not None
        and state.stamp == item.stamp
        and item.stamp.mtime_ns + RACY_WINDOW_NS
        < (state.indexed_at_ns if isinstance(state, FileState) else state.skipped_at_ns)
    )


def _still_skipped(item: MemoryFile, record: SkippedFile | None, limit: int) -> bool:
    """A file skipped with a warning before, unchanged since, and not too large only
    under a size limit that has been raised meanwhile (a transcript is never too large:
    its lines within the bound are indexed)."""
    if record is None or not _unchanged_by_stat(item, record):
        return False
    return (item.stamp.size > limit and item.kind != "session") or not record.reason.endswith(TOO_LARGE)
