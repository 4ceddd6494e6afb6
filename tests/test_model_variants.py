"""model_variant: int8 (quantised ONNX) and static (model2vec) forms of the configured model,
made locally, each recorded as its own vector space."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write

from indexer import make_settings, open_index
from indexer.cli.app import cli
from indexer.config.resolve import load_configuration
from indexer.embedding import onnx_backend as onnx_embed
from indexer.embedding import variants
from indexer.embedding.lazy import LazyEmbedder
from indexer.errors import ModelError

TEXTS = ["What editor do I use?", "Penicillin allergy: came out in hives in 2009.", "", "The loft conversion starts in March."]


def test_setting_environment_and_flag(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root, "MEMORY.md", "# Memory\n")
    assert load_configuration({"root": str(root)}, env={}).settings.model_variant == "full"
    found = load_configuration({"root": str(root)}, env={"MEMDEX_MODEL_VARIANT": "int8"})
    assert found.settings.model_variant == "int8" and found.values["model_variant"].source == "env MEMDEX_MODEL_VARIANT"
    write(root, ".memdex/config.toml", 'model_variant = "static"\n')
    assert load_configuration({"root": str(root)}, env={}).settings.model_variant == "static"
    result = CliRunner().invoke(cli, ["--root", str(root), "--model-variant", "int8", "config", "--json"])
    assert json.loads(result.output)["settings"]["model_variant"] == {"value": "int8", "source": "flag --model-variant"}


def test_a_bad_variant_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "m"
    write(root, ".memdex/config.toml", 'model_variant = "tiny"\n')
    result = CliRunner().invoke(cli, ["--root", str(root), "index"])
    assert result.exit_code != 0 and result.output.startswith("memdex: error: ")
    assert "expected one of full, int8, static" in result.output and len(result.output.strip().splitlines()) == 1
    with pytest.raises(ModelError, match="unknown model variant"):
        LazyEmbedder(variant="tiny")


def test_each_variant_is_its_own_model_id() -> None:
    assert variants.variant_model_id("m", "full") == "m"
    assert variants.variant_model_id("m", "int8") == "m#int8"
    assert variants.variant_model_id("m", "static") == "m#static256"


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache folder holding a copy of the verified export (made once in the test session's cache)."""
    shared = LazyEmbedder(backend="onnx")
    shared.prepare()
    source = onnx_embed.export_folder(shared.files)
    monkeypatch.setenv("MEMDEX_CACHE_DIR", str(tmp_path / "cache"))
    target = onnx_embed.export_folder(shared.files)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.int8*", "static*", "*.lock"))
    return target


@pytest.mark.slow
def test_int8_is_made_once_checked_and_close_to_the_full_model(own_cache: Path) -> None:
    full = LazyEmbedder(backend="onnx").embed(TEXTS)
    int8 = LazyEmbedder(variant="int8")
    assert int8.model_id.endswith("#int8") and int8.dimensions == 384 and not int8.prepared
    vectors = int8.embed(TEXTS)
    made = own_cache / variants.INT8_NAME
    assert made.is_file() and int8.loaded == ["int8"]  # the fp32 export is not loaded beside it
    assert made.stat().st_size < (own_cache / "model.onnx").stat().st_size / 2
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert np.min(np.sum(vectors * full, axis=1)) > 0.85  # the same space, slightly off
    assert not np.allclose(vectors, full, atol=1e-3)  # ... and really the quantised model
    # A file that is not the one made is made again.
    made.write_bytes(b"not a model")
    again = LazyEmbedder(variant="int8")
    assert not again.prepared
    assert np.allclose(again.embed(TEXTS), vectors, atol=1e-5)


def _tiny_static(files, target: Path) -> None:
    """A stand-in for the minutes-long distillation: a model2vec model over the real
    tokenizer whose token vectors are fixed random ones (loading and embedding are real)."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
    vectors = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), variants.STATIC_DIMS)).astype(np.float32)
    StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=True).save_pretrained(str(target))


def test_static_variant_is_distilled_once_and_indexes_in_its_own_space(own_cache, tmp_path, monkeypatch) -> None:
    pytest.importorskip("model2vec")
    calls = []
    monkeypatch.setattr(variants, "distil_static", lambda files, target: (calls.append(target), _tiny_static(files, target)))
    root = tmp_path / "memory"
    write(root, "MEMORY.md", "# Health\n\nPenicillin allergy: hives in 2009.\n\n# Tools\n\nI edit in Helix.\n")
    settings = make_settings(root, tmp_path / "index.db", model_variant="static")
    with open_index(settings, write=True) as index:
        report = index.sync()
        assert index.embedder.model_id.endswith("#static256") and index.embedder.dimensions == 256
        hits = index.search("penicillin hives", mode="vector", limit=1, budget_lines=None)
        assert hits and hits[0].path == "MEMORY.md"
    assert report.chunks_embedded >= 2 and calls == [variants.static_folder(own_cache)]
    vectors = LazyEmbedder(variant="static").embed(TEXTS)  # a new process would reuse the distilled model
    assert calls == [variants.static_folder(own_cache)] and vectors.shape == (4, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)  # the empty text too: never NaN
    # Back to the full model: a different space, so everything is embedded again (announced).
    with open_index(make_settings(root, tmp_path / "index.db"), write=True, embedder=None) as index:
        report = index.sync()
    assert report.full_reembed_reason and "model" in report.full_reembed_reason
