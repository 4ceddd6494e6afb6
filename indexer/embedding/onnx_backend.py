"""The ONNX Runtime backend: a torch-free way to embed with a sentence-transformers model.

The model's transformer is exported once, offline, from the installed weights
(``torch.onnx.export``), into the user cache folder (``MEMDEX_CACHE_DIR``, or
platformdirs' user cache dir for "memdex", which honours ``XDG_CACHE_HOME``),
keyed by the model files' content (``onnx_cache``: every venv shares it). Before first use its vectors are
compared with torch's on a fixed sample; only an export whose every cosine is
at least ``MIN_COSINE`` is kept (``check.json`` beside it records the result and
the SHA-256 of the verified file: an export whose file no longer has it is
discarded with a warning and made again).
At run time only tokenizers, onnxruntime and numpy are imported: tokenize
(truncated to the model's ``max_seq_length``), run the graph, pool as the
model's Pooling module says (mean, CLS or max over the attention mask), and
L2-normalise.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


from . import onnx_cache
from .model_files import ModelFiles
from .onnx_cache import EXPORT_VERSION, cache_dir  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

MIN_COSINE = 0.9999
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Batches are cut by padded tokens (texts x longest text), not by count: attention
# memory grows with batch x length^2, and ONNX Runtime's arena keeps its peak.
# 2,048 tokens (8 texts of 256) held a 400-chunk bulk run at 370 MB against
# 820 MB for 32 texts a batch, at the same speed (long texts are compute-bound).
BATCH_TOKENS = 2048
MAX_BATCH = 64
SAMPLE = [
    "",
    "What editor do I use?",
    "Penicillin allergy: came out in hives in 2009.",
    "# Health > Medication\n\n- Ibuprofen is fine; aspirin upsets my stomach.\n- Café, naïve, Zoë: ünïcödé 🙂",
    "```python\ndef main() -> None:\n    print('hello')\n```",
    " ".join(["The loft conversion starts in March once the planning permission arrives."] * 40),  # truncated
]


class OnnxUnavailable(Exception):
    """The ONNX backend cannot be used (not installed, export failed, or its vectors disagree with torch)."""


def export_folder(files: ModelFiles) -> Path:
    try:
        return onnx_cache.export_folder(files.folder)
    except OSError as exc:
        raise OnnxUnavailable(f"cannot read the model files in {files.folder} ({exc.strerror or exc})") from None


def has_export(files: ModelFiles) -> bool:
    """Whether this model has a verified export (or a failed one: then nothing is to be made)."""
    try:
        folder = export_folder(files)
    except OnnxUnavailable:
        return True  # nothing can be made: torch is used
    if (folder / "failed.json").is_file():
        return True
    return (folder / "check.json").is_file() and (folder / "model.onnx").is_file() and _unbound(folder) is None


def load_verified(files: ModelFiles, *, threads: int | None) -> OnnxEmbedder | None:
    """The verified export of this model, or None when there is none yet.

    Raises OnnxUnavailable when an earlier export of it failed its check."""
    folder = export_folder(files)
    failed = folder / "failed.json"
    if failed.is_file():
        raise OnnxUnavailable(onnx_cache.read_json(failed).get("reason", "an earlier export failed its check"))
    if not (folder / "check.json").is_file() or not (folder / "model.onnx").is_file():
        return None
    problem = _unbound(folder)
    if problem is not None:
        log.warning("the cached ONNX export %s %s; discarded it and exporting it again", folder, problem)
        for path in [folder / "check.json", *_bound_files(folder)]:
            path.unlink(missing_ok=True)
        return None
    return OnnxEmbedder(folder / "model.onnx", files, threads=threads)


def _bound_files(folder: Path) -> list[Path]:
    """The export's graph and weights: ``model.onnx`` and any external data file beside it."""
    return sorted(p for p in folder.iterdir() if p.name.startswith("model.onnx") and not p.name.endswith(".tmp"))


def _unbound(folder: Path) -> str | None:
    """Why the export's files are not the ones verified (None: they are). ``check.json``
    holds each file's SHA-256, taken when it was verified, and its stat stamp
    (size, mtime, ctime, inode, device): an unchanged stamp skips the hash (any
    write, rename or utime changes the ctime, which a user cannot set); a changed
    one is hashed again, and a matching hash renews the stamp (a copied cache)."""
    check = onnx_cache.read_json(folder / "check.json")
    digests, stamps = check.get("sha256"), check.get("stamps")
    if not isinstance(digests, dict) or not isinstance(stamps, dict):
        return "has no hash recorded when it was verified (made by an older memdex)"
    present = {path.name: path for path in _bound_files(folder)}
    if set(present) != set(digests):
        return "does not hold the files that were verified"
    renewed = False
    for name, path in present.items():
        if stamps.get(name) == onnx_cache.stamp(path):
            continue
        if onnx_cache.sha256_file(path) != digests[name]:
            return f"has a {name} that is not the one verified (its SHA-256 differs from the one recorded)"
        stamps[name], renewed = onnx_cache.stamp(path), True
    if renewed:
        try:
            onnx_cache.write_json(folder / "check.json", check)
        except OSError:
            pass  # a read-only cache: hashed again next time
    return None



def export_and_verify(files: ModelFiles, model) -> None:  # model: a loaded SentenceTransformer
    """Export the model's transformer to the cache folder and keep it only if it matches torch."""
    folder = export_folder(files)
    # One process makes an export at a time: another one waits, then finds it made; and the
    # cleanup of another process leaves a folder alone while its lock is held.
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = open(onnx_cache.lock_path(folder), "a+")  # noqa: SIM115 - held across the export below
    except OSError as exc:
        raise OnnxUnavailable(f"cannot export the model to ONNX: {exc.strerror or exc}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "check.json").is_file() and (folder / "model.onnx").is_file():
            return  # made by another process meanwhile: the caller loads (and checks) it
        _export_and_verify(files, model, folder)


def _export_and_verify(files: ModelFiles, model, folder: Path) -> None:
    temporary = folder / f"model.onnx.{os.getpid()}.tmp"
    started = time.perf_counter()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        onnx_cache.remember_model(folder, files.folder)
        _export(model, temporary)
        candidate = OnnxEmbedder(temporary, files, threads=None)
        expected = np.asarray(
            model.encode(SAMPLE, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False),
            dtype=np.float32,
        )
        cosine = float(np.min(np.sum(candidate.embed(SAMPLE) * expected, axis=1)))
        del candidate
        if not cosine >= MIN_COSINE:
            reason = f"exported model disagrees with torch (cosine {cosine:.6f} < {MIN_COSINE})"
            onnx_cache.write_json(folder / "failed.json", {"reason": reason})
            raise OnnxUnavailable(reason)
        digest = onnx_cache.sha256_file(temporary)  # the bytes just verified
        os.replace(temporary, folder / "model.onnx")
        onnx_cache.write_json(folder / "check.json", {
            "min_cosine": cosine, "samples": len(SAMPLE), "export_version": EXPORT_VERSION,
            "model_folder": str(files.folder), "model_key": folder.name, "seconds": round(time.perf_counter() - started, 2),
            "sha256": {"model.onnx": digest}, "stamps": {"model.onnx": onnx_cache.stamp(folder / "model.onnx")},
        })  # fmt: skip
    except OnnxUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any exporter/runtime/file error means "use torch"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxUnavailable(f"cannot export the model to ONNX: {first}") from None
    finally:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
    onnx_cache.remove_older_exports(folder, files.folder)
    log.info("exported %s to ONNX in %.1f s (min cosine %.6f): %s", files.folder.name,
             time.perf_counter() - started, cosine, folder)  # fmt: skip


def _export(model, target: Path) -> None:
    import inspect
    import warnings

    import torch

    transformer = model[0].auto_model
    accepted = inspect.signature(transformer.forward).parameters
    names = [name for name in MODEL_INPUTS if name in accepted]

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs):  # type: ignore[no-untyped-def]
            return self.transformer(**dict(zip(names, inputs))).last_hidden_state

    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Wrapper().eval(), example, str(target), input_names=names, output_names=["last_hidden_state"],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )  # fmt: skip


class OnnxEmbedder:
    """Embeds with an exported model: tokenizers + onnxruntime + numpy, nothing else."""

    def __init__(self, path: Path, files: ModelFiles, *, threads: int | None) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise OnnxUnavailable(f"onnxruntime is not installed ({exc})") from None
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: one per core
        options.inter_op_num_threads = 1
        # Busy-waiting worker threads fight other processes for the cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
            raise OnnxUnavailable(f"cannot load {path}: {str(exc).strip().splitlines()[0]}") from None
        self.inputs = [item.name for item in self.session.get_inputs()]
        self.files = files
        self.dimensions = files.dimensions
        self.tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(files.max_seq_length)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        texts = [text.lower() for text in texts] if self.files.do_lower_case else list(texts)
        encodings = self.tokenizer.encode_batch(texts)
        # Length-bucketed batches: longest first, so each batch pads to similar lengths.
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        start = 0
        while start < len(order):
            width = len(encodings[order[start]].ids)
            size = max(1, min(MAX_BATCH, BATCH_TOKENS // max(width, 1)))
            batch = order[start : start + size]
            out[batch] = self._run([encodings[i] for i in batch])
            start += size
        return out

    def _run(self, encodings: list) -> np.ndarray:  # encodings: list[tokenizers.Encoding]
        width = max(len(encoding.ids) for encoding in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n], types[row, :n], mask[row, :n] = encoding.ids, encoding.type_ids, 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (hidden,) = self.session.run(None, {name: feeds[name] for name in self.inputs})
        pooled = _pool(hidden, mask, self.files.pooling)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls":
        return hidden[:, 0]
    weights = mask[..., None].astype(hidden.dtype)
    if mode == "max":
        return np.where(weights > 0, hidden, -1e9).max(axis=1)
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
