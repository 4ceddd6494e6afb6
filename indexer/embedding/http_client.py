"""JSON over HTTP for the remote model backends (embeddings, re-ranking): one POST
with a timeout, retried on what may pass (no connection, a timeout, HTTP 429 or
5xx) with a growing pause, and every failure one line that names the endpoint
without its credentials (``EndpointError``). Standard library only.

The API key is read from the environment (``key_from_env``), never from a
configuration file, and never appears in a message.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from indexer.errors import ModelError

EMBEDDING_KEY_ENV = "MEMDEX_EMBEDDING_KEY"
RERANK_KEY_ENV = "MEMDEX_RERANK_KEY"  # falls back to MEMDEX_EMBEDDING_KEY
TIMEOUT = 30.0  # seconds per request: a batch of 32 chunks on a CPU-only Ollama takes a few
RETRIES = 2  # a request is tried at most this many more times
BACKOFF = 0.5  # seconds before the first retry, doubled for each next one
MAX_RESPONSE = 256 * 1024 * 1024  # bytes: 32 vectors of 4,096 floats as JSON are ~3 MB


class EndpointError(ModelError):
    """A remote model endpoint is down, refused the request or answered nonsense."""


def key_from_env(*names: str) -> str | None:
    """The first non-empty of the environment variables ``names``."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def shown(url: str) -> str:
    """``url`` for messages: scheme, host, port and path; no user, password or query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


# Query parameters that carry a credential (Azure's ``api-key``, ``access_token``, a signature).
SECRET_PARAMETER = re.compile(r"key|token|secret|sig|pass|auth|cred", re.IGNORECASE)


def without_credentials(url: str, *, mask: str | None = None) -> tuple[str, bool]:
    """``url`` without its ``user:password@`` and its credential query parameters
    (``mask``: each replaced by it instead), and whether it had any. For what is shown
    (``memdex config``) and what a service definition may carry."""
    parts = urllib.parse.urlsplit(url.strip())
    had = parts.username is not None or parts.password is not None
    netloc = parts.netloc.rpartition("@")[2]
    if had and mask is not None:
        netloc = f"{mask}@{netloc}"
    query = []  # each other parameter as written (re-encoding would change what the server reads)
    for pair in parts.query.split("&") if parts.query else []:
        name = urllib.parse.unquote_plus(pair.partition("=")[0])
        if SECRET_PARAMETER.search(name):
            had = True
            if mask is None:
                continue
            pair = f"{pair.partition('=')[0]}={mask}"
        query.append(pair)
    if not had:
        return url, False
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "&".join(query), parts.fragment)), True


def endpoint(base: str, path: str) -> str:
    """``base`` (``http://host:11434/v1`` or the full ``.../v1/embeddings``) with ``path`` appended unless it ends so."""
    base = base.strip()
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"{shown(base) or base!r} is not an http(s) URL")
    trimmed = parts.path.rstrip("/")
    full = trimmed if trimmed.endswith(path) else trimmed + path
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, full, parts.query, ""))


@dataclass
class JsonClient:
    """POSTs JSON to one URL; ``what`` names the endpoint in messages ("embedding endpoint")."""

    url: str
    what: str
    key: str | None = None
    timeout: float = TIMEOUT
    retries: int = RETRIES
    backoff: float = BACKOFF
    retry_timeouts: bool = True  # False: a request that timed out is not sent again (a search waits for it)

    def post(self, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        target, basic = _without_user(self.url)  # urllib would take "user:pw@host" for the host name
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        elif basic:
            headers["Authorization"] = f"Basic {basic}"
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(target, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only
                    raw = response.read(MAX_RESPONSE + 1)
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}{_detail(exc)}"
                if exc.code == 429 or exc.code >= 500:
                    continue
                if exc.code in (401, 403):
                    problem += " (check the API key in the environment)"
                raise EndpointError(f"the {self.what} {shown(self.url)} refused the request: {problem}") from None
            except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError, OSError,
                    http.client.HTTPException) as exc:  # HTTPException: not HTTP there (another service's port), a cut answer
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, (TimeoutError, socket.timeout)):
                    problem = "timed out"
                    if not self.retry_timeouts:
                        tries = attempt + 1
                        raise EndpointError(
                            f"the {self.what} {shown(self.url)} is not reachable (timed out after {self.timeout:g} s; "
                            f"tried {tries} time{'s' if tries > 1 else ''})"
                        ) from None
                elif isinstance(exc, http.client.HTTPException):
                    problem = f"not an HTTP answer ({type(exc).__name__})"
                else:
                    problem = str(reason)
                continue
            if len(raw) > MAX_RESPONSE:
                raise EndpointError(f"the {self.what} {shown(self.url)} answered more than {MAX_RESPONSE} bytes")
            try:
                return json.loads(raw)
            except ValueError:
                raise EndpointError(f"the {self.what} {shown(self.url)} did not answer JSON") from None
        tries = self.retries + 1
        raise EndpointError(
            f"the {self.what} {shown(self.url)} is not reachable ({problem}; tried {tries} time{'s' if tries > 1 else ''})"
        )


def _without_user(url: str) -> tuple[str, str | None]:
    """``url`` without its ``user:password@`` and those as a Basic credential (None: none given)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    pair = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), base64.b64encode(pair.encode("utf-8")).decode("ascii")


def _detail(exc: urllib.error.HTTPError) -> str:
    """A short reason from an error response's body (OpenAI-style ``error.message``), if any."""
    try:
        body = json.loads(exc.read(4096) or b"null")
    except (ValueError, OSError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    return ": " + " ".join(message.split())[:200]
