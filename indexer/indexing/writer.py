"""Embed and write prepared files in groups, for ``sync``.

Files are read and chunked by ``sync``; their new chunk texts are embedded in
groups (so the model sees full batches) and each file is written in one
transaction. The embedding cache is written after every model call (a few
batches), in its own transaction: a writer killed mid-group keeps what it
embedded, and its next run (or another host) takes those vectors from the cache.
The model runs on a worker thread while the next files are read and the group
before is written (``pipeline``; ``OVERLAP``).

Just before its write, a file's stamp is compared with the stamp
of the handle it was read from. A file that only grew meanwhile (its start is
still the bytes read: a log being appended to) is written as read. A file
that changed otherwise is read again at once (and embedded with the next
group), up to ``REREADS`` times; if it
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.embedding.protocol import Embedder
from indexer.sources.base import Chunk
from indexer.sources.discover import FileStamp, MemoryFile
from indexer.sources.read import open_memory_file
from indexer.store import FileRecord, IndexStore, VectorCache

from .pipeline import EmbedWorker, Job, model_lock
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
# Embed on a worker thread while this one reads the next files and writes the group before
# (``pipeline``). False: embed here, each group written before the next file is read.
OVERLAP = True


@dataclass(frozen=True)
class Prepared:
    """A changed file, read and chunked, waiting for its embeddings."""

    found: MemoryFile
    record: FileRecord
    chunks: list[Chunk]
    read_at_ns: int  # when the bytes were read: the racy-mtime rule compares against it
    keep_before: int | None = None  # a log that only grew: its stored chunks before this line stay
    size_read: int | None = None  # bytes read (hashed), when not the stamp's size: a log over its bound


@dataclass
class _Group:
    """Files whose new chunk texts are (being) embedded together, and what writing them needs."""

    files: list[Prepared]
    texts: dict[str, str]  # hash -> text the model sees: chunks, and windows of oversized ones
    pools: dict[str, Pooled]  # oversized chunk hash -> its windows
    vectors: dict[str, np.ndarray]  # from the cache, then the model's
    missing: int  # texts sent to the model
    new: dict[str, np.ndarray] = field(default_factory=dict)  # the model's vectors, as calls return
    job: Job | None = None  # on the worker thread; None: embedded already


class Writer:
    """Embeds prepared files' new chunk texts in groups, writes each file, reads a file
    again when it changed meanwhile, and reports progress.

    With ``OVERLAP`` the model runs on a worker thread (``pipeline``): while it embeds
    one group, this thread prepares the next files and writes the group before; the
    last group of a sync with only one is embedded here (a watcher's small sync). Every
    store and cache call stays on this thread, in the order the sequential path has.
    Call ``close`` when done (or failed): it stops the worker after its current call;
    after a Ctrl-C, ``keep_returned`` first."""

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
        self.inflight: _Group | None = None  # being embedded on the worker
        self.rereads: dict[str, int] = {}  # path -> times read again because it changed while embedded
        self.model_lock = model_lock(embedder)  # held for each model call, here or on the worker
        self.worker = EmbedWorker(embedder.embed, self.model_lock) if OVERLAP else None
        self._putting = False  # in a cache write (left True when one was interrupted)
        self.started = False  # a group was sent to the model
        self._told = 0

    def add(self, item: MemoryFile) -> None:
        prepared = self._prepare(item)
        self.add_prepared(prepared, into=self.pending)
        if prepared is not None:
            self.waiting_texts += len(prepared.chunks)
        if self.inflight is not None:
            self._receive(self.inflight, wait=False)  # cache each call's vectors soon after it returns
        # With the worker, the first group is one model call: the model starts after a few files.
        first = self.worker is not None and self.inflight is None and not self.started
        if self.waiting_texts >= (min(EMBED_GROUP, self.call_size) if first else EMBED_GROUP):
            self.started = True
            self._cycle(last=False)
        self._tell(self.done)

    def flush(self) -> None:
        """Embed and write what is pending; read again (and write) what changed meanwhile."""
        while self.pending or self.inflight is not None:
            self._cycle(last=True)
        self._tell(self.done)

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker thread after its current model call; ``wait`` for that (not on an
        error or a stop: a remote model's call can take minutes)."""
        if self.worker is not None:
            self.worker.close(wait=wait)

    def keep_returned(self) -> None:
        """After a Ctrl-C: cache the vectors of the model's calls that came back but were not
        taken yet, so the next run does not embed them again (the call still running is not
        waited for). Not when the interrupt came inside a cache write (its state is unknown)."""
        group = self.inflight
        if group is None or group.job is None or self._putting:
            return
        got: dict[str, np.ndarray] = {}
        try:
            for keys, vectors in group.job.returned(wait=False):
                got.update(zip(keys, vectors))
            if got:
                self._put(got)
        except Exception:  # noqa: BLE001 - the interrupt is what the caller must see
            log.debug("vectors of an interrupted sync not cached", exc_info=True)

    def add_prepared(self, prepared: Prepared | None, *, into: list[Prepared]) -> None:
        if prepared is None:
            self.done += 1
        else:
            into.append(prepared)

    def _cycle(self, *, last: bool) -> None:
        """Start embedding the pending files, then write the group embedded before them.
        A group is embedded here, and written at once, when nothing could run beside it."""
        pending, self.pending, self.waiting_texts = self.pending, [], 0
        previous, self.inflight = self.inflight, None
        if previous is not None:
            self.store.commit_batch()  # no transaction waits open while the model runs
            self._receive(previous, wait=True)
        group = None
        if pending:
            group = self._start(pending, background=self.worker is not None and not (last and previous is None))
            if group.job is not None:  # on the worker: a Ctrl-C during the writes below keeps its returned calls
                self.inflight = group
        if previous is not None:
            self._write(previous)
        if group is not None and group.job is None:
            self._write(group)

    def _start(self, pending: list[Prepared], *, background: bool) -> _Group:
        """Look the group's texts up in the cache and embed the others: on the worker, or here."""
        texts: dict[str, str] = {}
        pools: dict[str, Pooled] = {}
        for chunk in (chunk for prepared in pending for chunk in prepared.chunks):
            if not chunk.oversized:
                texts[chunk.hash] = chunk.embed_text
            elif chunk.hash not in pools:
                pools[chunk.hash] = pooled(chunk, self.embedder.count_tokens, self.embedder.max_tokens)
        for pool in pools.values():
            texts.update(pool.texts)
        vectors = self.cache.get_many(texts)
        # Longest first, a few model batches per call (each batch pads to similar lengths).
        missing = sorted((digest for digest in texts if digest not in vectors), key=lambda digest: -len(texts[digest]))
        group = _Group(pending, texts, pools, vectors, missing=len(missing))
        calls = [missing[start : start + self.call_size] for start in range(0, len(missing), self.call_size)]
        if background and calls:
            assert self.worker is not None
            group.job = self.worker.submit(calls, [[texts[digest] for digest in call] for call in calls])
        else:
            for call in calls:
                with self.model_lock:
                    vectors = self.embedder.embed([texts[digest] for digest in call])
                self._returned(group, call, vectors)
        return group

    def _receive(self, group: _Group, *, wait: bool) -> None:
        """Take the worker's finished calls for ``group`` (with ``wait``: all of them)."""
        if group.job is not None:
            try:
                for keys, vectors in group.job.returned(wait=wait):
                    self._returned(group, keys, vectors)
            except Exception:
                # The model failed; we are between two files' writes: what is written stays
                # written (a bulk load's open batch too), as on the sequential path.
                self.store.commit_batch()
                raise

    def _returned(self, group: _Group, keys: list[str], vectors: np.ndarray) -> None:
        """One model call came back: its vectors go to the cache at once."""
        got = dict(zip(keys, vectors))
        self._put(got)
        group.new.update(got)
        # The group's files count as done in proportion to the texts embedded so far.
        self._tell(self.done + len(group.files) * len(group.new) // (group.missing + 1))

    def _write(self, group: _Group) -> None:
        """Write the group's files (all its calls are back); read again the ones that changed."""
        vectors, new, pools = group.vectors, group.new, group.pools
        vectors.update(new)
        # An oversized chunk's vector is always pooled from its windows' (the cache may hold,
        # under the chunk's hash, the vector of its start written by an older memdex).
        pooled_vectors = {digest: pool.vector(vectors) for digest, pool in pools.items()}
        if pooled_vectors:
            self._put(pooled_vectors)
            vectors.update(pooled_vectors)
        plain = {chunk.hash for prepared in group.files for chunk in prepared.chunks if not chunk.oversized}
        fresh = {digest for digest in new if digest in plain}
        fresh |= {digest for digest, pool in pools.items() if any(window in new for window in pool.texts)}
        self.embedded_now.update(fresh)
        self.report.chunks_embedded += len(fresh)
        for prepared in group.files:
            path = prepared.found.file(self.root)  # what the sync read
            last_attempt = self.rereads.get(prepared.found.path, 0) >= REREADS
            current = current_stamp(path)
            if current != prepared.record.stamp:  # the stamp of the handle we read from
                if current is not None and _only_grew(path, prepared):
                    # Appended to (a log): what was read is still the start of the file, and
                    # reading it again would only chase the writer. Written as read; its
                    # stamp is older than the file's, so the next sync reads the rest.
                    log.info("%s grew while it was embedded; indexed the part read", _one_line(prepared.found.path))
                elif last_attempt and current is None:
                    # Gone just before its write: not written; the next sync looks again.
                    log.info("%s vanished while it was indexed; left for the next sync", _one_line(prepared.found.path))
                    self.done += 1
                    continue
                elif not last_attempt:  # read again (gone: the read finds out)
                    self.rereads[prepared.found.path] = self.rereads.get(prepared.found.path, 0) + 1
                    self.report.reread += 1
                    log.info("%s changed while it was embedded; reading it again", _one_line(prepared.found.path))
                    again = self._prepare(prepared.found)
                    self.add_prepared(again, into=self.pending)
                    self.waiting_texts += len(again.chunks) if again is not None else 0
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
            self.done += 1
            log.info("indexed %s (%d chunks)", _one_line(prepared.found.path), len(prepared.chunks))
        self._tell(self.done)

    def _put(self, vectors: dict[str, np.ndarray]) -> None:
        self._putting = True
        self.cache.put_many(vectors)
        self._putting = False

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
            self._told = max(self._told, min(done, self.total))  # never backwards
            self.progress(self._told, self.total)


def content_hash(data: bytes) -> str:
    """The hash stored for a file's bytes (``files.hash``)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _only_grew(path: Path, prepared: Prepared) -> bool:
    """True when the file still starts with the bytes that were read: its first
    ``record.stamp.size`` bytes, or of a log over its bound the part within it that was
    read and hashed (its bytes past the bound are not indexed)."""
    record = prepared.record
    size = record.stamp.size if prepared.size_read is None else prepared.size_read
    return read_start(path, size, record.hash) is not None


def read_start(path: Path, size: int, digest: str) -> bytes | None:
    """The file's first ``size`` bytes when their ``content_hash`` is ``digest``, else None."""
    try:
        with open_memory_file(path) as handle:
            start = handle.read(size)
    except OSError:
        return None
    return start if len(start) == size and content_hash(start) == digest else None


def current_stamp(path: Path) -> FileStamp | None:
    try:
        return FileStamp.of(path.stat())
    except OSError:
        return None


def _one_line(text: str) -> str:
    """``sync.one_line``, imported when first used (``sync`` imports this module)."""
    from indexer.errors import one_line

    return one_line(text)
