"""Faster forms of the configured model, made locally from its own files (``model_variant``).

- ``full`` (the default): the model as it is (ONNX Runtime or torch).
- ``int8``: the verified ONNX export with its weights quantised to 8-bit integers,
  one scale per output channel (onnxruntime's dynamic quantisation), made once
  beside the export.
- ``static``: a model2vec static model distilled from the model (each token's
  vector taken once from the transformer, reduced to ``STATIC_DIMS`` by PCA,
  weighted by token frequency); a text's vector is the mean of its tokens'
  vectors, with no transformer at run time. Distilled once, at first use, from the
  local files (needs the ``static`` extra: model2vec, with torch and transformers
  for the distillation only); nothing is downloaded.

Each variant is its own vector space: the index records it in the model id
(``MODEL#int8``, ``MODEL#static256``), so switching re-embeds everything
(announced) and the embedding cache never mixes them. Chunks are cut with the
configured model's tokenizer and token window whatever the variant, so every
variant indexes the same chunks. Quality and speed of each: README, "Faster models".
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.errors import ModelError

from .model_files import ModelFiles
from .onnx_cache import model_name, sha256_file

log = logging.getLogger(__name__)

VARIANTS = ("full", "int8", "static")
STATIC_DIMS = 256
# Weights quantised per output channel: cosine to fp32 min 0.977 / mean 0.989 on 200
# chunk texts, against 0.860 / 0.924 with one scale per tensor (bench/bench_variants.py).
# The recipe is in the file name: a changed recipe makes a new file.
INT8_NAME = "model.int8-per-channel.onnx"
STATIC_FOLDER = f"static{STATIC_DIMS}"


def variant_model_id(model_id: str, variant: str) -> str:
    """The model id an index built with this variant records."""
    if variant == "full":
        return model_id
    return f"{model_id}#{'int8' if variant == 'int8' else STATIC_FOLDER}"


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ModelError(f"unknown model variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


# -- int8 ---------------------------------------------------------------------
def int8_model(export: Path) -> Path:
    """The int8 form of a verified export (``export`` is its ``model.onnx``), made once beside it.

    Its SHA-256 is recorded when it is made; a file that no longer has it is made again."""
    target, record = export.with_name(INT8_NAME), export.with_name(INT8_NAME + ".sha256")
    if int8_ready(export):
        return target
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ModelError(f"the int8 variant needs onnxruntime's quantisation tools ({exc})") from None
    started = time.perf_counter()
    temporary = export.with_name(f"{INT8_NAME}.{os.getpid()}.tmp")
    root_logger = logging.getLogger()
    level = root_logger.level
    try:
        root_logger.setLevel(logging.ERROR)  # the quantiser's advice on the root logger is not the user's business
        try:
            quantize_dynamic(str(export), str(temporary), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root_logger.setLevel(level)
        digest = sha256_file(temporary)
        os.replace(temporary, target)
        record.write_text(digest + "\n")
    except Exception as exc:  # noqa: BLE001 - any quantiser error: a clear message, not a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot make the int8 model: {first}") from None
    finally:
        temporary.unlink(missing_ok=True)
    log.warning("made the int8 form of the embedding model (%.0f s); later runs reuse it", time.perf_counter() - started)
    return target


def int8_ready(export: Path) -> bool:
    """Whether the int8 form beside ``export`` is there and is the file that was made."""
    target, record = export.with_name(INT8_NAME), export.with_name(INT8_NAME + ".sha256")
    try:
        return target.is_file() and record.read_text().strip() == sha256_file(target)
    except OSError:
        return False


# -- static -------------------------------------------------------------------
def static_folder(export_folder: Path) -> Path:
    return export_folder / STATIC_FOLDER


def distil_static(files: ModelFiles, target: Path) -> None:
    """Distil a model2vec static model from the model's local files into ``target``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files only: never a download
    try:
        from model2vec.distill import distill_from_model
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ModelError(
            f"the static variant needs model2vec's distillation: pip install 'memdex[static]' ({exc})"
        ) from None
    started = time.perf_counter()
    log.warning("distilling a static model from %s (once, a few minutes)…", model_name(files.folder))
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        model = AutoModel.from_pretrained(str(files.folder), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(files.folder), local_files_only=True)
        static = distill_from_model(model=model, tokenizer=tokenizer, pca_dims=STATIC_DIMS, device="cpu")
        static.save_pretrained(str(temporary))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(temporary, target)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - transformers/model2vec errors: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot distil a static model from {files.folder}: {first}") from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    log.warning("the static model is ready (%.0f s); later runs reuse it", time.perf_counter() - started)


class StaticEmbedder:
    """A model2vec static model: tokenize, average the tokens' vectors, L2-normalise."""

    def __init__(self, folder: Path) -> None:
        try:
            from model2vec import StaticModel
        except ImportError as exc:
            raise ModelError(f"the static variant needs model2vec: pip install 'memdex[static]' ({exc})") from None
        self.model = StaticModel.from_pretrained(str(folder), force_download=False)
        self.dimensions = int(self.model.dim)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = np.asarray(
            self.model.encode(list(texts), use_multiprocessing=False, normalize=False), dtype=np.float32
        ).reshape(len(texts), self.dimensions)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        empty = norms[:, 0] == 0  # no known token (an empty text): a fixed unit vector, never NaN
        vectors[empty] = 0.0
        vectors[empty, 0] = 1.0
        norms[empty] = 1.0
        return vectors / norms
