"""Start-up: commands that embed nothing never load the model, and the ONNX query path.

The fast tests build an index with the real model's identity and tokenizer
(read from its files) but deterministic vectors, then run real ``memdex``
processes and look at ``sys.modules`` at their end. The slow ones use the real
weights: the ONNX export agrees with torch, hybrid search runs without torch,
and a failed export falls back to torch with one warning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import RecordingEmbedder, age_files

from indexer import make_settings, open_index
from indexer.config.settings import DEFAULT_MODEL
from indexer.embedding import onnx_backend as onnx_embed
from indexer.embedding.lazy import LazyEmbedder
from indexer.embedding.model_files import read_model_files
from indexer.embedding.resolve import resolve_model
from indexer.embedding.torch_backend import SentenceTransformerEmbedder
from indexer.sources.markdown.chunk import chunk_note
from indexer.sources.markdown.parse import parse_note

REPO = Path(__file__).resolve().parent.parent
HELPER = Path(__file__).resolve().parent / "startup_process.py"
FIXTURE = REPO / "fixtures" / "memory"


class FilesOnlyEmbedder(LazyEmbedder):
    """The real model's identity and tokenizer (from its files), deterministic vectors, no weights."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return RecordingEmbedder(dimensions=self.dimensions).embed(texts)


def memdex(*args: str, env: dict[str, str] | None = None) -> tuple[dict, str]:
    """Run ``memdex ARGS`` as a fresh process; (exit code and heavy modules imported, stdout)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run(
        [sys.executable, str(HELPER), *args], capture_output=True, text=True, env=environment, timeout=300
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return json.loads(lines[-1]), "\n".join(lines[:-1]) + done.stderr


@pytest.fixture
def memory(tmp_path: Path) -> Path:
    root = tmp_path / "memory"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns(".memdex"))
    age_files(root)
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=FilesOnlyEmbedder()) as index:
        index.sync()
    return root


def test_model_identity_comes_from_the_files():
    files = read_model_files(Path(resolve_model(DEFAULT_MODEL)[1]))
    assert files is not None
    assert (files.dimensions, files.max_seq_length, files.max_tokens) == (384, 256, 254)
    assert (files.pooling, files.normalize) == ("mean", True)
    embedder = LazyEmbedder()
    assert (embedder.model_id, embedder.dimensions, embedder.max_tokens) == (DEFAULT_MODEL, 384, 254)
    assert embedder.count_tokens(["Hello world", ""]) == [2, 0]
    assert embedder.loaded == []


def test_a_layout_the_files_cannot_describe_is_not_guessed(tmp_path: Path):
    folder = tmp_path / "model"
    shutil.copytree(resolve_model(DEFAULT_MODEL)[1], folder, ignore=shutil.ignore_patterns("*.safetensors"))
    assert read_model_files(folder) is not None
    modules = json.loads((folder / "modules.json").read_text())
    dense = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    (folder / "modules.json").write_text(json.dumps([*modules[:2], dense, modules[2]]))
    assert read_model_files(folder) is None  # a Dense layer changes the dimensions: load the model instead
    (folder / "modules.json").write_text(json.dumps(modules))
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_max_tokens": True}))
    assert read_model_files(folder) is None  # two pooling modes concatenated: not read from files


@pytest.mark.parametrize(
    "args",
    [
        ["index"],
        ["rebuild"],
        ["status"],
        ["check"],
        ["get", "MEMORY.md:1-3"],
        ["search", "--mode", "keyword", "penicillin allergy"],
    ],
    ids=lambda args: "-".join(args[:3]),
)
def test_commands_that_embed_nothing_import_no_model_library(memory: Path, args: list[str]):
    result, output = memdex("--root", str(memory), *args)
    assert result == {"exit": 0, "imported": []}, output
    if args[0] in ("index", "rebuild"):
        assert "0 embedded" in output


def test_an_index_made_again_from_a_warm_cache_imports_no_model_library(memory: Path):
    shutil.rmtree(memory / ".memdex" / "index.db", ignore_errors=True)
    (memory / ".memdex" / "index.db").unlink(missing_ok=True)
    result, output = memdex("--root", str(memory), "index")
    assert result == {"exit": 0, "imported": []}, output
    assert "0 embedded" in output and "from cache" in output
    result, output = memdex("--root", str(memory), "check")
    assert result == {"exit": 0, "imported": []}, output


def test_an_unknown_backend_is_a_one_line_error(memory: Path):
    result, output = memdex("--root", str(memory), "--backend", "gpu", "status")
    assert result["exit"] == 64 and "gpu" in output and "Traceback" not in output


# -- the real model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_model() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def fixture_texts() -> list[str]:
    embedder = LazyEmbedder()
    texts = []
    for path in sorted(FIXTURE.rglob("*.md")):
        note = parse_note(path.read_bytes())
        texts += [c.embed_text for c in chunk_note(note, count_tokens=embedder.count_tokens, max_tokens=254)]
    return texts


@pytest.mark.slow
def test_onnx_vectors_and_token_counts_agree_with_torch(torch_model):
    texts = fixture_texts()
    assert len(texts) > 100
    onnx = LazyEmbedder(backend="onnx")
    assert onnx.count_tokens(texts) == torch_model.count_tokens(texts)
    assert (onnx.dimensions, onnx.max_tokens) == (torch_model.dimensions, torch_model.max_tokens)
    got, expected = onnx.embed(texts), torch_model.embed(texts)
    assert onnx.loaded == ["onnx"]  # torch was loaded only to make (and check) the export, then let go
    assert float(np.min(np.sum(got * expected, axis=1))) >= 0.9999
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # A second embedder uses the verified export without loading torch.
    again = LazyEmbedder(backend="onnx")
    assert np.allclose(again.embed(texts[:3]), got[:3], atol=1e-6)
    assert again.loaded == ["onnx"]
    check = json.loads((onnx_embed.export_folder(onnx.files) / "check.json").read_text())
    assert check["min_cosine"] >= onnx_embed.MIN_COSINE


@pytest.mark.slow
def test_hybrid_search_in_a_fresh_process_uses_onnx_and_no_torch(tmp_path: Path):
    root = tmp_path / "memory"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns(".memdex"))
    result, output = memdex("--root", str(root), "index")  # loads torch to embed: makes the export too
    assert result["exit"] == 0, output
    query = "Which medicine am I unable to take safely?"
    result, output = memdex("--root", str(root), "search", "--json", query)
    assert result == {"exit": 0, "imported": ["onnxruntime"]}, output
    onnx_hits = json.loads(output)
    result, output = memdex("--root", str(root), "--backend", "torch", "search", "--json", query)
    assert "torch" in result["imported"] and "onnxruntime" not in result["imported"]
    torch_hits = json.loads(output)
    assert [(h["path"], h["start_line"]) for h in onnx_hits] == [(h["path"], h["start_line"]) for h in torch_hits]
    assert onnx_hits[0]["path"] == "MEMORY.md"
    assert [h["score"] for h in onnx_hits] == pytest.approx([h["score"] for h in torch_hits], abs=1e-3)


@pytest.mark.slow
def test_an_impossible_export_falls_back_to_torch_with_one_warning(tmp_path, monkeypatch, caplog, torch_model):
    not_a_folder = tmp_path / "cache-is-a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("MEMDEX_CACHE_DIR", str(not_a_folder))
    embedder = LazyEmbedder(backend="onnx")
    with caplog.at_level(logging.WARNING, logger="indexer.embedding.lazy"):
        vectors = embedder.embed(["penicillin allergy", "the spare key"])
        embedder.embed(["again"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings[0].startswith("preparing the embedding model"), warnings  # announced once, then it fails
    warnings = warnings[1:]
    assert len(warnings) == 1 and "ONNX Runtime backend unavailable" in warnings[0], warnings
    assert "\n" not in warnings[0]
    assert embedder.loaded == ["torch"]
    assert np.allclose(vectors, torch_model.embed(["penicillin allergy", "the spare key"]), atol=1e-6)


@pytest.mark.slow
def test_an_export_that_disagrees_with_torch_is_never_used(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MEMDEX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_embed, "MIN_COSINE", 1.5)  # no export can pass
    with caplog.at_level(logging.WARNING, logger="indexer.embedding.lazy"):
        first = LazyEmbedder(backend="onnx")
        first.embed(["a query"])
    folder = onnx_embed.export_folder(first.files)
    assert (folder / "failed.json").is_file() and not (folder / "model.onnx").exists()
    assert first.loaded == ["torch"]
    assert any("disagrees with torch" in r.getMessage() for r in caplog.records)
    # The next process does not try again (an export costs seconds): it goes straight to torch.
    second = LazyEmbedder(backend="onnx")
    second.embed(["a query"])
    assert second.loaded == ["torch"]


@pytest.mark.slow
def test_queries_embed_on_one_thread_and_bulk_on_the_bulk_setting():
    """With other processes busy on the cores, torch's default of one thread per core made
    a single query 10x slower (issue: search collapses under CPU contention)."""
    import torch

    embedder = LazyEmbedder(backend="torch", bulk_threads=2)
    embedder.embed(["one query"])
    assert torch.get_num_threads() == 1
    embedder.embed(["a bulk batch"] * 8)
    assert torch.get_num_threads() == 2
    embedder.embed(["another query"])
    assert torch.get_num_threads() == 1
    onnx = LazyEmbedder(backend="onnx", bulk_threads=2)
    onnx.embed(["one query"])
    onnx.embed(["a bulk batch"] * 8)
    threads = {n: e.session.get_session_options().intra_op_num_threads for n, e in onnx._onnx.items()}
    assert threads == {1: 1, 2: 2}
