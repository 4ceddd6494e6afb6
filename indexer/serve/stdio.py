"""``memdex mcp`` over stdio: the SDK's transport, except that every request gets
an answer. A line the SDK cannot read (not JSON, not JSON-RPC, or JSON text with
a lone surrogate such as ``"\\ud800"``, which is not Unicode) was dropped, and
the client waited for ever; it is now answered with a JSON-RPC parse error that
carries the request's id.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

log = logging.getLogger(__name__)


async def serve_stdio(server: MCPServer) -> None:
    """``server.run("stdio")``, except that a line the SDK cannot read gets an answer."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        lowlevel = server._lowlevel_server  # noqa: SLF001 - what MCPServer.run_stdio_async runs
        await lowlevel.run(
            _AnswerUnreadable(read_stream, write_stream), write_stream, lowlevel.create_initialization_options()
        )


class _AnswerUnreadable:
    """The transport's read stream, except that a line it could not read (not JSON,
    not JSON-RPC, or text with a lone surrogate such as ``"\\ud800"``, which is not
    Unicode) is answered with a JSON-RPC parse error carrying the request's id,
    instead of being dropped while the client waits for ever."""

    def __init__(self, inner: Any, write_stream: Any) -> None:
        self._inner = inner
        self._write = write_stream

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def __aenter__(self) -> _AnswerUnreadable:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)

    def __aiter__(self) -> _AnswerUnreadable:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                item = await self._inner.receive()
            except anyio.EndOfStream:
                raise StopAsyncIteration from None
            if not isinstance(item, Exception):
                return item
            try:
                answer = unreadable_answer(item)
            except Exception:  # noqa: BLE001 - never let one bad line stop the server
                log.exception("cannot answer an unreadable line")
                continue
            if answer is not None:
                await self._write.send(answer)

    async def receive(self) -> Any:
        return await self.__anext__()

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()


def unreadable_answer(exc: Exception) -> Any:
    """The JSON-RPC error for a line the transport could not read (None for a
    notification, which gets no answer)."""
    from mcp.shared.message import SessionMessage
    from mcp.types import ErrorData, JSONRPCError

    raw = _raw_input(exc)
    try:
        message = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        message = None
    if isinstance(message, dict) and "method" in message and "id" not in message:
        log.warning("ignored a notification that is not valid JSON-RPC text")
        return None
    request_id = message.get("id") if isinstance(message, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        request_id = None
    elif isinstance(request_id, str) and not is_text(request_id):
        request_id = None  # an id that cannot be written back: the client gets id null
    if message is not None and not is_text(json.dumps(message, ensure_ascii=False)):
        text = "invalid request: it holds a lone surrogate (such as \\ud800), which is not Unicode text; send valid UTF-8"
    elif message is not None:
        text = "invalid request: not a JSON-RPC 2.0 message"
    else:
        text = "parse error: the line is not JSON"
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=-32700, message=text)))


def _raw_input(exc: Exception) -> str | dict[str, Any] | None:
    """The line (or the JSON object read from it) a transport's ``ValidationError`` was raised for."""
    errors = getattr(exc, "errors", None)
    try:
        found = errors()[0].get("input") if callable(errors) else None
    except Exception:  # noqa: BLE001 - any other exception carries no line
        return None
    return found if isinstance(found, (str, dict)) else None


def is_text(value: str) -> bool:
    """False for text with lone surrogates (which UTF-8 cannot carry)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
