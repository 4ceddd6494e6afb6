"""What the index needs from a model: the ``Embedder`` protocol.

Implementations: ``lazy.LazyEmbedder`` (what the index uses; it picks a backend),
``torch_backend.SentenceTransformerEmbedder`` and ``onnx_backend.OnnxEmbedder``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """What the index needs from a model."""

    model_id: str  # stable name recorded in the index (not a machine-specific path)
    dimensions: int
    max_tokens: int  # content tokens per text, special tokens excluded

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model sees it, special tokens excluded."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 array of shape (len(texts), dimensions)."""
        ...
