"""What a sentence-transformers model is, read from its files without loading its weights.

The model's id, embedding dimensions, token window, pooling and tokenizer all
come from small JSON files beside the weights (``modules.json``,
``sentence_bert_config.json``, ``1_Pooling/config.json``, ``config.json``,
``tokenizer.json``). When a model's layout is one memdex cannot read this way
(extra modules such as a Dense layer, unusual pooling, no ``tokenizer.json``),
``read_model_files`` returns None and the caller loads the model to find out.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from indexer.config.files import read_small_file
from indexer.errors import ConfigError

log = logging.getLogger(__name__)

MAX_CONFIG_BYTES = 16 * 1024 * 1024
POOLING_MODES = ("cls", "mean", "max")
_KNOWN_POOLING_KEYS = {"word_embedding_dimension", "include_prompt"}
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


@dataclass(frozen=True)
class ModelFiles:
    """The parts of a local model folder that the torch-free paths need."""

    folder: Path
    fingerprint: str  # changes when any file of the model changes
    dimensions: int
    max_seq_length: int  # tokens per text including special tokens, as sentence-transformers truncates
    max_tokens: int  # content tokens per text (special tokens excluded)
    pooling: str  # one of POOLING_MODES
    normalize: bool  # the model ends with a Normalize module
    do_lower_case: bool
    tokenizer_path: Path


def fingerprint(folder: Path) -> str:
    """Identify a local model by its location, configs and weight files' size and mtime,
    so two folders of the same name (or a model retrained in place) are different models."""
    digest = hashlib.blake2b(str(folder).encode(), digest_size=6)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            if path.name in ("config.json", "modules.json", "sentence_bert_config.json"):
                digest.update(read_small_file(path, what="model file", limit=MAX_CONFIG_BYTES))
    return digest.hexdigest()


def local_folder(source: str) -> Path | None:
    """The folder holding a model: ``source`` itself, or its snapshot in the local Hugging Face cache."""
    path = Path(source)
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, not a repo id, no huggingface_hub: load it to find out
        return None


def read_model_files(folder: Path) -> ModelFiles | None:
    """The model's identity and layout from its files, or None if they do not say enough."""
    try:
        return _read(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("cannot read the model's layout from %s: %s", folder, exc)
        return None


def _read(folder: Path) -> ModelFiles | None:
    modules = _json(folder / "modules.json")
    if not isinstance(modules, list) or not modules:
        return None
    kinds = [str(module["type"]).rsplit(".", 1)[-1] for module in modules]
    if kinds[0] != "Transformer" or any(kind not in _SUPPORTED_MODULES for kind in kinds):
        return None
    if kinds.count("Pooling") != 1 or kinds.index("Pooling") != 1 or kinds.count("Transformer") != 1:
        return None
    transformer = folder / modules[0].get("path", "")
    pooling_config = _json(folder / modules[1]["path"] / "config.json")
    modes = [mode for mode in POOLING_MODES if pooling_config.get(f"pooling_mode_{mode}_tokens", False)]
    other_modes = [
        key for key, value in pooling_config.items()
        if key.startswith("pooling_mode_") and value and key not in {f"pooling_mode_{m}_tokens" for m in modes}
    ]  # fmt: skip
    if len(modes) != 1 or other_modes:
        return None
    dimensions = int(pooling_config["word_embedding_dimension"])
    hidden = _json(transformer / "config.json").get("hidden_size")
    if hidden is not None and int(hidden) != dimensions:
        return None
    bert_config = _json(transformer / "sentence_bert_config.json")
    max_seq_length = bert_config.get("max_seq_length")
    tokenizer_path = transformer / "tokenizer.json"
    if not max_seq_length or not tokenizer_path.is_file():
        return None
    from tokenizers import Tokenizer

    special = Tokenizer.from_file(str(tokenizer_path)).num_special_tokens_to_add(False)
    return ModelFiles(
        folder=folder,
        fingerprint=fingerprint(folder),
        dimensions=dimensions,
        max_seq_length=int(max_seq_length),
        max_tokens=int(max_seq_length) - int(special),
        pooling=modes[0],
        normalize="Normalize" in kinds,
        do_lower_case=bool(bert_config.get("do_lower_case", False)),
        tokenizer_path=tokenizer_path,
    )


def _json(path: Path) -> dict | list:
    """A model's small JSON file: a regular file of at most 16 MiB (never a FIFO or a device)."""
    try:
        return json.loads(read_small_file(path, what="model file", limit=MAX_CONFIG_BYTES).decode("utf-8"))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
