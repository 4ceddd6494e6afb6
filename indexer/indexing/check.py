"""``memdex check``: is the index sound, and does it match the Markdown?

Findings are "corrupt" (the database or its tables disagree with themselves:
rebuild) or "drift" (the index is behind the files or built with another
model: a sync fixes it). Reads only; repairing is the caller's choice.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.config.settings import CHUNKER_VERSION, Settings
from indexer.errors import mib, one_line
from indexer.sources.base import embedded_text, text_hash
from indexer.sources.catalog import scan_all
from indexer.sources.discover import classify
from indexer.sources.markdown.parse import NotText, decode, read_frontmatter, split_lines
from indexer.sources.read import lines_within, open_memory_file
from indexer.sources.registry import source_for
from indexer.store import Engine, IndexStore
from indexer.store.tokenizer import TOKENIZER_VERSION, fts_text

from .prepare import file_limit, file_title
from .sync import CLASSIFICATION_KEY, CLASSIFIER_KEY, CLASSIFIER_VERSION, TOKENIZER_KEY, classification
from .tail import index_bound
from .writer import content_hash

log = logging.getLogger(__name__)

HEALTHY, DRIFT, CORRUPT = 0, 1, 2
STATES = {HEALTHY: "healthy", DRIFT: "drift", CORRUPT: "corrupt"}
# What indexes from before the daily-folders setting were classified with.
LEGACY_DAILY_FOLDERS = ("daily",)
SHOWN_PER_PROBLEM = 3  # example paths named in one finding


@dataclass
class CheckReport:
    problems: list[tuple[int, str]] = field(default_factory=list)  # (DRIFT or CORRUPT, message)
    notes: list[str] = field(default_factory=list)  # what is as it should be but worth knowing
    files: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return max((level for level, _ in self.problems), default=HEALTHY)

    @property
    def state(self) -> str:
        return STATES[self.exit_code]

    def add(self, level: int, message: str) -> None:
        self.problems.append((level, one_line(message)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "exit_code": self.exit_code,
            "problems": [{"kind": STATES[level], "message": message} for level, message in self.problems],
            "notes": self.notes,
            "files": self.files,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
        }


def check_index(settings: Settings, engine: Engine, *, model_id: str) -> CheckReport:
    """Run every check; engine errors that mean damage become "corrupt" findings."""
    started = time.perf_counter()
    report = CheckReport()
    store = engine.store
    steps: list[Callable[[], None]] = [
        lambda: _check_rows(store, report),
        lambda: _check_chunk_texts(store, report),
        lambda: _check_vectors(engine, report),
        lambda: _check_configuration(store, report, model_id=model_id),
        lambda: _check_files(settings, store, report),
    ]
    try:
        for message in engine.storage_checks():  # the engine's own (SQLite: FTS5 and page checks)
            report.add(CORRUPT, message)
        report.notes.extend(engine.storage_notes())  # PostgreSQL: a big vector table without its HNSW index
        # Everything after the engine's checks reads one snapshot, so a writer running
        # meanwhile (the watcher) cannot make the rows look inconsistent.
        with store.read_snapshot():
            for step in steps:
                if report.exit_code == CORRUPT:
                    break  # later checks would only repeat it, or trip over it
                step()
    except Exception as exc:
        if not engine.is_damage(exc):
            raise
        report.add(CORRUPT, f"the {engine.name} engine reports damage: {exc}")
    report.seconds = time.perf_counter() - started
    return report


def _check_rows(store: IndexStore, report: CheckReport) -> None:
    counts = store.consistency_counts()
    report.files, report.chunks = counts.pop("files"), counts.pop("chunks")
    for what, count in counts.items():
        if count:
            report.add(CORRUPT, f"{count} {what}")


def _check_chunk_texts(store: IndexStore, report: CheckReport) -> None:
    bad = [
        f"{path}:{start}"
        for path, start, heading, text, digest in store.chunk_texts()
        if text_hash(embedded_text(heading, text)) != digest
    ]
    if bad:
        report.add(CORRUPT, f"{len(bad)} chunks whose text does not match its hash ({_examples(bad)})")


def _check_vectors(engine: Engine, report: CheckReport) -> None:
    """Each stored vector must equal the cached embedding of its chunk's text."""
    store = engine.store
    meta = store.meta()
    if not store.vec_enabled or store.vec_dimensions() is None or meta.get("vec_stale") == "1" or "model" not in meta:
        return
    cache = engine.existing_cache(model_id=meta["model"], dimensions=int(meta["dimensions"]))
    if cache is None:
        return
    try:
        stored = store.vectors_by_chunk()
        hashes = store.chunk_hashes()
        cached = cache.get_many(digest for _, digest in hashes)
    finally:
        cache.close()
    bad = [
        chunk_id
        for chunk_id, digest in hashes
        if digest in cached and chunk_id in stored and cached[digest].tobytes() != stored[chunk_id]
    ]
    if bad:
        report.add(CORRUPT, f"{len(bad)} stored vectors differ from the embedding of their chunk's text")


def _check_configuration(store: IndexStore, report: CheckReport, *, model_id: str) -> None:
    meta = store.meta()
    if "model" not in meta:
        if report.files:
            report.add(CORRUPT, "the index has files but no model recorded")
        return
    if meta["model"] != model_id or meta.get("chunker_version") != str(CHUNKER_VERSION):
        report.add(
            DRIFT,
            f"built with model {meta['model']} (chunker {meta.get('chunker_version')}); "
            f"configured: {model_id} (chunker {CHUNKER_VERSION})",
        )
    elif meta.get(TOKENIZER_KEY) != TOKENIZER_VERSION:
        report.add(
            DRIFT,
            f"keyword index built with tokenizer {meta.get(TOKENIZER_KEY, '1')}, this memdex uses {TOKENIZER_VERSION} "
            "(the next 'memdex index' rebuilds it once from the embedding cache)",
        )


def _check_files(settings: Settings, store: IndexStore, report: CheckReport) -> None:
    """Every indexed file is on disk with the same bytes; every indexable file is indexed."""
    found, _ = scan_all(
        settings.root, index_dir=settings.index_dir, daily_folders=settings.daily_folders,
        sessions=settings.session_labels,
    )  # fmt: skip
    recorded = store.meta().get(CLASSIFICATION_KEY)
    # Rows are compared with the classification they were written under; a
    # changed setting is drift that the next sync fixes.
    built_with = tuple(json.loads(recorded)) if recorded else LEGACY_DAILY_FOLDERS
    if recorded != classification(settings.daily_folders) and store.file_states():
        report.add(
            DRIFT,
            f"kinds and dates were derived with daily folders {', '.join(built_with)}; "
            f"configured: {', '.join(settings.daily_folders)}",
        )
    old_rules = store.meta().get(CLASSIFIER_KEY) != CLASSIFIER_VERSION and bool(store.file_states())
    if old_rules:
        report.add(DRIFT, "kinds and dates were derived before slugged daily files (YYYY-MM-DD-slug.md) were dated")
    indexed = store.file_states()
    skipped = store.skipped_files()  # skipped with a warning: consistent while their stamp is the same
    descriptions = store.file_descriptions()
    chunks = store.chunks_with_fts()
    keyword_current = store.meta().get(TOKENIZER_KEY, "1") == TOKENIZER_VERSION
    on_disk = {item.path for item in found}
    not_here = set(indexed) - on_disk
    # In a shared namespace another root or host wrote some files: not this root's to have
    # (a sync leaves them in place), so not drift either.
    others = sorted(path for path in not_here if not indexed[path].seen)
    gone = sorted(not_here - set(others))
    if others:
        report.notes.append(one_line(
            f"{len(others)} indexed files were written by another root or host and are not in this root "
            f"({_examples(others)}); left to their writers"
        ))
    changed, missing, wrong, past_bound, first_line_over = [], [], [], [], []
    bound = index_bound(settings, store.meta())  # the index's (another writer's may be larger)
    settings = dataclasses.replace(settings, session_max_file_bytes=bound)
    for item in found:
        limit = file_limit(settings, item.kind)
        data = _read_indexable(item.file(settings.root), limit, text=item.kind != "session")
        if item.kind == "session" and item.stamp.size > limit:
            # its lines within the bound are indexed; none when its first line is longer
            (first_line_over if data == b"" else past_bound).append(item.path)
        if item.path in indexed:
            if data is None or content_hash(data) != indexed[item.path].hash:
                changed.append(item.path)
            elif not _rows_match_guarded(
                item.path, data, descriptions[item.path], chunks.get(item.path, []), built_with, keyword_current,
                session_tools=settings.session_tools, old_rules=old_rules,
            ):
                wrong.append(item.path)
        elif (
            data is not None
            and (item.path not in skipped or skipped[item.path].stamp != item.stamp)
            and _parses(item.path, data)  # a sync skips what it cannot parse, with a warning
        ):
            missing.append(item.path)
    if past_bound:
        report.notes.append(one_line(
            f"{len(past_bound)} transcripts are over session_max_file_bytes ({_examples(past_bound)}): "
            f"only their lines within the first {mib(bound)} are indexed"
        ))  # fmt: skip
    if first_line_over:
        report.notes.append(one_line(
            f"{len(first_line_over)} transcripts have a first line longer than the {mib(bound)} limit "
            f"(session_max_file_bytes; {_examples(first_line_over)}): nothing of them is indexed"
        ))  # fmt: skip
    if wrong:
        report.add(CORRUPT, f"{len(wrong)} files whose rows do not match their Markdown ({_examples(wrong)})")
    for paths, what in ((gone, "indexed files no longer on disk"), (changed, "files changed since indexed"),
                        (missing, "memory files not in the index")):  # fmt: skip
        if paths:
            report.add(DRIFT, f"{len(paths)} {what} ({_examples(paths)})")


def _rows_match(
    path: str,
    data: bytes,
    description: tuple[str, str | None, dict[str, Any]],
    chunks: list[tuple[int, int, str, str, tuple[str, str, str]]],
    daily_folders: tuple[str, ...],
    keyword_current: bool = True,
    *,
    session_tools: bool = False,
    old_rules: bool = False,
) -> bool:
    """The rows of a file whose hash matches say what its Markdown says: kind,
    date and frontmatter; chunk texts equal to their line ranges (as the file's source
    reads them back: a transcript's turns), with their full-text copies; every
    non-blank body line in exactly one chunk. With ``keyword_current`` False (a keyword
    index of an older tokenizer, reported as drift) the full-text copies are not compared."""
    source = source_for(path, session_tools=session_tools)
    lines = source.readable_lines(data) if source is not None else split_lines(decode(data)[0])
    frontmatter, body_start, _ = read_frontmatter(lines)
    kind, day = classify(path, daily_folders)
    if description != (kind, day, frontmatter) and not (old_rules and description == ("note", None, frontmatter)):
        return False
    title = file_title(path, description[1], frontmatter)  # as stored (old rules: undated)
    if frontmatter and not any(line.strip() for line in lines[body_start - 1 :]):
        body_start = 1  # frontmatter only: its lines are the chunks
    covered = 0  # last line covered so far
    for start, end, heading, chunk_text, fts in chunks:
        if start <= covered or start < body_start or end > len(lines) or end < start:
            return False
        if chunk_text != "\n".join(lines[start - 1 : end]) or (
            keyword_current and fts != (fts_text(chunk_text), fts_text(heading), fts_text(title))
        ):
            return False
        if any(line.strip() for line in lines[covered:start - 1][max(0, body_start - 1 - covered):]):
            return False  # a non-blank line between chunks belongs to none
        covered = end
    return not any(line.strip() for line in lines[max(covered, body_start - 1):])


def _rows_match_guarded(path: str, data: bytes, *args: Any, **options: Any) -> bool:
    try:
        return _rows_match(path, data, *args, **options)
    except Exception:  # noqa: BLE001 - one file's content never stops the check
        log.debug("cannot compare %s", path, exc_info=True)
        return False


def _parses(path: str, data: bytes) -> bool:
    source = source_for(path)
    try:
        if source is None:
            return False
        source.parse(data)
    except Exception:  # noqa: BLE001 - what the sync skips with a warning
        return False
    return True


def _read_indexable(place: Path, limit: int, *, text: bool = True) -> bytes | None:
    """The file's bytes a sync would index; None for what it skips by design.
    ``text``: a note, which a sync skips when it is binary or over ``limit`` (a transcript's
    lines are judged one by one: a run of NUL bytes left by a crash is one skipped line; over
    ``limit``, its whole lines within it are indexed)."""
    try:
        with open_memory_file(place) as handle:  # a link's vetted target, as the sync reads it
            if os.fstat(handle.fileno()).st_size > limit:
                if text:
                    return None
                return lines_within(handle, limit)
            data = handle.read()
        if text:
            decode(data)
    except (OSError, NotText):
        return None
    return data


def _examples(paths: list[str]) -> str:
    shown = ", ".join(paths[:SHOWN_PER_PROBLEM])
    return shown + (f" and {len(paths) - SHOWN_PER_PROBLEM} more" if len(paths) > SHOWN_PER_PROBLEM else "")
