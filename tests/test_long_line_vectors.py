"""Every part of a line longer than the model's window reaches its chunk's vector
(indexing/windows.py): token windows, embedded and pooled, on both engines."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from conftest import EngineKind, write
from indexer import open_index
from indexer.indexing.check import CORRUPT, check_index
from indexer.indexing.windows import MAX_WINDOWS, pooled
from indexer.sources.base import Chunk, embedded_text, text_hash

WORD = re.compile(r"\w+|[^\w\s]")


class WordsEmbedder:
    """A deterministic bag-of-words model with a window, like a real one: only the first
    ``max_tokens`` tokens of a text reach its vector. Each word of ``VOCABULARY`` has a
    dimension of its own (no collisions), any other word one of the rest, by its hash."""

    def __init__(self, model_id: str, *, dimensions: int = 1024, max_tokens: int = 64) -> None:
        self.model_id, self.dimensions, self.max_tokens = model_id, dimensions, max_tokens
        self.embedded: list[str] = []

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(WORD.findall(text)) for text in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        matrix = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in WORD.findall(text.lower())[: self.max_tokens]:
                matrix[row, self.dimension(word)] += 1
            matrix[row] /= max(1e-9, float(np.linalg.norm(matrix[row])))
        return matrix

    def dimension(self, word: str) -> int:
        if word in VOCABULARY:
            return VOCABULARY[word]
        digest = int(hashlib.blake2b(word.encode(), digest_size=4).hexdigest(), 16)
        return len(VOCABULARY) + digest % (self.dimensions - len(VOCABULARY))


def filler(prefix: str, count: int) -> str:
    return " ".join(f"{prefix}{n}" for n in range(count))


# An assistant's answer on one line: 100 words of other things, then the fact, at its very end.
LONG = f"- assistant: {filler('topic', 100)} and the vault code is zanzibar saffron."
FILES = {
    "notes/chat.md": f"# Chat\n\n- user: what did we decide?\n{LONG}\n",
    # A short chunk that shares a word with the question: what wins when the long line's
    # vector sees only its start.
    "notes/rice.md": f"# Rice\n\nSaffron rice with {filler('spice', 55)}.\n",
    "notes/other.md": f"# Other\n\n{filler('misc', 40)}.\n",
}
VOCABULARY = {
    word: n
    for n, word in enumerate(sorted({w.lower() for text in [*FILES.values(), "zanzibar saffron"] for w in WORD.findall(text)}))
}


def settings_for(engine_kind: EngineKind, root: Path):
    return engine_kind.settings(root, model=f"test/words-{uuid.uuid4().hex[:10]}")


def test_a_fact_at_the_end_of_a_long_line_is_found_by_vector_search(root: Path, engine_kind: EngineKind) -> None:
    for rel, text in FILES.items():
        write(root, rel, text)
    settings = settings_for(engine_kind, root)
    model = WordsEmbedder(settings.model)
    with open_index(settings, write=True, embedder=model) as index:
        report = index.sync()
        assert any("notes/chat.md:4: line longer than" in w for w in report.warnings), report.warnings
        chunks = len(index.store.chunk_hashes())
        results = index.search("zanzibar saffron", mode="vector", limit=3)
    # A long line counts once among the chunks embedded, however many windows it sent.
    assert report.chunks_embedded == chunks and report.chunks_from_cache == report.chunks_deduplicated == 0
    top = results[0]
    assert top.path == "notes/chat.md" and top.start_line <= 4 <= top.end_line, [(r.path, r.start_line) for r in results]
    assert len([t for t in model.embedded if "topic" in t]) == 2  # the long line: two windows


def test_the_cached_vector_of_a_long_line_is_the_pooled_one(root: Path, engine_kind: EngineKind) -> None:
    for rel, text in FILES.items():
        write(root, rel, text)
    settings = settings_for(engine_kind, root)
    model = WordsEmbedder(settings.model)
    chunk_hash = text_hash(embedded_text("Chat", LONG))
    with open_index(settings, write=True, embedder=model) as index:
        start = model.embed([embedded_text("Chat", LONG)])[0]  # what an older memdex cached: the start
        index.cache.put_many({chunk_hash: start})
        index.sync()
        stored = {digest: index.store.vectors_by_chunk()[cid] for cid, digest in index.store.chunk_hashes()}
        cached = index.cache.get_many([chunk_hash])[chunk_hash]
        report = check_index(settings, index.engine, model_id=settings.model)
    assert report.exit_code != CORRUPT, report
    assert cached.tobytes() == stored[chunk_hash]  # the stale start was replaced by the pooled vector
    assert float(cached @ start) < 0.9
    # A rebuild takes every vector from the cache, the long line's windows too: nothing is embedded.
    again = WordsEmbedder(settings.model)
    with open_index(settings, write=True, embedder=again) as index:
        index.rebuild()
        rebuilt = {digest: index.store.vectors_by_chunk()[cid] for cid, digest in index.store.chunk_hashes()}
    assert again.embedded == [] and rebuilt == stored


def _chunk(heading: str, text: str) -> Chunk:
    embed = embedded_text(heading, text)
    return Chunk(1, 1, heading, text, embed, text_hash(embed), True)


def test_windows_cover_the_whole_text_in_order_each_within_the_window() -> None:
    model = WordsEmbedder("test/words")
    text = filler("w", 300)
    pool = pooled(_chunk("Heading", text), model.count_tokens, model.max_tokens)
    windows = list(pool.texts.values())
    assert all(window.startswith("Heading\n") for window in windows)
    assert " ".join(window.removeprefix("Heading\n") for window in windows) == text
    sizes = model.count_tokens(windows)
    assert max(sizes) <= model.max_tokens and max(sizes) - min(sizes) <= 2  # about equal, no short tail
    assert len(windows) == 5  # 300 words + 1 heading token per window, 64 each: five windows


def test_a_huge_line_keeps_at_most_max_windows_spread_from_start_to_end() -> None:
    model = WordsEmbedder("test/words")
    text = filler("w", 64 * 4 * MAX_WINDOWS)
    windows = list(pooled(_chunk("", text), model.count_tokens, model.max_tokens).texts.values())
    assert len(windows) == MAX_WINDOWS
    assert windows[0].startswith("w0 ") and windows[-1].endswith(f"w{64 * 4 * MAX_WINDOWS - 1}")
