"""Embed and write prepared files in groups, for ``sync``.

Files are read and chunked by ``sync``; their new chunk texts are embedded in
groups (so the model sees full batches) and each file is written in one
transaction. The embedding cache is written after every model call (a few
batches), in its own transaction: a writer killed mid-group keeps what it
embedded, and its next run (or another host) takes those vectors from the cache. Just before its write, a file's stamp is compared with the stamp
of the handle it was read from. A file that only grew meanwhile (its start is
still the bytes read: a log being appended to) is written as read. A file
that changed otherwise is read again at once, up to ``REREADS`` times; if it
is still changing after that, the version that was read is written anyway.
Either way its rows describe bytes that really were the file, and they are
stored with that older stamp, so the next sync (or file event) sees a newer
one and reads the file again. So a file that is
written continuously is indexed at every sync instead of never. A file that
is gone at its last check is not written; the next sync looks again.

An oversized chunk (a line longer than the model's window) is embedded as
token windows whose vectors are pooled into its one vector (``windows``).

Counters: ``chunks_embedded`` counts the texts sent to the model (an oversized
chunk counts once, however many of its windows were sent);
every chunk written that was not one of those counts as ``chunks_from_cache``
(its vector was in the embedding cache before) or ``chunks_deduplicated``
(another chunk of this run had the same text, which was embedded once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.embedding.protocol import Embedder
from indexer.sources.base import Chunk
from indexer.sources.discover import FileStamp, MemoryFile
from indexer.sources.read import open_memory_file
from indexer.store import FileRecord, IndexStore, VectorCache

from .windows import Pooled, pooled

if TYPE_CHECKING:
    from .report import Progress, SyncReport

log = logging.getLogger(__name__)

# Embed when this many new chunk texts are waiting (several model batches).
EMBED_GROUP = 512
# Model batches per embedding call; the cache is written after each call, so a writer killed
# mid-group loses at most this many batches of work (bench/compare_commits.py, --only index).
BATCHES_PER_CALL = 4
# A file that changed between its read and its write is read again this many times (once
# catches a save made while the model ran; more would only delay a file that never stops).
REREADS = 1


@dataclass(frozen=True)
class Prepared:
    """A changed file, read and chunked, waiting for its embeddings."""

    found: MemoryFile
    record: FileRecord
    chunks: list[Chunk]
    read_at_ns: int  # when the bytes were read: the racy-mtime rule compares against it
    keep_before: int | None = None  # a log that only grew: its stored chunks before this line stay


class Writer:
    """Reads files, embeds their new chunk texts in groups, writes each file,
    reads a file again when it changed meanwhile, and reports progress."""

    def __init__(
        self,
        root: Path,
        store: IndexStore,
        cache: VectorCache,
        embedder: Embedder,
        report: SyncReport,
        prepare: Callable[[MemoryFile], Prepared | None],
        *,
        progress: Progress | None,
        total: int,
        batch_size: int = 32,
    ) -> None:
        self.root, self.store, self.cache, self.embedder = root, store, cache, embedder
        # Texts per model call, each call's vectors cached as it returns: a few model batches, since
        # calls of one batch took 1.01-1.06x the model time of one call of 512 texts, of 4 batches
        # 1.01-1.02x (bench/bench_embed_calls.py, two runs).
        self.call_size = max(1, batch_size) * BATCHES_PER_CALL
        self.report, self._prepare = report, prepare
        self.progress, self.total = progress, total
        self.pending: list[Prepared] = []
        self.waiting_texts = 0
        self.done = 0  # files finished: written, unchanged or skipped
        self.embedded_now: set[str] = set()  # text hashes sent to the model in this run
        self.credited: set[str] = set()  # ... of which a written chunk was counted as "embedded"

    def add(self, item: MemoryFile) -> None:
        prepared = self._prepare(item)
        self.add_prepared(prepared, into=self.pending)
        if prepared is not None:
            self.waiting_texts += len(prepared.chunks)
        if self.waiting_texts >= EMBED_GROUP:
            self.flush()
        self._tell(self.done)

    def flush(self) -> None:
        """Embed and write what is pending; read again (and write) what changed meanwhile."""
        pending, self.pending, self.waiting_texts = self.pending, [], 0
        for attempt in range(REREADS + 1):
            if not pending:
                break
            last = attempt == REREADS
            changed = self._embed_and_write(pending, last_attempt=last)
            self.done += len(pending)
            pending = []
            for item in changed:
                if last:  # gone just before its write: not written; the next sync looks again
                    log.info("%s vanished while it was indexed; left for the next sync", _one_line(item.path))
                    continue
                self.done -= 1
                self.report.reread += 1
                log.info("%s changed while it was embedded; reading it again", _one_line(item.path))
                self.add_prepared(self._prepare(item), into=pending)
        self._tell(self.done)

    def add_prepared(self, prepared: Prepared | None, *, into: list[Prepared]) -> None:
        if prepared is None:
            self.done += 1
        else:
            into.append(prepared)

    def _embed_and_write(self, pending: list[Prepared], *, last_attempt: bool) -> list[MemoryFile]:
        """Returns the files that changed since they were read (not written, unless ``last_attempt``)."""
        texts: dict[str, str] = {}  # hash -> text the model sees: chunks, and windows of oversized ones
        pools: dict[str, Pooled] = {}  # oversized chunk hash -> its windows
        for chunk in (chunk for prepared in pending for chunk in prepared.chunks):
            if not chunk.oversized:
                texts[chunk.hash] = chunk.embed_text
            elif chunk.hash not in pools:
                pools[chunk.hash] = pooled(chunk, self.embedder.count_tokens, self.embedder.max_tokens)
        for pool in pools.values():
            texts.update(pool.texts)
        vectors = self.cache.get_many(texts)
        missing = [digest for digest in texts if digest not in vectors]
        new = self._embed(missing, texts, files=len(pending)) if missing else {}
        vectors.update(new)
        # An oversized chunk's vector is always pooled from its windows' (the cache may hold,
        # under the chunk's hash, the vector of its start written by an older memdex).
        pooled_vectors = {digest: pool.vector(vectors) for digest, pool in pools.items()}
        if pooled_vectors:
            self.cache.put_many(pooled_vectors)
            vectors.update(pooled_vectors)
        plain = {chunk.hash for prepared in pending for chunk in prepared.chunks if not chunk.oversized}
        fresh = {digest for digest in new if digest in plain}
        fresh |= {digest for digest, pool in pools.items() if any(window in new for window in pool.texts)}
        self.embedded_now.update(fresh)
        self.report.chunks_embedded += len(fresh)
        changed = []
        for prepared in pending:
            path = prepared.found.file(self.root)  # what the sync read
            current = current_stamp(path)
            if current != prepared.record.stamp:  # the stamp of the handle we read from
                if current is not None and _only_grew(path, prepared.record):
                    # Appended to (a log): what was read is still the start of the file, and
                    # reading it again would only chase the writer. Written as read; its
                    # stamp is older than the file's, so the next sync reads the rest.
                    log.info("%s grew while it was embedded; indexed the part read", _one_line(prepared.found.path))
                elif not last_attempt or current is None:
                    changed.append(prepared.found)  # read again; gone: the read finds out
                    continue
                else:
                    # Still changing after the re-read: write the version read, as above.
                    log.info(
                        "%s kept changing while it was indexed; indexed the version read, the next sync "
                        "reads it again", _one_line(prepared.found.path),
                    )  # fmt: skip
            self._count_chunks(prepared.chunks)
            matrix = np.stack([vectors[c.hash] for c in prepared.chunks]) if prepared.chunks else np.zeros((0, 0))
            self.store.replace_file(
                prepared.record, prepared.chunks, matrix, indexed_at_ns=prepared.read_at_ns,
                keep_before=prepared.keep_before,
            )  # fmt: skip
            self.report.reindexed += 1
            log.info("indexed %s (%d chunks)", _one_line(prepared.found.path), len(prepared.chunks))
        return changed

    def _embed(self, missing: list[str], texts: dict[str, str], *, files: int) -> dict[str, np.ndarray]:
        """Embed the texts of ``missing`` a few model batches at a time, longest first (each
        batch pads to similar lengths), and write each call's vectors to the cache as soon as
        it returns."""
        ordered = sorted(missing, key=lambda digest: -len(texts[digest]))
        new: dict[str, np.ndarray] = {}
        for start in range(0, len(ordered), self.call_size):
            batch = ordered[start : start + self.call_size]
            vectors = dict(zip(batch, self.embedder.embed([texts[digest] for digest in batch])))
            self.cache.put_many(vectors)
            new.update(vectors)
            # The group's files count as done in proportion to the texts embedded so far.
            self._tell(self.done + files * len(new) // (len(missing) + 1))
        return new

    def _count_chunks(self, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            if chunk.hash not in self.embedded_now:
                self.report.chunks_from_cache += 1
            elif chunk.hash in self.credited:
                self.report.chunks_deduplicated += 1
            else:
                self.credited.add(chunk.hash)  # this chunk's embedding is one of chunks_embedded

    def _tell(self, done: int) -> None:
        if self.progress and self.total:
            self.progress(min(done, self.total), self.total)


def content_hash(data: bytes) -> str:
    """The hash stored for a file's bytes (``files.hash``)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _only_grew(path: Path, record: FileRecord) -> bool:
    """True when the file's first ``record.stamp.size`` bytes are still the bytes that
    were read (the reader made sure its size did not change during the read)."""
    try:
        with open_memory_file(path) as handle:
            start = handle.read(record.stamp.size)
    except OSError:
        return False
    return len(start) == record.stamp.size and content_hash(start) == record.hash


def current_stamp(path: Path) -> FileStamp | None:
    try:
        return FileStamp.of(path.stat())
    except OSError:
        return None


def _one_line(text: str) -> str:
    """``sync.one_line``, imported when first used (``sync`` imports this module)."""
    from indexer.errors import one_line

    return one_line(text)
