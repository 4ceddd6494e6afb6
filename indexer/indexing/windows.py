"""The vector of an oversized chunk: its text in token windows, embedded and pooled.

A chunk longer than the model's window (a single over-long line, ``Chunk.oversized``)
would get the vector of its first ``max_tokens`` tokens: the rest of the line
never reaches a vector. Instead, its text is cut at whitespace into consecutive
windows of about equal size that each fit the model with the chunk's heading
path in front (so every window says where it is), each window is embedded, and
the chunk's vector is the L2-normalised mean of the window vectors, weighted by
each window's tokens. One vector per chunk: the stores, the searches and the
citations are unchanged.

Windows of equal size (rather than full windows and a short tail) keep a line's
end from being a few tokens with a whole window's weight, or no weight at all.

Cost: the model sees each token of the line once (as if the line had been cut
into chunks), plus one heading path per window. A line of more than
``MAX_WINDOWS`` windows (a pasted log or data blob of 16 x ~250 tokens, about
16,000 characters) is represented by ``MAX_WINDOWS`` windows spread evenly
over it, first and last included: the mean of more would say less about any
of its parts, and the cost of one line stays bounded.

The embedding cache keeps each window's vector under the hash of the window's
text (an exact model output, like any other cached text), and the pooled
vector under the chunk's hash (what the stored vector, ``memdex check`` and the
in-memory matrix read).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from indexer.sources.base import Chunk, TokenCounter, embedded_text, text_hash

# At most this many windows per chunk (see the module docstring).
MAX_WINDOWS = 16
_PIECE = re.compile(r"\S+\s*")


@dataclass(frozen=True)
class Pooled:
    """How one oversized chunk's vector is made: its windows (hash -> text) and their weights."""

    texts: dict[str, str]
    weights: dict[str, int]

    def vector(self, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
        """The normalised weighted mean of the windows' vectors."""
        total = sum(self.weights[digest] * np.asarray(vectors[digest], dtype=np.float64) for digest in self.texts)
        norm = float(np.linalg.norm(total))
        return (total / norm if norm > 0 else total).astype(np.float32)


def pooled(chunk: Chunk, count_tokens: TokenCounter, max_tokens: int) -> Pooled:
    """The windows of ``chunk``'s text, each within ``max_tokens`` with its heading path."""
    heading = chunk.heading
    prefix = count_tokens([heading])[0] if heading else 0
    if prefix > max_tokens // 2:  # the chunker caps heading paths to a quarter of the window
        heading, prefix = "", 0
    budget = max(1, max_tokens - prefix)
    pieces = _PIECE.findall(chunk.text)
    counts = count_tokens(pieces) if pieces else []
    spans = _balanced(counts, budget)
    if len(spans) > MAX_WINDOWS:
        last = len(spans) - 1
        spans = [spans[round(i * last / (MAX_WINDOWS - 1))] for i in range(MAX_WINDOWS)]
    texts: dict[str, str] = {}
    weights: dict[str, int] = {}
    for start, end in spans:
        text = embedded_text(heading, "".join(pieces[start:end]).rstrip())
        digest = text_hash(text)
        texts[digest] = text
        weights[digest] = weights.get(digest, 0) + max(1, sum(counts[start:end]))
    if not texts:  # no words at all: the chunk's own text
        texts[chunk.hash], weights[chunk.hash] = chunk.embed_text, 1
    return Pooled(texts, weights)


def _balanced(counts: list[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive (start, end) spans of ``counts`` of about equal sums, each at most ``budget``
    (a single piece larger than that is a span of its own, which the model truncates). A span
    ends at the piece boundary nearest its share of the total, never past the budget."""
    total = sum(counts)
    windows = max(1, -(-total // budget))
    target = min(budget, -(-total // windows))
    spans: list[tuple[int, int]] = []
    start, used = 0, 0
    for index, count in enumerate(counts):
        over = used + count - target
        if index > start and (used + count > budget or over > target - used):
            spans.append((start, index))
            start, used = index, 0
        used += count
    if start < len(counts):
        spans.append((start, len(counts)))
    return spans
