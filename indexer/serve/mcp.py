"""``memdex mcp``: the memory as Model Context Protocol tools (official ``mcp`` SDK).

Tools follow OpenClaw's memory-core tools, so an OpenClaw agent's prompts work
unchanged: ``memory_search``, ``memory_get`` and ``memory_status``. They are
thin wrappers over the Python API (``api.py``); schemas come from the type
hints, and all three carry ``readOnlyHint``. A failure of any kind comes back
as a tool error with one line of text; the server keeps answering.

stdio (the default) keeps stdout for the protocol only; logs go to stderr.
``--http`` serves streamable HTTP, on loopback unless told otherwise, with
Host and Origin checked against DNS rebinding.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError
from typing_extensions import NotRequired, TypedDict  # pydantic needs this one before Python 3.12

from indexer import __version__
from indexer.errors import ConfigError, IndexerError, one_line
from indexer.retrieval.confidence import nothing_relevant
from indexer.retrieval.filters import corpus_kinds, make_filters
from indexer.retrieval.options import search_options
from indexer.retrieval.search import SearchResult
from indexer.sources.read import read_excerpt
from indexer.sources.registry import is_source_file

from .http import serve_http
from .logs import log_like_memdex
from .service import IndexService
from .stdio import serve_stdio

log = logging.getLogger(__name__)

SERVER_NAME = "memdex"
DEFAULT_GET_LINES = 200
MAX_GET_LINES = 2000
MAX_RESULTS = 100
CITATION = re.compile(r"^(?P<path>.+?)#L(?P<start>\d+)(?:-L?(?P<end>\d+))?$")
# A hit from another namespace (PostgreSQL) is cited as path#Lstart-Lend@namespace.
FOREIGN_CITATION = re.compile(r"^(?P<cite>.+?#L\d+(?:-L?\d+)?)@(?P<namespace>.+)$")
SPAN = re.compile(r"^(?P<path>.+?):(?P<start>\d+)(?:-(?P<end>\d+))?$")

INSTRUCTIONS = (
    "Long-term memory of this assistant, kept as Markdown files (and past session transcripts, when "
    "configured). Before answering anything about prior work, decisions, dates, people, preferences or "
    "to-dos, call memory_search; cite what you use as path#Lstart-Lend (the result's citation); call "
    "memory_get with that citation to read more lines."
)
# MCP methods the SDK would serve (empty) and advertise; memdex has only tools, and a host
# that sees the capabilities adds a tool per empty list (OpenClaw adds four).
UNSERVED_METHODS = (
    "prompts/list", "prompts/get", "resources/list", "resources/read", "resources/templates/list",
    "resources/subscribe", "resources/unsubscribe",
)  # fmt: skip

NOTHING_RELEVANT_NOTE = (
    "nothing relevant: no result reaches confidence 0.5, so memory probably holds nothing about this; "
    "do not answer from these results as if they were"
)
PREPARING = "the embedding model is still being prepared (once per model); keyword results only until it is ready"
Kind = Literal["soul", "memory", "daily", "note", "session"]
Corpus = Literal["memory", "sessions", "all"]
Mode = Literal["hybrid", "keyword", "vector"]
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


class SearchHit(TypedDict):
    path: str
    startLine: int
    endLine: int
    score: float
    snippet: str
    citation: str
    heading: str
    kind: str
    date: str | None
    confidence: float | None  # 0-1 (hybrid mode); below 0.5: probably not about the query
    namespace: NotRequired[str]  # PostgreSQL: the memory root the hit is from
    excerpt: NotRequired[str]  # a line too long for the token budget: its best part (the citation is the whole line)


class SearchOutput(TypedDict):
    results: list[SearchHit]
    model: str | None
    mode: str
    fallback: str | None
    degraded: str | None  # why this answer is keyword-only although another mode was asked for
    nothingRelevant: bool | None  # no result reaches confidence 0.5 (None: no confidence, keyword/vector mode)
    note: str | None  # says so in words when nothingRelevant


GetOutput = TypedDict(
    "GetOutput",
    {"path": str, "text": str, "from": int, "lines": int, "truncated": bool, "nextFrom": int | None,
     "namespace": NotRequired[str]},
)


GET_SIGNATURE = inspect.Signature(
    [
        inspect.Parameter("path", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[
            str, Field(description="A memory file's path relative to the memory root, as in a search result; "
                       "'path#L3-L9' and 'path:3-9' work too.")]),  # fmt: skip
        inspect.Parameter("from_", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            int | None, Field(alias="from", ge=1, description="First line to read (1-based, default 1).")]),  # fmt: skip
        inspect.Parameter("lines", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            int | None, Field(ge=1, le=MAX_GET_LINES, description=f"How many lines (default {DEFAULT_GET_LINES}).")]),  # fmt: skip
        inspect.Parameter("namespace", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            str | None, Field(description="A search hit's namespace when it is another memory root's "
                              "(PostgreSQL): its stored lines are read. A citation ending in @namespace says it too.")]),  # fmt: skip
    ],
    return_annotation=GetOutput,
)


class _Server(MCPServer):
    """MCPServer whose tool errors are always one line (argument validation included), and
    which serves (and so advertises) tools only: no prompts, no resources."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        handlers = self._lowlevel_server._request_handlers  # capabilities are derived from these
        for method in UNSERVED_METHODS:
            handlers.pop(method, None)

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            raise ToolError(_one_line_error(name, exc)) from exc.__cause__


def _one_line_error(name: str, exc: ToolError) -> str:
    cause = exc.__cause__
    if isinstance(cause, ValidationError):
        return one_line(f"{name}: invalid arguments: " + "; ".join(_problems(cause)))
    text = str(exc)
    prefix = f"Error executing tool {name}: "
    return one_line(f"{name}: {text[len(prefix):]}" if text.startswith(prefix) else text)


def _problems(error: ValidationError) -> list[str]:
    """One phrase per argument: a value outside a fixed set (``kind``, ``mode``, even inside a
    union such as one kind or a list of kinds) names the allowed values instead of every
    union member's complaint."""
    problems: dict[str, str] = {}
    for item in error.errors():
        argument = str(item["loc"][0]) if item["loc"] else "arguments"
        if item["type"] == "literal_error":
            where = ".".join(str(part) for part in item["loc"] if not str(part).startswith(("list[", "literal[")))
            problems[argument] = f"{where}: {item['input']!r} is not one of {item['ctx']['expected']}"
        elif argument not in problems:
            problems[argument] = f"{'.'.join(str(part) for part in item['loc']) or 'arguments'}: {item['msg']}"
    return list(problems.values())


def build_server(service: IndexService) -> MCPServer:
    """The MCP server over ``service``; its lifespan starts the service and closes it."""
    settings = service.settings
    server = _Server(
        SERVER_NAME, version=__version__, instructions=INSTRUCTIONS, log_level="WARNING", lifespan=_lifespan(service)
    )

    def guarded(run: Any) -> Any:
        try:
            return run()
        except IndexerError as exc:
            raise ToolError(one_line(str(exc))) from None
        except Exception as exc:  # noqa: BLE001 - a bad call must never take the server down
            log.warning("internal error: %s", one_line(repr(exc)))
            log.debug("internal error", exc_info=True)
            raise ToolError(f"internal error: {one_line(str(exc)) or type(exc).__name__}") from None

    def memory_search(
        query: Annotated[str, Field(description="What to recall, in natural language or keywords.")],
        maxResults: Annotated[int | None, Field(ge=1, le=100, title="Max results", description="At most this "
                              "many results (default: as many as the line budget holds).")] = None,  # fmt: skip
        budgetLines: Annotated[int | None, Field(ge=0, le=10000, title="Budget lines", description="Lines of "
                               "memory to return, filled in rank order with adjacent hits merged (default 50; "
                               "0: whole chunks, no budget).")] = None,  # fmt: skip
        budgetTokens: Annotated[int | None, Field(ge=0, le=1000000, title="Budget tokens", description="Also "
                                "stay within ~this many tokens, whichever fills first (default 2000; a line too "
                                "long for it comes as its best part, in 'excerpt'; 0: no token bound).")] = None,  # fmt: skip
        minScore: Annotated[float | None, Field(title="Min score", description="Drop results scoring below this.")] = None,
        kind: Annotated[Kind | list[Kind] | None, Field(description="Only these kinds of file.")] = None,
        corpus: Annotated[Corpus | None, Field(description="What to search, as OpenClaw's memory search: "
                          "'memory' (the Markdown files), 'sessions' (past session transcripts) or 'all' "
                          "(default).")] = None,  # fmt: skip
        pathPrefix: Annotated[str | None, Field(title="Path prefix", description="Only files whose path starts "
                              "with this, e.g. 'memory/' or 'projects/'.")] = None,  # fmt: skip
        after: Annotated[str | None, Field(description="Only dated logs on or after this day: "
                         "YYYY-MM-DD, or a span back from today like 7d, 2w, 3m.")] = None,  # fmt: skip
        before: Annotated[str | None, Field(description="Only dated logs on or before this day.")] = None,
        mode: Annotated[Mode | None, Field(description="Default: the search_mode setting, hybrid.")] = None,
    ) -> SearchOutput:
        """Search long-term memory (MEMORY.md, daily logs, notes, session transcripts) and return the best matching
        line ranges with a snippet and a citation (path#Lstart-Lend). Use it before answering
        questions about prior work, decisions, dates, people or preferences."""

        def run() -> SearchOutput:
            filters = make_filters(
                kinds=corpus_kinds(corpus, [kind] if isinstance(kind, str) else kind),
                path_prefix=pathPrefix, after=after, before=before, min_score=minScore,
            )  # fmt: skip
            options = search_options(
                settings, mode=mode, limit=maxResults, budget_lines=budgetLines, budget_tokens=budgetTokens
            )
            chosen, degraded = options.mode, None
            if chosen != "keyword" and service.preparing:  # answer now rather than wait for the model
                chosen, degraded = "keyword", PREPARING
            keywords = {**options.keywords(), "mode": chosen}
            with service.reader() as index:
                results = index.search(query, filters=filters, **keywords)
                info = index.search_info()
                if index.degraded:  # a remote embedding endpoint is down: keyword results, and the answer says so
                    chosen, degraded = "keyword", index.degraded
            fallback = "numpy" if chosen != "keyword" and info["vector_search"] == "numpy" else None
            hits = [_hit(r, settings.namespace_name) for r in results]
            nothing = nothing_relevant([r.confidence for r in results])
            return {
                "results": hits, "model": info["model"], "mode": chosen, "fallback": fallback, "degraded": degraded,
                "nothingRelevant": nothing, "note": NOTHING_RELEVANT_NOTE if nothing else None,
            }  # fmt: skip

        return guarded(run)  # type: ignore[no-any-return]

    _add_tool(server, memory_search, "memory_search")

    def memory_get(path: str, lines: int | None = None, namespace: str | None = None, **aliased: Any) -> GetOutput:
        """Read lines of a memory file (Markdown under the memory root), e.g. around a search
        result. Returns at most `lines` lines from `from`; `nextFrom` continues a long file."""

        def run() -> GetOutput:
            target, foreign = _split_namespace(path, namespace)
            rel, start, count = _get_target(target, aliased.get("from"), lines)
            if foreign is not None and foreign != settings.namespace_name:
                return _stored_excerpt(service, foreign, rel, start, count)
            excerpt = read_excerpt(
                settings.root, rel, start=start, count=count, max_bytes=settings.max_file_bytes,
                sessions=settings.session_labels, session_tools=settings.session_tools,
                session_max_bytes=service.session_bound(),
            )  # fmt: skip
            if not excerpt.found:
                return {"path": excerpt.path, "text": "", "from": start, "lines": 0, "truncated": False, "nextFrom": None}
            return {
                "path": excerpt.path, "text": "\n".join(excerpt.lines), "from": start, "lines": len(excerpt.lines),
                "truncated": excerpt.next_line is not None, "nextFrom": excerpt.next_line,
            }  # fmt: skip

        return guarded(run)  # type: ignore[no-any-return]

    # OpenClaw's argument is called "from", a Python keyword: the schema names it through an
    # alias, and the SDK passes it by that name, which **aliased receives.
    memory_get.__signature__ = GET_SIGNATURE  # type: ignore[attr-defined]
    _add_tool(server, memory_get, "memory_get")

    def memory_status() -> dict[str, Any]:
        """What is indexed (files and chunks by kind), with which model, when it last synced,
        and whether this server keeps the index current (writer) or serves reads only."""

        def run() -> dict[str, Any]:
            state = service.server_state()
            try:
                with service.reader() as index:
                    info = index.status()
            except IndexerError as exc:
                return {"root": str(settings.root), "index_path": settings.index_location,
                        "indexed": False, "error": one_line(str(exc)), "server": state}  # fmt: skip
            return {**_with_iso_times(info), "indexed": True, "server": state}

        return guarded(run)  # type: ignore[no-any-return]

    _add_tool(server, memory_status, "memory_status")
    log_like_memdex()  # after MCPServer(), which points the root logger at a Rich handler
    return server


def _add_tool(server: MCPServer, tool: Any, name: str) -> None:
    """A read-only tool whose description is its docstring without the source's indentation."""
    description = inspect.cleandoc(tool.__doc__ or "")
    server.add_tool(tool, name=name, description=description, annotations=READ_ONLY, structured_output=True)


def iso_time(epoch: float | None) -> str | None:
    """ISO 8601 in local time with its offset (as ``memdex status`` prints it); None stays None."""
    return None if epoch is None else datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def _with_iso_times(info: dict[str, Any]) -> dict[str, Any]:
    """``status()`` with its epoch times (``last_sync``, the watcher's) as ISO 8601: MCP clients read text."""
    shown = {**info, "last_sync": iso_time(info.get("last_sync"))}
    watcher = info.get("watcher")
    if isinstance(watcher, dict):
        shown["watcher"] = {**watcher, **{key: iso_time(watcher.get(key)) for key in ("started_at", "last_sync")
                                          if key in watcher}}  # fmt: skip
    return shown


def _lifespan(service: IndexService) -> Any:
    """Start the watcher and the model load once the transport is up (in stdio mode, after
    the SDK has claimed stdout, so nothing a library prints can reach the protocol)."""

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[dict[str, Any]]:
        service.start()
        try:
            yield {}
        finally:
            await anyio.to_thread.run_sync(service.close)

    return lifespan


def _hit(result: SearchResult, own_namespace: str) -> SearchHit:
    span = f"#L{result.start_line}" if result.start_line == result.end_line else f"#L{result.start_line}-L{result.end_line}"
    citation = result.path + span
    if result.namespace is not None and result.namespace != own_namespace:
        citation += f"@{result.namespace}"  # another root's hit: memory_get reads its stored lines
    hit: SearchHit = {
        "path": result.path, "startLine": result.start_line, "endLine": result.end_line, "score": result.score,
        "snippet": result.snippet, "citation": citation, "heading": result.heading,
        "kind": result.kind, "date": result.date, "confidence": result.confidence,
    }  # fmt: skip
    if result.namespace is not None:
        hit["namespace"] = result.namespace
    if result.excerpt is not None:
        hit["excerpt"] = result.excerpt
    return hit


def _split_namespace(path: str, namespace: str | None) -> tuple[str, str | None]:
    """``path#L3-L9@ns`` -> (``path#L3-L9``, ``ns``); an explicit ``namespace`` wins."""
    found = FOREIGN_CITATION.match(path)
    if found is None:
        return path, namespace
    return found["cite"], namespace or found["namespace"]


def _stored_excerpt(service: IndexService, namespace: str, rel: str, start: int, count: int) -> GetOutput:
    """Lines of another namespace's file from the text the server stores (its Markdown is elsewhere)."""
    if not service.settings.database_url:
        raise ConfigError("a namespace other than this root's needs a PostgreSQL index")
    with service.reader() as index:
        path, _, total, lines = index.get_stored(namespace, rel)
    shown = lines[start - 1 : start - 1 + count]
    following = start + len(shown)
    more = following <= total
    return {
        "path": path, "text": "\n".join(shown), "from": start, "lines": len(shown), "truncated": more,
        "nextFrom": following if more else None, "namespace": namespace,
    }  # fmt: skip


def _get_target(path: str, start: int | None, count: int | None) -> tuple[str, int, int]:
    """``path``, ``path#L3-L9`` or ``path:3-9``: explicit ``from``/``lines`` win over the span."""
    found = CITATION.match(path) or (SPAN.match(path) if not is_source_file(path) else None)
    if found:
        path = found["path"]
        first = int(found["start"])
        last = int(found["end"]) if found["end"] else first
        if last < first:
            raise ConfigError(f"{found.string}: the range ends before it starts")
        start = start or first
        count = count or min(last - first + 1, MAX_GET_LINES)
    return path, start or 1, count or DEFAULT_GET_LINES


def serve(
    service: IndexService,
    *,
    http: tuple[str, int] | None = None,
    allowed_origins: tuple[str, ...] = (),
    allowed_hosts: tuple[str, ...] = (),
    on_listening: Any = None,
) -> None:
    """Run the server until the client goes away (stdio) or the process is stopped (HTTP)."""
    server = build_server(service)
    try:
        if http is None:
            anyio.run(serve_stdio, server)
            return
        serve_http(server, http, allowed_origins=allowed_origins, allowed_hosts=allowed_hosts, on_listening=on_listening)
    finally:
        service.close()
