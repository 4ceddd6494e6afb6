"""What a sync did: counts, warnings, and the progress callback's shape.

Shared by the sync (which fills it), the writer (which counts embeddings in it)
and everything that prints or returns it (CLI, API, watcher, MCP).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from indexer.errors import one_line

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (files done, files to do)
# Every warning about a skipped file reads "PATH: skipped, REASON" (scan's and sync's alike).
SKIPPED_MARK = ": skipped, "

@dataclass
class SyncReport:
    files_seen: int = 0
    skipped_unchanged_stat: int = 0
    unchanged_hash: int = 0
    reindexed: int = 0
    removed: int = 0
    skipped_with_warning: int = 0  # files skipped in this run, each with one warning
    skipped_as_before: int = 0  # files skipped (and warned about) before, unchanged since: no new warning
    reread: int = 0  # files read again because they changed while being embedded
    tail_only: int = 0  # logs that only grew: parsed, chunked and embedded from their last chunk on
    rewritten_elsewhere: int = 0  # unchanged here, but replaced in the shared index by another writer: indexed again
    left_to_other_writers: int = 0  # not in this root, but never indexed by it (another root's or host's): kept
    chunks_embedded: int = 0  # distinct texts sent to the model
    chunks_from_cache: int = 0  # chunks written whose vector the embedding cache already held
    chunks_deduplicated: int = 0  # chunks written with a text another chunk of this run had embedded
    seconds: float = 0.0
    full_reembed_reason: str | None = None
    symlinks: dict[str, str] = field(default_factory=dict)  # symlinked notes seen: link -> target
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        message = one_line(message)
        if message in self.warnings:
            return  # e.g. a file read again after it changed: said once is enough
        log.warning("%s", message)
        self.warnings.append(message)

    def warn_skipped(self, message: str) -> None:
        """A warning about a file that is skipped: counted in ``skipped_with_warning``."""
        if one_line(message) not in self.warnings:
            self.skipped_with_warning += 1
        self.warn(message)
