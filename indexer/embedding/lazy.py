"""The index's embedder: ``LazyEmbedder`` knows the model's id, dimensions,
token window and tokenizer from the model's files alone (``model_files``), so
commands that embed nothing never import torch. The first ``embed`` call loads
a backend: ONNX Runtime (``onnx_backend``: exported once from the installed
weights, verified against torch) or sentence-transformers on torch
(``torch_backend``).
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Sequence

import numpy as np

from indexer.config.settings import DEFAULT_MODEL
from indexer.errors import ModelError

from . import variants
from .cores import AUTO, CoreBudget
from .model_files import ModelFiles, local_folder, read_model_files
from .resolve import resolve_model
from .torch_backend import QUERY_TEXTS, QUERY_THREADS, SentenceTransformerEmbedder, release_free_memory

log = logging.getLogger(__name__)

# The backend "auto" uses for bulk embedding: ONNX Runtime on 1 thread indexed
# 1.9x faster than torch on 1 or 2 threads on this 2-core machine under load,
# with the same vectors (bench/bench_embed.py, README).
AUTO_BULK = "onnx"



def bulk_threads_setting(value: int | str | None) -> int | str:
    """``embed_threads`` as the embedder takes it: a positive whole number, or "auto" (also for None)."""
    if value is None or value == AUTO:
        return AUTO
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"embed_threads must be {AUTO!r} or a whole number of at least 1, got {value!r}")
    return value


BACKENDS = ("auto", "onnx", "torch")
# The one-time export of the default model (87 MiB of weights: torch loaded, the graph
# exported and checked against torch) took 7 s on this 2-core machine, and a first
# index 8 s more than a warm one (bench/bench_first_run.py): "about 10 s" leaves room
# for a busier machine. Other models are estimated by their weights' size.
PREPARE_SECONDS = 10
PREPARE_BYTES = 90_868_376


def prepare_estimate(files: ModelFiles) -> int:
    """Seconds the one-time export is expected to take, for the message that announces it."""
    weights = sum(
        path.stat().st_size for path in files.folder.glob("*") if path.suffix in (".safetensors", ".bin") and path.is_file()
    )
    return max(5, round(PREPARE_SECONDS * (weights or PREPARE_BYTES) / PREPARE_BYTES / 5) * 5)


class LazyEmbedder:
    """The index's embedder: identity from the model's files, weights loaded on the first ``embed``.

    ``backend``: "torch" embeds everything with sentence-transformers; "onnx"
    everything with ONNX Runtime; "auto" (the default) embeds queries and small
    batches with ONNX Runtime and bulk batches with whichever backend
    ``AUTO_BULK`` names (measured faster, see README). The ONNX export is made
    (torch loaded once, see ``PREPARE_SECONDS``; one warning line announces it,
    one says when it is done) by ``prepare`` or the first call that needs it,
    and whenever torch is loaded anyway; when it is impossible or fails its
    check, torch is used with a one-line warning.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 32,
        backend: str = "auto",
        query_threads: int | None = QUERY_THREADS,
        bulk_threads: int | str | None = AUTO,
        variant: str = "full",
    ) -> None:
        if backend not in BACKENDS:
            raise ModelError(f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.variant = variants.check_variant(variant)
        self.model_id, self._source = resolve_model(model)
        self._name = model
        self.backend = backend
        self.batch_size = batch_size
        self.query_threads = query_threads
        # "auto": each bulk call runs on the cores nobody else is using, at least one (``cores``).
        self.bulk_threads = bulk_threads_setting(bulk_threads)
        self._budget = CoreBudget() if self.bulk_threads == AUTO else None
        self.last_bulk_threads: int | None = None  # threads of the latest bulk call (logs, bench, tests)
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
        # A faster variant (``variants``): its own vector space and model id; the same chunks.
        self._variant: dict[int | None, object] = {}  # threads (None: static) -> the variant's embedder
        if self.variant != "full":
            if self.files is None:
                raise ModelError(f"the {self.variant} variant needs a model whose files memdex can read ({model})")
            self.model_id = variants.variant_model_id(self.model_id, self.variant)
            if self.variant == "static":
                self.dimensions = min(variants.STATIC_DIMS, self.files.dimensions)

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
        threads = self.query_threads if use == "query" else self._bulk_threads_now()
        if self.variant != "full":
            return self._variant_embedder(threads).embed(texts)  # type: ignore[attr-defined]
        if wanted == "onnx":
            onnx = self._onnx_embedder(threads)
            if onnx is not None:
                return onnx.embed(texts)  # type: ignore[attr-defined]
        torch_model = self._torch(export=self.backend != "torch")
        if use == "bulk":
            torch_model.bulk_threads = threads
        return torch_model.embed(texts)

    def _bulk_threads_now(self) -> int:
        """The fixed ``embed_threads``, or what the core budget allows for this call."""
        threads = self._budget.threads() if self._budget is not None else self.bulk_threads
        if threads != self.last_bulk_threads:
            log.info("bulk embedding on %d thread%s", threads, "" if threads == 1 else "s")
        self.last_bulk_threads = threads
        return threads  # type: ignore[return-value]

    @property
    def prepared(self) -> bool:
        """Whether a query can be embedded without the one-time export (cheap: no model is loaded)."""
        if self.variant != "full":
            return bool(self._variant) or self._variant_ready()
        if self.backend == "torch" or self.files is None or self._onnx_failed is not None or self._onnx:
            return True
        from . import onnx_backend as onnx_embed

        return onnx_embed.has_export(self.files)

    def prepare(self) -> None:
        """Make the one-time ONNX export now if this backend needs it and it is not cached yet
        (cheap when it is: nothing is loaded). ``memdex index`` calls it before its progress bar."""
        if not self.prepared:
            if self.variant != "full":
                self._variant_embedder(self.query_threads)
            else:
                self._onnx_embedder(self.query_threads)

    @property
    def loaded(self) -> list[str]:
        """Backends loaded so far ("onnx", "torch"), for status and tests."""
        return (
            (["onnx"] if self._onnx else []) + (["torch"] if self._torch_model is not None else [])
            + ([self.variant] if self._variant else [])
        )  # fmt: skip

    def _variant_ready(self) -> bool:
        from . import onnx_backend as onnx_embed

        assert self.files is not None
        folder = onnx_embed.export_folder(self.files)
        if self.variant == "static":
            return (variants.static_folder(folder) / "config.json").is_file()
        return onnx_embed.has_export(self.files) and variants.int8_ready(folder / "model.onnx")

    def _variant_embedder(self, threads: int | None):  # -> OnnxEmbedder | StaticEmbedder
        key = None if self.variant == "static" else threads
        if key in self._variant:
            return self._variant[key]
        from . import onnx_backend as onnx_embed

        assert self.files is not None
        folder = onnx_embed.export_folder(self.files)
        if self.variant == "static":
            target = variants.static_folder(folder)
            if not (target / "config.json").is_file():
                folder.mkdir(parents=True, exist_ok=True)
                with open(folder / "static.lock", "a+") as lock:  # one process distils at a time
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    if not (target / "config.json").is_file():
                        variants.distil_static(self.files, target)
            embedder = variants.StaticEmbedder(target)
            if embedder.dimensions != self.dimensions:
                raise ModelError(f"the static model in {target} has {embedder.dimensions} dimensions, not {self.dimensions}")
        else:
            if not onnx_embed.has_export(self.files) or not (folder / "check.json").is_file():
                # Make (or make again) and verify the fp32 export the int8 model is made from.
                if self._onnx_embedder(self.query_threads) is None:
                    raise ModelError(f"the int8 variant needs the ONNX export, which is unavailable ({self._onnx_failed})")
                self._onnx.clear()  # only the export was needed: free its session
            with open(folder / "int8.lock", "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                path = variants.int8_model(folder / "model.onnx")
            try:
                embedder = onnx_embed.OnnxEmbedder(path, self.files, threads=threads)
            except onnx_embed.OnnxUnavailable as exc:
                raise ModelError(f"cannot use the int8 model: {exc}") from None
        self._keep_sessions(self._variant, key)
        self._variant[key] = embedder
        return embedder

    # -- backends -------------------------------------------------------------
    def _torch(self, *, export: bool = False) -> SentenceTransformerEmbedder:
        if self._torch_model is None:
            self._torch_model = SentenceTransformerEmbedder(
                self._name, batch_size=self.batch_size, query_threads=self.query_threads,
                bulk_threads=self.bulk_threads if isinstance(self.bulk_threads, int) else None,
            )  # fmt: skip
            if export and self.files is not None and self._onnx_failed is None:
                self._onnx_embedder(self.query_threads)  # the model is loaded anyway: make the export now
        return self._torch_model

    def _onnx_embedder(self, threads: int | None):  # -> OnnxEmbedder | None
        if threads in self._onnx:  # one session per thread count: query and bulk share it when equal
            return self._onnx[threads]
        if self.files is None or self._onnx_failed is not None:
            return None
        from . import onnx_backend as onnx_embed

        try:
            embedder = onnx_embed.load_verified(self.files, threads=threads)
            if embedder is None:
                started = time.perf_counter()
                log.warning("preparing the embedding model for ONNX Runtime (once, about %d s)…",
                            prepare_estimate(self.files))  # fmt: skip
                loaded_for_export = self._torch_model is None
                onnx_embed.export_and_verify(self.files, self._torch().model)
                embedder = onnx_embed.load_verified(self.files, threads=threads)
                log.warning("the embedding model is ready (%.0f s); later runs reuse it",
                            time.perf_counter() - started)  # fmt: skip
                if loaded_for_export and embedder is not None:
                    self._torch_model = None  # torch was only needed for the export: free the model
                    release_free_memory()
            if embedder is None:
                raise onnx_embed.OnnxUnavailable("the export did not produce a usable model")
        except onnx_embed.OnnxUnavailable as exc:
            self._onnx_failed = str(exc)
            log.warning("ONNX Runtime backend unavailable (%s); embedding with torch", exc)
            return None
        self._keep_sessions(self._onnx, threads)
        self._onnx[threads] = embedder
        return embedder

    def _keep_sessions(self, sessions: dict, threads: int | None) -> None:
        """Before a session for ``threads`` is kept: drop the bulk sessions of other thread
        counts (the query's stays). With ``embed_threads = "auto"`` the count follows the
        load, and a session per count ever used (~100 MB each) grew with the cores."""
        for key in [key for key in sessions if key not in (threads, self.query_threads)]:
            del sessions[key]
