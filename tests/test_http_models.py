"""Remote models: an OpenAI-compatible embeddings endpoint and a /rerank endpoint,
served for real by ``http.server`` in a thread, with vectors from the bundled model
(all-MiniLM-L6-v2), so the remote backend's vectors can be compared with the local one's."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write

from indexer import make_settings, open_index
from indexer.cli.app import cli
from indexer.config.resolve import load_configuration
from indexer.embedding.http_backend import HttpEmbedder
from indexer.embedding.http_client import EndpointError
from indexer.embedding.lazy import LazyEmbedder
from indexer.errors import ConfigError

pytestmark = pytest.mark.slow

KEY = "sk-test-0123456789"


@pytest.fixture(scope="module")
def local() -> LazyEmbedder:
    return LazyEmbedder(backend="onnx")


class ModelServer:
    """``/v1/embeddings`` and ``/rerank`` on 127.0.0.1, answering from the bundled model."""

    def __init__(self, model: LazyEmbedder) -> None:
        self.model = model
        self.key: str | None = None  # the Bearer key required, if any
        self.fail = 0  # answer this many next requests with HTTP 503
        self.stall: threading.Event | None = None  # hold embedding answers until it is set
        self.rerank: Callable[[str, list[str]], list[float]] | None = None  # None: the bundled model's cosines
        self.inputs: list[list[str]] = []  # every embeddings request's texts
        self.rerank_calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = server.answer(self.path, body, self.headers.get("Authorization"))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str, body: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        with self.lock:
            if self.key is not None and auth != f"Bearer {self.key}":
                return 401, {"error": {"message": "invalid api key"}}
            if self.fail:
                self.fail -= 1
                return 503, {"error": {"message": "loading model"}}
        if path == "/v1/embeddings":
            if self.stall is not None:
                self.stall.wait(10)
            with self.lock:
                self.inputs.append(list(body["input"]))
                vectors = self.model.embed(body["input"])
            data = [{"object": "embedding", "index": i, "embedding": (v * 3).tolist()} for i, v in enumerate(vectors)]
            return 200, {"object": "list", "data": data[::-1], "model": body["model"]}  # any order: "index" says
        if path == "/v1/rerank":
            self.rerank_calls.append(body)
            documents = body["documents"]
            if self.rerank is not None:
                scores = self.rerank(body["query"], documents)
            else:
                with self.lock:
                    vectors = self.model.embed([body["query"], *documents])
                scores = (vectors[1:] @ vectors[0]).tolist()
            return 200, {"results": [{"index": i, "relevance_score": s} for i, s in enumerate(scores)]}
        return 404, {"error": {"message": "no such route"}}

    def close(self) -> None:
        if self.stall is not None:
            self.stall.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(local: LazyEmbedder) -> Iterator[ModelServer]:
    running = ModelServer(local)
    yield running
    running.close()


def closed_port_url() -> str:
    """An address where nothing listens (a port just released)."""
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    return f"http://127.0.0.1:{port}/v1"


NOTES = {
    "notes/boat.md": "# Boat\n\nThe sailboat is moored at the north marina, berth 14.\n",
    "notes/cat.md": "# Cat\n\nMiso the cat eats salmon pâté twice a day.\n",
    "notes/tax.md": "# Taxes\n\nThe tax return is due in April; the accountant is Ines.\n",
    "daily/2026-01-05.md": "# 2026-01-05\n\n- Fixed the boiler pressure valve.\n- Booked the dentist.\n",
}


def remote_settings(root: Path, url: str, **options: Any):
    return make_settings(root, embedding_url=url, embedding_model="minilm", embed_batch_size=2, **options)


def index_notes(root: Path, settings) -> None:
    for rel, text in NOTES.items():
        write(root, rel, text)
    with open_index(settings, write=True) as index:
        index.sync()


def test_index_and_search_through_an_embeddings_endpoint(root: Path, server: ModelServer, local: LazyEmbedder) -> None:
    settings = remote_settings(root, server.url)
    index_notes(root, settings)
    assert server.inputs and all(len(texts) <= 2 for texts in server.inputs)  # batches of embed_batch_size
    with open_index(settings) as index:
        assert index.store.meta()["model"] == "api:minilm"
        assert index.store.meta()["dimensions"] == "384"
        results = index.search("where is the sailboat kept?", mode="vector")
        assert results[0].path == "notes/boat.md"
        assert index.degraded is None
        remote = index.embedder.embed(["the cat's food"])
    # the endpoint's (unnormalised, shuffled) answer becomes the bundled model's own unit vectors
    assert np.allclose(remote, local.embed(["the cat's food"]), atol=1e-5)


def test_the_embedding_cache_is_keyed_by_the_model_id(root: Path, server: ModelServer) -> None:
    index_notes(root, remote_settings(root, server.url))
    chunk_texts = {text for texts in server.inputs for text in texts}
    other = make_settings(root, embedding_url=server.url, embedding_model="other-model", embed_batch_size=2)
    server.inputs.clear()
    with open_index(other, write=True) as index:
        index.sync()  # another model: every chunk again, nothing from the first model's cache
    assert {text for texts in server.inputs for text in texts} >= chunk_texts - {"dimension probe"}
    server.inputs.clear()
    with open_index(remote_settings(root, server.url), write=True) as index:
        report = index.sync()  # back to the first: its vectors come from the cache
    assert report.chunks_embedded == 0 and report.chunks_from_cache > 0
    assert all(texts == ["dimension probe"] for texts in server.inputs)  # only learning the dimension


def test_the_key_comes_from_the_environment_and_is_never_shown(
    root: Path, server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.key = KEY
    monkeypatch.delenv("MEMDEX_EMBEDDING_KEY", raising=False)
    with pytest.raises(EndpointError, match="HTTP 401: invalid api key") as refused:
        HttpEmbedder(server.url, "minilm", retries=0).embed(["hello"])
    assert "\n" not in str(refused.value)
    monkeypatch.setenv("MEMDEX_EMBEDDING_KEY", KEY)
    assert HttpEmbedder(server.url, "minilm", retries=0).embed(["hello"]).shape == (1, 384)
    config = root / ".memdex" / "config.toml"
    config.parent.mkdir()
    config.write_text(f'embedding_url = "{server.url}"\nembedding_key = "{KEY}"\n')
    with pytest.raises(ConfigError, match="only from the environment") as in_file:
        load_configuration({"root": str(root)}, env={}, user_file=False)
    assert KEY not in str(in_file.value)


def test_a_busy_endpoint_is_retried_and_a_down_one_is_one_line(server: ModelServer) -> None:
    server.fail = 2
    embedder = HttpEmbedder(server.url, "minilm", retries=2, backoff=0)
    assert embedder.embed(["a", "b"]).shape == (2, 384)  # two 503s, then the answer
    server.fail = 3
    with pytest.raises(EndpointError, match=r"is not reachable \(HTTP 503: loading model; tried 3 times\)"):
        embedder.embed(["a"])
    down = closed_port_url()
    with pytest.raises(EndpointError, match=r"^the embedding endpoint http://127\.0\.0\.1:\d+/v1/embeddings is not reachable"):
        HttpEmbedder(down, "minilm", retries=1, backoff=0).embed(["a"])


def test_a_request_that_takes_too_long_times_out(server: ModelServer) -> None:
    server.stall = threading.Event()
    with pytest.raises(EndpointError, match=r"not reachable \(timed out; tried 1 time\)"):
        HttpEmbedder(server.url, "minilm", timeout=0.3, retries=0).embed(["a"])


def test_a_search_degrades_to_keyword_with_a_visible_flag(root: Path, local: LazyEmbedder, caplog) -> None:
    running = ModelServer(local)
    settings = remote_settings(root, running.url)
    index_notes(root, settings)
    running.close()  # the endpoint goes down
    with open_index(settings) as index, caplog.at_level(logging.WARNING, logger="indexer"):
        results = index.search("sailboat marina")
        assert results[0].path == "notes/boat.md"  # keyword results
        assert index.degraded is not None and "is not reachable" in index.degraded
        assert index.degraded.endswith("keyword results only")
    assert any("keyword results only" in record.getMessage() for record in caplog.records)
    env = {"MEMDEX_ROOT": str(root), "MEMDEX_DB": None, "MEMDEX_MODEL": None,
           "MEMDEX_EMBEDDING_URL": running.url, "MEMDEX_EMBEDDING_MODEL": "minilm"}  # fmt: skip
    found = CliRunner(env=env).invoke(cli, ["search", "sailboat marina"])
    assert found.exit_code == 0 and "notes/boat.md" in found.stdout
    assert "memdex: warning: the embedding endpoint" in found.stderr and "keyword results only" in found.stderr
    write(root, "notes/new.md", "# New\n\nA new note.\n")
    failed = CliRunner(env=env).invoke(cli, ["index"])
    assert failed.exit_code != 0 and "Traceback" not in failed.output
    assert failed.stderr.startswith("memdex: error: the embedding endpoint") and failed.stderr.count("\n") == 1


def test_a_rerank_endpoint_reorders_the_top_results(root: Path, server: ModelServer) -> None:
    index_notes(root, remote_settings(root, server.url))
    plain = remote_settings(root, server.url)
    with open_index(plain) as index:
        before = index.search("boat", budget_lines=None, limit=4)
    assert before[0].path == "notes/boat.md" and len(before) == 4
    third = before[2].snippet
    server.rerank = lambda query, documents: [float(third in doc) for doc in documents]  # the third one first
    reranked = remote_settings(root, server.url, rerank_url=server.url, rerank_model="bge-reranker", rerank_top=3)
    with open_index(reranked) as index:
        after = index.search("boat", budget_lines=None, limit=4)
    call = server.rerank_calls[-1]
    assert call["query"] == "boat" and call["model"] == "bge-reranker" and len(call["documents"]) == 3
    assert [r.path for r in after] == [before[2].path, before[0].path, before[1].path, before[3].path]
    assert [r.score for r in after] == sorted((r.score for r in after), reverse=True)


def test_the_bundled_reranker_server_agrees_with_the_cosines(root: Path, server: ModelServer) -> None:
    settings = remote_settings(root, server.url, rerank_url=server.url, rerank_top=4)
    index_notes(root, settings)
    with open_index(settings) as index:
        results = index.search("what does the cat eat", budget_lines=None, limit=4)
    assert results[0].path == "notes/cat.md" and server.rerank_calls


def test_a_rerank_endpoint_that_is_down_keeps_the_ranking(root: Path, server: ModelServer, caplog) -> None:
    index_notes(root, remote_settings(root, server.url))
    with open_index(remote_settings(root, server.url)) as index:
        before = index.search("boiler dentist", budget_lines=None, limit=4)
    down = remote_settings(root, server.url, rerank_url=closed_port_url())
    with open_index(down) as index, caplog.at_level(logging.WARNING, logger="indexer"):
        after = index.search("boiler dentist", budget_lines=None, limit=4)
    assert after == before
    assert any("rerank endpoint" in r.getMessage() and "not re-ranked" in r.getMessage() for r in caplog.records)


def test_mcp_says_when_the_endpoint_is_down(root: Path, local: LazyEmbedder) -> None:
    from test_mcp import call, with_client

    from indexer.serve.service import IndexService

    running = ModelServer(local)
    settings = remote_settings(root, running.url)
    index_notes(root, settings)
    running.close()

    async def body(client):
        return await call(client, "memory_search", query="sailboat marina")

    found = with_client(IndexService(settings), body)
    assert found["results"][0]["path"] == "notes/boat.md"
    assert found["mode"] == "keyword" and "is not reachable" in found["degraded"]


def test_endpoint_addresses_and_what_messages_show() -> None:
    from indexer.embedding.http_client import endpoint, shown

    assert endpoint("http://localhost:11434/v1", "/embeddings") == "http://localhost:11434/v1/embeddings"
    assert endpoint("http://localhost:11434/v1/", "/embeddings") == "http://localhost:11434/v1/embeddings"
    assert endpoint("http://h/v1/embeddings", "/embeddings") == "http://h/v1/embeddings"
    assert endpoint("http://h:8080", "/rerank") == "http://h:8080/rerank"
    secret = endpoint("https://user:pw@h/v1?api-key=s3cret", "/embeddings")
    assert secret == "https://user:pw@h/v1/embeddings?api-key=s3cret"  # the query stays a query
    assert shown(secret) == "https://h/v1/embeddings"  # no user, password or query in a message
    with pytest.raises(EndpointError, match="is not an http"):
        endpoint("ftp://h/v1", "/embeddings")
