"""The torch backend: a sentence-transformers model on the CPU.

Hub access is switched off unless ``MEMDEX_ALLOW_DOWNLOAD=1`` is set: a model
loads from the installed package, a local folder or the local Hugging Face cache.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from collections.abc import Sequence

import numpy as np

from indexer.config.settings import DEFAULT_MODEL
from indexer.errors import ModelError

from .resolve import resolve_model

# After a large encode, hand freed heap pages back to the OS: batches of varying
# padded length fragment glibc's heap, and peak RSS grew ~300 MB per 2,000 chunks
# without this (bench: 1,026 -> 862 MB on 1,734 chunks, same speed).
TRIM_AFTER_TEXTS = 64

# A call with at most this many texts is a query (or a one-chunk edit): it runs
# on QUERY_THREADS threads and, with backend "auto", on ONNX Runtime.
QUERY_TEXTS = 4
QUERY_THREADS = 1

class SentenceTransformerEmbedder:
    """A sentence-transformers model on torch (CPU), loaded when constructed.

    Thread counts are chosen per call: a query-sized call (a few texts) runs on
    ``query_threads`` (1: with other processes busy on the cores, two threads
    made one query 10x slower), a bulk call on ``bulk_threads`` (None: torch's
    default, one per core).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 32,
        query_threads: int | None = QUERY_THREADS,
        bulk_threads: int | None = None,
    ) -> None:
        self.model_id, self._source = resolve_model(model)
        self.batch_size = batch_size
        self.query_threads = query_threads
        self.bulk_threads = bulk_threads
        self._model = _load(self._source, self.model_id)
        import torch

        self._torch = torch
        self._default_threads = torch.get_num_threads()
        dimension_of = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        dimensions = dimension_of()
        if not dimensions:
            raise ModelError(f"model {self.model_id} does not report an embedding dimension")
        self.dimensions = int(dimensions)
        tokenizer = self._model.tokenizer
        special = tokenizer.num_special_tokens_to_add(pair=False)
        self.max_tokens = int(self._model.max_seq_length) - special
        self._tokenizer = tokenizer
        self._fast = _counting_tokenizer(tokenizer)

    @property
    def model(self):  # -> SentenceTransformer
        return self._model

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._fast is not None:
            encodings = self._fast.encode_batch(list(texts), add_special_tokens=False)
            return [len(encoding.ids) for encoding in encodings]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ids = self._tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(item) for item in ids]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        threads = self.query_threads if len(texts) <= QUERY_TEXTS else self.bulk_threads
        self._torch.set_num_threads(threads or self._default_threads)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        if len(texts) >= TRIM_AFTER_TEXTS:
            release_free_memory()
        return np.asarray(vectors, dtype=np.float32)


def release_free_memory() -> None:
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _counting_tokenizer(tokenizer):  # -> tokenizers.Tokenizer | None
    """A private copy of the fast tokenizer with padding and truncation off."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_padding()
    copy.no_truncation()
    return copy


def _load(source: str, model_id: str):  # -> SentenceTransformer
    if os.environ.get("MEMDEX_ALLOW_DOWNLOAD") != "1":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ModelError(f"sentence-transformers is not installed ({exc})") from None
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass
    try:
        return SentenceTransformer(source, device="cpu")
    except Exception as exc:  # OSError, ValueError, HF errors: all mean "cannot load"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"cannot load embedding model {model_id!r} ({first}); memdex does not download models: "
            "use a local folder or a model already in the Hugging Face cache"
        ) from None
