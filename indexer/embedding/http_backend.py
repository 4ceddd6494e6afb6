"""An ``Embedder`` that calls an OpenAI-compatible ``/v1/embeddings`` endpoint:
Ollama, llama.cpp's server, vLLM, LM Studio, OpenAI.

Set by ``embedding_url`` (``http://localhost:11434/v1``, or the full
``.../v1/embeddings``) and ``embedding_model``; the key, if the server wants one,
comes from ``MEMDEX_EMBEDDING_KEY`` in the environment only. Texts go in batches
of ``batch_size``; each request has a timeout and is retried on what may pass
(http_client.py). The vectors are L2-normalised here (not every server does).

The model id recorded in the index and the embedding cache is ``api:MODEL``, so
vectors of another model are never mixed in, and a server moved to another host
keeps its vectors. The dimension is learned from the first answer (a one-text
request when it is asked for first). Without the model's tokenizer, tokens are
estimated from characters (``CHARS_PER_TOKEN``, on the safe side for English and
code; a CJK character is one), and the window is ``embedding_max_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from indexer.store.tokenizer import CJK_RUN

from .http_client import EMBEDDING_KEY_ENV, BACKOFF, RETRIES, TIMEOUT, EndpointError, JsonClient, endpoint, key_from_env, shown

CHARS_PER_TOKEN = 3  # BPE tokenizers average ~4 characters per English token; 3 keeps chunks inside the window
DEFAULT_MAX_TOKENS = 512  # the smallest window of the common embedding models (nomic-embed-text has 8,192)
PROBE = "dimension probe"
# A search's query (embed_query) waits at most QUERY_TIMEOUT seconds and is not sent again
# after a timeout, so a hung server gives keyword results (flagged) in seconds; at 3 x 30 s a
# search waited 91 s, past an MCP client's own timeout. Indexing keeps TIMEOUT and its retries.
QUERY_TIMEOUT = 10.0


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` without the model's tokenizer: ``CHARS_PER_TOKEN`` characters each,
    but a Chinese, Japanese or Korean character one (a token or more in every common
    tokenizer: counted a third, a CJK chunk was three times the model's window)."""
    cjk = 0 if text.isascii() else sum(len(run) for run in CJK_RUN.findall(text))
    return -(-(len(text) - cjk) // CHARS_PER_TOKEN) + cjk


class HttpEmbedder:
    """``Embedder`` over an OpenAI-compatible embeddings endpoint."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        batch_size: int = 32,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        key: str | None = None,
        timeout: float = TIMEOUT,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
        query_timeout: float = QUERY_TIMEOUT,
    ) -> None:
        if not model.strip():
            raise EndpointError("embedding_url needs embedding_model: the model's name on that server")
        self.model = model.strip()
        self.model_id = f"api:{self.model}"
        self.max_tokens = max_tokens
        self.batch_size = max(1, batch_size)
        self.client = JsonClient(
            endpoint(url, "/embeddings"), "embedding endpoint", key if key is not None else key_from_env(EMBEDDING_KEY_ENV),
            timeout, retries, backoff,
        )  # fmt: skip
        self.query_client = replace(self.client, timeout=min(timeout, query_timeout), retry_timeouts=False)
        self._dimensions: int | None = None
        self.requests = 0  # for tests and status

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self.embed([PROBE])
        return self._dimensions  # type: ignore[return-value]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [estimate_tokens(text) for text in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        parts = [
            self._batch(list(texts[start : start + self.batch_size]), self.client)
            for start in range(0, len(texts), self.batch_size)
        ]  # fmt: skip
        return np.concatenate(parts)

    def embed_query(self, text: str) -> np.ndarray:
        """A search's query vector: one request of at most ``QUERY_TIMEOUT`` s, not sent again after a timeout."""
        return self._batch([text], self.query_client)[0]

    def _batch(self, texts: list[str], client: JsonClient) -> np.ndarray:
        answer = client.post({"model": self.model, "input": texts})
        self.requests += 1
        matrix = _vectors(answer, len(texts), self.client)
        if self._dimensions is None:
            self._dimensions = matrix.shape[1]
        elif matrix.shape[1] != self._dimensions:
            raise EndpointError(
                f"the embedding endpoint {shown(self.client.url)} answered {matrix.shape[1]} dimensions, earlier {self._dimensions}"
            )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not np.all(np.isfinite(matrix)) or np.any(norms == 0):
            raise EndpointError(f"the embedding endpoint {shown(self.client.url)} answered a zero or non-finite vector")
        return (matrix / norms).astype(np.float32)


def _vectors(answer: Any, count: int, client: JsonClient) -> np.ndarray:
    """The ``data[].embedding`` of an OpenAI-style answer, in ``index`` order."""
    data = answer.get("data") if isinstance(answer, dict) else None
    bad = f"the embedding endpoint {shown(client.url)} answered no usable vectors"
    if not isinstance(data, list) or len(data) != count:
        raise EndpointError(f"{bad} (expected {count}, got {len(data) if isinstance(data, list) else 'none'})")
    try:
        items = sorted(data, key=lambda item: item.get("index", 0))
        matrix = np.asarray([item["embedding"] for item in items], dtype=np.float32)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise EndpointError(bad) from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise EndpointError(bad)
    return matrix
