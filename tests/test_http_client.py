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
