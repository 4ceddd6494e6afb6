"""`memdex mcp` as a real process with the real model: stdio through the SDK's stdio
client, streamable HTTP on 127.0.0.1 (a foreign Origin refused), and --watch."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import write
from mcp import Client, StdioServerParameters

from indexer import make_settings, open_index
from indexer.embedding.lazy import LazyEmbedder
from indexer.embedding.torch_backend import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
QUERY = "Which medicine am I unable to take safely?"


@pytest.fixture(scope="module")
def indexed_memory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e") / "memory"
    shutil.copytree(REPO / "fixtures" / "memory", root, ignore=shutil.ignore_patterns(".memdex"))
    with open_index(make_settings(root), write=True, embedder=SentenceTransformerEmbedder()) as index:
        index.sync()
    LazyEmbedder().prepare()  # the ONNX export a first `memdex index` makes (test_first_run covers a fresh cache)
    return root


def server_env(tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(REPO), "MEMDEX_CONFIG": str(tmp_path / "no-user-config.toml"), "PYTHONUNBUFFERED": "1"}


def stdio(root: Path, tmp_path: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "indexer", "--root", str(root), "mcp", *extra], env=server_env(tmp_path)
    )


def run(server: Any, body: Callable[[Client], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with Client(server, read_timeout_seconds=120) as client:
            return await body(client)

    return anyio.run(main)


async def search(client: Client, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool("memory_search", arguments)
    assert not result.is_error, result.content
    return result.structured_content  # type: ignore[return-value]


def test_stdio_server_with_the_real_model(indexed_memory: Path, tmp_path: Path) -> None:
    async def body(client: Client) -> Any:
        tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        found = await search(client, query=QUERY, maxResults=3)
        bad = await client.call_tool("memory_get", {"path": "../../etc/passwd"})
        got = await client.call_tool("memory_get", {"path": found["results"][0]["citation"]})
        return tools, found, bad, got

    tools, found, bad, got = run(stdio(indexed_memory, tmp_path), body)
    assert tools == ["memory_get", "memory_search", "memory_status"]
    top = found["results"][0]
    assert found["model"] == "sentence-transformers/all-MiniLM-L6-v2" and found["mode"] == "hybrid"
    assert top["path"] == "MEMORY.md" and "enicillin" in got.structured_content["text"]
    assert bad.is_error and "outside the memory root" in bad.content[0].text


def test_stdout_carries_only_the_protocol(indexed_memory: Path, tmp_path: Path) -> None:
    """Raw JSON-RPC over a pipe: every line on stdout is a JSON-RPC message, even while
    the model loads and a search runs; the logs went to stderr."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "memory_search", "arguments": {"query": QUERY}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "memory_search", "arguments": {"query": 5}}},
    ]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "indexer", "-v", "--root", str(indexed_memory), "mcp"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, **server_env(tmp_path)},
    )  # fmt: skip
    killer = threading.Timer(180, process.kill)  # a hung server fails the test instead of hanging it
    killer.start()
    replies: dict[int, dict[str, Any]] = {}
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("".join(json.dumps(m) + "\n" for m in messages).encode())
        process.stdin.flush()
        while not {1, 2, 3} <= set(replies):  # EOF on stdin would cancel the requests still running
            line = process.stdout.readline()
            assert line, "the server closed stdout early"
            message = json.loads(line)  # anything but JSON-RPC on stdout fails here
            assert message.get("jsonrpc") == "2.0"
            if "id" in message:
                replies[message["id"]] = message
        process.stdin.close()
        rest = process.stdout.read()
        assert all(json.loads(line)["jsonrpc"] == "2.0" for line in rest.decode().split("\n") if line)
        process.wait(timeout=60)
    finally:
        killer.cancel()
        if process.poll() is None:
            process.kill()
    assert replies[2]["result"]["structuredContent"]["results"][0]["path"] == "MEMORY.md"
    assert replies[3]["result"]["isError"] is True
    assert process.returncode == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_http_server_refuses_a_foreign_origin(indexed_memory: Path, tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "indexer", "--root", str(indexed_memory), "mcp", "--http", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **server_env(tmp_path)},
    )  # fmt: skip
    try:
        seen = []
        while not seen or "serving http://" not in seen[-1]:  # warnings may come first
            seen.append(process.stderr.readline().decode())  # type: ignore[union-attr]
            assert seen[-1], seen  # EOF: the server exited
        assert f"serving http://127.0.0.1:{port}/mcp" in seen[-1], seen
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while True:  # the listening line comes just before uvicorn binds
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        found = run(url, lambda client: search(client, query=QUERY))
        assert found["results"][0]["path"] == "MEMORY.md"
        initialize = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}}).encode()  # fmt: skip
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        for extra, status in (({"Origin": "http://evil.example"}, 403), ({"Host": "evil.example"}, 421)):
            request = urllib.request.Request(url, data=initialize, headers={**headers, **extra}, method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == status
        local = urllib.request.Request(url, data=initialize, headers={**headers, "Origin": f"http://localhost:{port}"})
        with urllib.request.urlopen(local, timeout=30) as accepted:
            assert accepted.status == 200
        process.terminate()
        process.wait(timeout=30)
        logged = process.stderr.read().decode().splitlines()  # type: ignore[union-attr]
        refusals = [line for line in logged if "refused" in line]
        assert refusals == [
            "memdex: warning: refused an HTTP request from Origin http://evil.example "
            "(accept it with --allow-origin http://evil.example)",
            "memdex: warning: refused an HTTP request for Host evil.example (accept it with --allow-host NAME)",
        ], logged
        assert not any(line.startswith(" ") or "WARNING" in line for line in logged), logged  # no Rich layout
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def test_http_refuses_a_non_loopback_address_without_allow_remote(tmp_path: Path) -> None:
    write(tmp_path / "memory", "MEMORY.md", "# m\n")
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "--root", str(tmp_path / "memory"), "mcp", "--http", "0.0.0.0:8765"],
        capture_output=True, env={**os.environ, **server_env(tmp_path)}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 64 and b"--allow-remote" in done.stderr


def test_watch_finds_an_edit_made_while_serving(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    shutil.copytree(REPO / "fixtures" / "openclaw", root, ignore=shutil.ignore_patterns(".memdex"))

    async def body(client: Client) -> Any:
        deadline = time.monotonic() + 240
        while True:  # the server builds the index itself, then watches
            status = (await client.call_tool("memory_status", {})).structured_content
            if status["server"]["writer"] == "watching":
                break
            assert time.monotonic() < deadline, status
            await anyio.sleep(0.1)
        write(root, "memory/2026-12-01.md", "# 2026-12-01\n\n- Adopted a hedgehog and named it Quillon.\n")
        started = time.monotonic()
        while not (found := await search(client, query="what did I name the hedgehog", maxResults=1))["results"] or (
            found["results"][0]["path"] != "memory/2026-12-01.md"
        ):
            assert time.monotonic() < deadline, found
            await anyio.sleep(0.05)
        return found, time.monotonic() - started, (await client.call_tool("memory_status", {})).structured_content

    found, seconds, status = run(stdio(root, tmp_path, "--watch"), body)
    assert found["results"][0]["date"] == "2026-12-01" and found["results"][0]["kind"] == "daily"
    assert status["server"]["read_only"] is False and status["by_kind"]["daily"]["files"] == 3
    assert seconds < 30


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_watch_over_stdio_stops_on_a_signal_while_the_client_keeps_stdin_open(
    indexed_memory: Path, tmp_path: Path, signum: int
) -> None:
    """A service manager's SIGTERM (or Ctrl-C) ends `mcp --watch` even though the client
    never closes stdin: exit 0, the watcher's status file gone, the writer lock free."""
    root = tmp_path / "memory"
    shutil.copytree(indexed_memory, root)
    status_file = root / ".memdex" / "watcher.json"
    with open(tmp_path / "stderr.txt", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "indexer", "--root", str(root), "mcp", "--watch"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, **server_env(tmp_path)},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not status_file.exists():  # the watcher runs: it holds the lock and has a status file
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.05)
        process.send_signal(signum)
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`mcp --watch` ignored signal {signum} with stdin open")
        assert code == 0, (tmp_path / "stderr.txt").read_text()
        assert not status_file.exists()
        with open_index(make_settings(root), write=True, embedder=SentenceTransformerEmbedder()):
            pass  # the writer lock was released
        assert "Traceback" not in (tmp_path / "stderr.txt").read_text()
    finally:
        if process.poll() is None:
            process.kill()
        process.stdin.close()  # type: ignore[union-attr]
        process.wait()
