"""An optional ranking stage: a cross-encoder behind a ``/rerank`` endpoint
(llama.cpp's server with a reranking model, Jina, vLLM, Infinity) re-orders the
first ``top`` candidates.

Request ``{"model", "query", "documents", "top_n"}``, answer ``{"results":
[{"index", "relevance_score"}, ...]}`` (the shape llama.cpp and Jina share).
The re-ordered chunks take the scores the first ``top`` had, in their new order,
so printed scores stay on the search's scale and in rank order; the rest keep
theirs. When the endpoint is down or answers nonsense, the stage logs one
warning line and the ranking is kept as it was (the search still answers).
The key, if the endpoint wants one, comes from ``MEMDEX_RERANK_KEY`` (else
``MEMDEX_EMBEDDING_KEY``) in the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from indexer.embedding.http_client import EMBEDDING_KEY_ENV, RERANK_KEY_ENV, EndpointError, JsonClient, endpoint, key_from_env, shown
from indexer.store import ChunkRow

Ranked = list[tuple[int, float]]  # (chunk id, score), best first (as stages.Ranked)


class Context(Protocol):
    """What the stage reads of ``stages.StageContext``."""

    query: str

    def read(self, ids: Iterable[int]) -> dict[int, ChunkRow]: ...

log = logging.getLogger(__name__)

MAX_DOCUMENT_CHARS = 4000  # a re-ranker reads ~512 tokens of each document; the rest would only travel
RERANK_RETRIES = 1  # a search waits for it: one retry, then the ranking as it was


@dataclass(frozen=True)
class RemoteRerank:
    """The first ``top`` candidates re-ordered by the ``/rerank`` endpoint at ``url``."""

    url: str
    model: str
    top: int

    def __call__(self, ranked: Ranked, context: Context) -> Ranked:
        head = ranked[: self.top]
        if len(head) < 2 or not context.query.strip():
            return ranked
        rows = context.read(cid for cid, _ in head)
        head = [(cid, score) for cid, score in head if cid in rows]
        documents = [_document(rows[cid].heading, rows[cid].text) for cid, _ in head]
        try:
            order = self.order(context.query, documents)
        except EndpointError as exc:
            log.warning("%s; results are not re-ranked", exc)
            return ranked
        scores = sorted((score for _, score in head), reverse=True)
        reordered = [(head[i][0], score) for i, score in zip(order, scores)]
        return reordered + ranked[self.top :]

    def order(self, query: str, documents: list[str]) -> list[int]:
        """Indexes of ``documents``, most relevant first (every index once)."""
        client = JsonClient(endpoint(self.url, "/rerank"), "rerank endpoint",
                            key_from_env(RERANK_KEY_ENV, EMBEDDING_KEY_ENV), retries=RERANK_RETRIES)  # fmt: skip
        body: dict[str, Any] = {"query": query, "documents": documents, "top_n": len(documents)}
        if self.model:
            body["model"] = self.model
        return _order(client.post(body), len(documents), client)


def _document(heading: str, text: str) -> str:
    document = f"{heading}\n{text}" if heading else text
    return document[:MAX_DOCUMENT_CHARS]


def _order(answer: Any, count: int, client: JsonClient) -> list[int]:
    results = answer.get("results") if isinstance(answer, dict) else answer  # some servers answer the bare list
    try:
        scored = [(float(item["relevance_score"]), int(item["index"])) for item in results]
    except (KeyError, TypeError, ValueError):
        raise EndpointError(f"the rerank endpoint {shown(client.url)} answered no usable results") from None
    seen: set[int] = set()
    order = []
    for _, index in sorted(scored, key=lambda item: (-item[0], item[1])):
        if 0 <= index < count and index not in seen:
            seen.add(index)
            order.append(index)
    return order + [i for i in range(count) if i not in seen]  # any the endpoint left out keep their order
