"""http_client.JsonClient against real sockets: what is not an HTTP server, and a URL's
``user:password@`` (HTTP Basic), each one clear outcome (no model needed)."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from indexer.embedding.http_client import EndpointError, JsonClient


@pytest.fixture
def not_http() -> Iterator[str]:
    """A port where another service (an SSH server) answers with its banner."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1/embeddings"
    stop.set()
    listener.close()
    thread.join(5)


def test_a_port_that_does_not_speak_http_is_an_endpoint_error(not_http: str) -> None:
    client = JsonClient(not_http, "embedding endpoint", retries=1, backoff=0.0)
    with pytest.raises(EndpointError) as caught:  # was http.client.BadStatusLine: a traceback, no degraded search
        client.post({"input": ["x"]})
    message = str(caught.value)
    assert "\n" not in message and "not reachable" in message and "tried 2 times" in message


@pytest.fixture
def basic_server() -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Authorization"))
            data = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_a_user_and_password_in_the_url_are_sent_as_basic_auth(basic_server: tuple[str, list[str | None]]) -> None:
    host, seen = basic_server
    client = JsonClient(f"http://me:p%40ss@{host}/v1/embeddings", "embedding endpoint", retries=0)
    assert client.post({"input": ["x"]}) == {"ok": True}  # was: "Name or service not known" for "me:p@ss@127..."
    assert seen == ["Basic " + base64.b64encode(b"me:p@ss").decode()]
    keyed = JsonClient(f"http://me:pw@{host}/v1/embeddings", "embedding endpoint", key="sk-1", retries=0)
    keyed.post({})
    assert seen[-1] == "Bearer sk-1"  # an API key wins over the URL's user


def test_a_remote_model_counts_a_cjk_character_as_a_token() -> None:
    from indexer.embedding.http_backend import HttpEmbedder

    embedder = HttpEmbedder("http://127.0.0.1:9/v1", "m", max_tokens=512)  # nothing is sent
    english, chinese = "a" * 300, "会" * 300
    assert embedder.count_tokens([english, chinese, "会议 at 9"]) == [100, 300, 2 + 2]  # Chinese was 100: 3x the window


@pytest.fixture
def hung() -> Iterator[str]:
    """A server that accepts connections and never answers (a stuck model server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    listener.close()


def test_a_search_sized_call_to_a_hung_server_gives_up_after_one_short_timeout(hung: str) -> None:
    import time

    from indexer.embedding.http_backend import HttpEmbedder

    embedder = HttpEmbedder(hung, "m", timeout=3.0, retries=2, backoff=0.0, query_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(EndpointError, match=r"timed out after 0\.3 s; tried 1 time\)"):
        embedder.embed_query("what did we decide")  # was: 3 tries of the full timeout (3 x 30 s by default)
    assert time.monotonic() - started < 2.0
    assert embedder.client.timeout == 3.0 and embedder.client.retry_timeouts  # indexing keeps its timeout and tries


def test_a_search_against_a_hung_server_answers_keyword_results_quickly(hung: str, tmp_path) -> None:
    import time

    from conftest import RecordingEmbedder, write

    from indexer import make_settings, open_index
    from indexer.embedding.http_backend import HttpEmbedder
    from indexer.serve.service import SharedEmbedder

    root = tmp_path / "memory"
    write(root, "notes/boat.md", "# Boat\n\nThe sailboat is moored at the north marina.\n")
    local = RecordingEmbedder()
    with open_index(make_settings(root), write=True, embedder=local) as index:
        index.sync()
    remote = HttpEmbedder(hung, "m", timeout=3.0, retries=2, backoff=0.0, query_timeout=0.3)
    remote.model_id, remote._dimensions = local.model_id, local.dimensions  # as if it had built the index
    shared = SharedEmbedder(lambda: remote)
    shared._calling.acquire()  # the watcher's batch to the same hung server holds the model meanwhile ...
    held = threading.Timer(5.0, shared._calling.release)  # ... for 5 s (its own timeout)
    held.start()
    for embedder in (remote, shared):  # the API, and the MCP server's shared model
        with open_index(make_settings(root), embedder=embedder) as index:
            started = time.monotonic()
            results = index.search("sailboat marina")
            assert time.monotonic() - started < 2.0  # was 3 x 3 s here (3 x 30 s by default)
            assert results[0].path == "notes/boat.md" and "timed out" in (index.degraded or "")
    held.cancel()


def test_a_local_model_variant_with_a_remote_model_is_a_one_line_error(tmp_path: Any) -> None:
    """model_variant makes a local model faster; with embedding_url it would be ignored
    silently, so the two together are refused, naming both."""
    from indexer import make_settings
    from indexer.api import make_embedder
    from indexer.errors import ConfigError

    remote = {"embedding_url": "http://127.0.0.1:9/v1", "embedding_model": "nomic-embed-text"}
    with pytest.raises(ConfigError, match="model_variant 'int8' applies to a local model, not to embedding_url"):
        make_embedder(make_settings(tmp_path, model_variant="int8", **remote))
    assert make_embedder(make_settings(tmp_path, **remote)).model_id == "api:nomic-embed-text"
