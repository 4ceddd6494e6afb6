"""The MCP server through the SDK's in-memory client: tools, schemas, filters, errors.

Real SQLite indexes in tmp_path and the deterministic RecordingEmbedder; the
end-to-end tests with the real model over stdio and HTTP are in test_mcp_e2e.py.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import RecordingEmbedder, age_files, write
from mcp import Client

from indexer import make_settings, open_index
from indexer.config.settings import Settings
from indexer.errors import ConfigError
from indexer.serve.http import http_security, parse_http
from indexer.serve.mcp import build_server
from indexer.serve.service import IndexService
from indexer.sources.read import read_target
from indexer.watch.watcher import WatchOptions

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def copy_fixture(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root, ignore=shutil.ignore_patterns(".memdex"))
    return root


def indexed(root: Path, embedder: RecordingEmbedder, **options: Any) -> Settings:
    settings = make_settings(root, **options)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    return settings


def with_client(service: IndexService, body: Callable[[Client], Awaitable[Any]]) -> Any:
    server = build_server(service)

    async def main() -> Any:
        async with Client(server) as client:
            return await body(client)

    try:
        return anyio.run(main)
    finally:
        service.close()


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    (content,) = result.content
    text = content.text  # type: ignore[union-attr]
    assert "\n" not in text and text.strip(), text
    assert "Traceback" not in text
    return text


@pytest.fixture
def memory(tmp_path: Path, embedder: RecordingEmbedder) -> IndexService:
    root = copy_fixture("memory", tmp_path)
    return IndexService(indexed(root, embedder), embedder=embedder)


def test_tools_are_listed_with_schemas_and_read_only_hints(memory: IndexService) -> None:
    async def body(client: Client) -> Any:
        return {tool.name: tool for tool in (await client.list_tools()).tools}

    tools = with_client(memory, body)
    assert set(tools) == {"memory_search", "memory_get", "memory_status"}
    for tool in tools.values():
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        assert tool.description and tool.output_schema is not None
    search = tools["memory_search"].input_schema
    assert search["required"] == ["query"]
    assert {"query", "maxResults", "minScore", "kind", "pathPrefix", "after", "before", "mode"} <= set(search["properties"])
    get = tools["memory_get"].input_schema
    assert get["required"] == ["path"] and {"path", "from", "lines", "namespace"} == set(get["properties"])
    hit = tools["memory_search"].output_schema["$defs"]["SearchHit"]["properties"]
    assert {"path", "startLine", "endLine", "score", "snippet", "citation", "heading", "kind", "date", "confidence",
            "namespace", "excerpt"} == set(hit)  # fmt: skip
    assert "namespace" not in tools["memory_search"].output_schema["$defs"]["SearchHit"]["required"]  # PostgreSQL only
    assert "excerpt" not in tools["memory_search"].output_schema["$defs"]["SearchHit"]["required"]  # long lines only
    assert "budgetTokens" in search["properties"]
    assert {"path", "text", "from", "lines", "truncated", "nextFrom", "namespace"} == set(
        tools["memory_get"].output_schema["properties"]
    )
    assert "namespace" not in tools["memory_get"].output_schema["required"]  # another namespace's stored lines only


def test_search_then_get_returns_the_cited_lines(memory: IndexService) -> None:
    async def body(client: Client) -> Any:
        found = await call(client, "memory_search", query="penicillin allergy hives", maxResults=3)
        first = found["results"][0]
        by_citation = await call(client, "memory_get", path=first["citation"])
        by_range = await call(client, "memory_get", path=first["path"], **{"from": first["startLine"]},
                              lines=first["endLine"] - first["startLine"] + 1)  # fmt: skip
        return found, by_citation, by_range

    found, by_citation, by_range = with_client(memory, body)
    assert found["mode"] == "hybrid" and found["model"] == "test/recording" and found["fallback"] is None
    assert 1 <= len(found["results"]) <= 3
    first = found["results"][0]
    assert first["path"] == "MEMORY.md" and first["kind"] == "memory"
    span = f"L{first['startLine']}" + (f"-L{first['endLine']}" if first["endLine"] != first["startLine"] else "")
    assert first["citation"] == f"MEMORY.md#{span}"
    expected = read_target(memory.settings.root, f"MEMORY.md:{first['startLine']}-{first['endLine']}").lines
    assert by_citation["text"] == by_range["text"] == "\n".join(expected)
    assert by_citation["from"] == first["startLine"] and by_citation["lines"] == len(expected)


@pytest.mark.parametrize("intercept", [-50.0, 50.0])
def test_search_says_nothing_relevant_when_no_result_is_confident(
    memory: IndexService, monkeypatch: pytest.MonkeyPatch, intercept: float
) -> None:
    monkeypatch.setattr("indexer.retrieval.confidence.INTERCEPT", intercept)  # every confidence ~0, or ~1

    async def body(client: Client) -> Any:
        return await call(client, "memory_search", query="penicillin allergy hives", maxResults=3)

    found = with_client(memory, body)
    assert found["results"] and all(0.0 <= hit["confidence"] <= 1.0 for hit in found["results"])
    assert found["nothingRelevant"] is (intercept < 0)
    assert (found["note"] is not None and "nothing relevant" in found["note"]) is (intercept < 0)


def test_get_is_bounded_and_pages_on(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    root = tmp_path / "memory"
    write(root, "notes/long.md", "".join(f"line {n}\n" for n in range(1, 451)))
    service = IndexService(indexed(root, embedder), embedder=embedder)

    async def body(client: Client) -> Any:
        first = await call(client, "memory_get", path="notes/long.md")
        second = await call(client, "memory_get", path="notes/long.md", **{"from": first["nextFrom"]})
        last = await call(client, "memory_get", path="notes/long.md", **{"from": 401}, lines=100)
        missing = await call(client, "memory_get", path="notes/never-written.md")
        return first, second, last, missing

    first, second, last, missing = with_client(service, body)
    assert first["lines"] == 200 and first["truncated"] and first["nextFrom"] == 201
    assert first["text"].split("\n")[0] == "line 1" and first["text"].split("\n")[-1] == "line 200"
    assert second["from"] == 201 and second["text"].split("\n")[0] == "line 201" and second["nextFrom"] == 401
    assert last["lines"] == 50 and not last["truncated"] and last["nextFrom"] is None
    assert missing["path"] == "notes/never-written.md" and missing["text"] == "" and missing["lines"] == 0


@pytest.fixture
def crowded(tmp_path: Path, embedder: RecordingEmbedder) -> IndexService:
    """30 notes that say 'walrus' a lot, 8 daily logs that mention it once, a soul and a memory."""
    root = tmp_path / "memory"
    for n in range(30):
        write(root, f"projects/p{n:02}.md", f"# Walrus project {n}\n\nwalrus walrus walrus tusk {n}\n")
    for day in range(1, 9):
        write(root, f"daily/2026-10-{day:02}.md", f"# Day {day}\n\n- saw a walrus at the zoo, day {day}\n")
    write(root, "MEMORY.md", "# Memory\n\n- The walrus is my favourite animal.\n")
    write(root, "SOUL.md", "# Soul\n\nCalm as a walrus.\n")
    age_files(root)
    return IndexService(indexed(root, embedder), embedder=embedder)


@pytest.mark.parametrize("mode", ["keyword", "vector", "hybrid"])
def test_filters_apply_inside_the_candidate_queries(crowded: IndexService, mode: str) -> None:
    async def body(client: Client) -> Any:
        daily = await call(client, "memory_search", query="walrus", kind="daily", maxResults=5, mode=mode)
        kinds = await call(client, "memory_search", query="walrus", kind=["memory", "soul"], maxResults=5, mode=mode)
        prefix = await call(client, "memory_search", query="walrus", pathPrefix="projects/p1", maxResults=20, mode=mode)
        dated = await call(client, "memory_search", query="walrus", after="2026-10-03", before="2026-10-05",
                           maxResults=10, mode=mode)  # fmt: skip
        return daily, kinds, prefix, dated

    daily, kinds, prefix, dated = with_client(crowded, body)
    # The notes outrank the daily logs, so filtering the top 5 afterwards would leave nothing.
    assert [r["kind"] for r in daily["results"]] == ["daily"] * 5
    assert sorted(r["path"] for r in kinds["results"]) == ["MEMORY.md", "SOUL.md"]
    assert sorted(r["path"] for r in prefix["results"]) == [f"projects/p1{n}.md" for n in range(10)]
    assert sorted(r["date"] for r in dated["results"]) == ["2026-10-03", "2026-10-04", "2026-10-05"]


def test_filters_and_the_line_budget_together(crowded: IndexService) -> None:
    """A filtered search fills its line budget from the filtered files only, within the budget."""

    async def body(client: Client) -> Any:
        daily = await call(client, "memory_search", query="walrus", kind="daily", budgetLines=5)
        notes = await call(client, "memory_search", query="walrus tusk", pathPrefix="projects/", budgetLines=7)
        whole = await call(client, "memory_search", query="walrus", kind="daily", budgetLines=0, maxResults=3)
        return daily, notes, whole

    daily, notes, whole = with_client(crowded, body)

    def lines(found: dict[str, Any]) -> int:
        return sum(r["endLine"] - r["startLine"] + 1 for r in found["results"])

    # each daily log's hit is its one content line: five logs fill five lines, and nothing else is read
    assert [r["kind"] for r in daily["results"]] == ["daily"] * 5 and lines(daily) == 5
    assert notes["results"] and all(r["path"].startswith("projects/") for r in notes["results"])
    assert lines(notes) <= 7
    assert len(whole["results"]) == 3 and all(r["kind"] == "daily" for r in whole["results"])
    assert all(r["startLine"] == 1 for r in whole["results"])  # whole chunks: the heading line too


def test_min_score_applies_to_the_final_scores(crowded: IndexService) -> None:
    async def body(client: Client) -> Any:
        everything = await call(client, "memory_search", query="walrus tusk", maxResults=40)
        cut = sorted(r["score"] for r in everything["results"])[len(everything["results"]) // 2]
        above = await call(client, "memory_search", query="walrus tusk", maxResults=40, minScore=cut)
        none = await call(client, "memory_search", query="walrus tusk", minScore=2.0)
        return everything, cut, above, none

    everything, cut, above, none = with_client(crowded, body)
    expected = [r for r in everything["results"] if r["score"] >= cut]
    assert above["results"] == expected and 0 < len(expected) < len(everything["results"])
    assert none["results"] == []


def test_relative_dates(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    from datetime import date, timedelta

    root = tmp_path / "memory"
    today = date.today()
    for back in (0, 3, 10, 40):
        day = today - timedelta(days=back)
        write(root, f"daily/{day.isoformat()}.md", f"# {day}\n\n- otter sighting {back} days ago\n")
    service = IndexService(indexed(root, embedder), embedder=embedder)

    async def body(client: Client) -> Any:
        week = await call(client, "memory_search", query="otter sighting", after="7d", mode="keyword")
        older = await call(client, "memory_search", query="otter sighting", before="1w", mode="keyword")
        return week, older

    week, older = with_client(service, body)
    assert sorted(r["date"] for r in week["results"]) == sorted((today - timedelta(days=b)).isoformat() for b in (0, 3))
    assert sorted(r["date"] for r in older["results"]) == sorted((today - timedelta(days=b)).isoformat() for b in (10, 40))


def test_bad_calls_are_one_line_tool_errors_and_the_server_keeps_answering(memory: IndexService) -> None:
    outside = memory.settings.root.parent / "secret.md"
    outside.write_text("# secret\n", encoding="utf-8")
    (memory.settings.root / "leak.md").symlink_to(outside)

    async def body(client: Client) -> list[str]:
        errors = [
            await error(client, "memory_search"),
            await error(client, "memory_search", query="x", maxResults=0),
            await error(client, "memory_search", query="x", maxResults="many"),
            await error(client, "memory_search", query="x", kind="diary"),
            await error(client, "memory_search", query="x", after="last tuesday"),
            await error(client, "memory_search", query="x", after="2026-11-30", before="2026-11-01"),
            await error(client, "memory_search", query="x", pathPrefix="../elsewhere"),
            await error(client, "memory_search", query="x", mode="psychic"),
            await error(client, "memory_get", path="../secret.md"),
            await error(client, "memory_get", path=str(outside)),
            await error(client, "memory_get", path="leak.md"),
            await error(client, "memory_get", path=".memdex/index.db"),
            await error(client, "memory_get", path="MEMORY.md", **{"from": 0}),
            await error(client, "memory_get", path="MEMORY.md", **{"from": 100000}),
            await error(client, "no_such_tool"),
        ]
        for odd in ('"NEAR(' * 10, "🙂 ?!", "a OR b AND NOT c*", "\u0000"):
            for mode in ("keyword", "vector", "hybrid"):
                assert isinstance((await call(client, "memory_search", query=odd, mode=mode))["results"], list)
        still = await call(client, "memory_search", query="penicillin")
        assert still["results"]
        return errors

    errors = with_client(memory, body)
    assert errors[0].startswith("memory_search: invalid arguments: query")
    assert "maxResults" in errors[1] and "maxResults" in errors[2]
    assert "diary" in errors[3] or "kind" in errors[3]
    assert "last tuesday" in errors[4] and "later than" in errors[5] and "inside the memory root" in errors[6]
    assert "outside the memory root" in errors[8] and "outside the memory root" in errors[9]
    assert "symlink leads outside" in errors[10] and "hidden files and folders are not memory files" in errors[11]
    assert "from: Input should be greater than or equal to 1" in errors[12] and "has only" in errors[13]
    assert "no_such_tool" in errors[14]


def test_an_empty_query_is_a_one_line_tool_error(memory: IndexService) -> None:
    async def body(client: Client) -> list[str]:
        return [await error(client, "memory_search", query=query) for query in ("", "   ", "\n\t")]

    for message in with_client(memory, body):
        assert message == "memory_search: the query is empty: say what to search for", message


def test_a_bad_kind_is_one_short_line_naming_the_allowed_kinds(memory: IndexService) -> None:
    async def body(client: Client) -> list[str]:
        return [await error(client, "memory_search", query="x", kind=kind) for kind in ("diary", ["daily", "diary"], 5)]

    one, in_list, number = with_client(memory, body)
    assert one == "memory_search: invalid arguments: kind: 'diary' is not one of 'soul', 'memory', 'daily', 'note' or 'session'"
    assert in_list.endswith("kind.1: 'diary' is not one of 'soul', 'memory', 'daily', 'note' or 'session'"), in_list
    assert number.endswith("kind: 5 is not one of 'soul', 'memory', 'daily', 'note' or 'session'"), number
    assert all("list[" not in text and "literal[" not in text and text.count(";") == 0 for text in (one, in_list, number))


def test_tool_descriptions_are_dedented_and_arguments_have_titles(memory: IndexService) -> None:
    async def body(client: Client) -> Any:
        return {tool.name: tool for tool in (await client.list_tools()).tools}

    tools = with_client(memory, body)
    for tool in tools.values():
        assert tool.description and not any(line.startswith(" ") for line in tool.description.splitlines()), tool.description
    properties = tools["memory_search"].input_schema["properties"]
    titles = {name: properties[name]["title"] for name in ("maxResults", "budgetLines", "minScore", "pathPrefix", "query")}
    assert titles == {"maxResults": "Max results", "budgetLines": "Budget lines", "minScore": "Min score",
                      "pathPrefix": "Path prefix", "query": "Query"}  # fmt: skip


def test_status_last_sync_is_iso_8601_with_its_offset(memory: IndexService) -> None:
    async def body(client: Client) -> Any:
        return await call(client, "memory_status")

    status = with_client(memory, body)
    synced = datetime.fromisoformat(status["last_sync"])
    assert synced.utcoffset() is not None and abs(synced.timestamp() - time.time()) < 3600


def test_search_without_an_index_is_a_tool_error_and_status_says_so(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    root = tmp_path / "memory"
    write(root, "MEMORY.md", "# Memory\n")
    service = IndexService(make_settings(root), embedder=embedder)

    async def body(client: Client) -> Any:
        return await error(client, "memory_search", query="x"), await call(client, "memory_status")

    message, status = with_client(service, body)
    assert "no index" in message and "memdex index" in message
    assert status["indexed"] is False and "no index" in status["error"]
    assert status["server"]["read_only"] is True and status["server"]["writer"] == "off"


def test_openclaw_workspace_kinds_dates_and_a_date_filter(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    root = copy_fixture("openclaw", tmp_path)
    service = IndexService(indexed(root, embedder), embedder=embedder)
    with open_index(service.settings) as index:
        kinds = {path: (kind, day) for path, (kind, day, _) in index.store.file_descriptions().items()}
    assert kinds["memory.md"] == ("memory", None)
    assert kinds["SOUL.md"] == ("soul", None)
    assert kinds["memory/2026-11-28.md"] == ("daily", "2026-11-28")
    assert kinds["memory/2026-11-30.md"] == ("daily", "2026-11-30")
    assert kinds["memory/important/passport.md"] == ("note", None)
    assert {kinds[name][0] for name in ("AGENTS.md", "USER.md", "IDENTITY.md", "TOOLS.md")} == {"note"}

    async def body(client: Client) -> Any:
        on_day = await call(client, "memory_search", query="espresso machine gasket", after="2026-11-30", before="2026-11-30")
        logs = await call(client, "memory_search", query="espresso machine gasket", kind="daily")
        return on_day, logs

    on_day, logs = with_client(service, body)
    assert [r["path"] for r in on_day["results"]] == ["memory/2026-11-30.md"]
    assert sorted(r["path"] for r in logs["results"]) == ["memory/2026-11-28.md", "memory/2026-11-30.md"]


def wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_watch_indexes_an_edit_while_serving(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    root = copy_fixture("openclaw", tmp_path)
    settings = make_settings(root)
    service = IndexService(settings, watch=True, watch_options=WatchOptions(debounce=0.05), embedder=embedder)
    service.start(warm_up=False)

    async def body(client: Client) -> Any:
        async def state() -> dict[str, Any]:
            return (await call(client, "memory_status"))["server"]

        deadline = time.monotonic() + 30
        while (await state())["writer"] != "watching":
            assert time.monotonic() < deadline, "the watcher did not start"
            await anyio.sleep(0.02)
        write(root, "memory/2026-12-01.md", "# 2026-12-01\n\n- Adopted a hedgehog called Quillon.\n")
        while not (await call(client, "memory_search", query="Quillon hedgehog", mode="keyword"))["results"]:
            assert time.monotonic() < deadline, "the edit never became searchable"
            await anyio.sleep(0.02)
        found = await call(client, "memory_search", query="Quillon hedgehog", mode="keyword")
        return found, await call(client, "memory_status")

    found, status = with_client(service, body)
    assert found["results"][0]["path"] == "memory/2026-12-01.md" and found["results"][0]["date"] == "2026-12-01"
    assert status["server"]["read_only"] is False and status["watcher"] is not None


def test_watch_serves_reads_only_while_another_process_writes(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    root = copy_fixture("openclaw", tmp_path)
    settings = indexed(root, embedder)
    other = open_index(settings, write=True, embedder=embedder)  # holds the writer lock
    other.__enter__()
    service = IndexService(settings, watch=True, watch_options=WatchOptions(debounce=0.05), embedder=embedder)
    service.start(warm_up=False)
    try:

        async def body(client: Client) -> Any:
            deadline = time.monotonic() + 30
            while (status := await call(client, "memory_status"))["server"]["writer"] != "read-only":
                assert time.monotonic() < deadline
                await anyio.sleep(0.02)
            found = await call(client, "memory_search", query="passport expires", mode="keyword")
            other.__exit__(None, None, None)  # the other writer goes away: this server takes over
            while (await call(client, "memory_status"))["server"]["writer"] != "watching":
                assert time.monotonic() < deadline, "the server did not take over as the writer"
                await anyio.sleep(0.05)
            return status, found

        status, found = with_client(service, body)
    finally:
        other.__exit__(None, None, None)
    assert status["server"]["read_only"] is True and "reads only" in status["server"]["note"]
    assert "pid" in status["server"]["note"]
    assert found["results"][0]["path"] == "memory/important/passport.md"


def test_http_address_parsing_and_security() -> None:
    assert parse_http("8765") == ("127.0.0.1", 8765)
    assert parse_http("localhost:9000") == ("localhost", 9000)
    assert parse_http("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ConfigError):
        parse_http("localhost:http")
    with pytest.raises(ConfigError):
        parse_http("127.0.0.1:70000")
    loopback = http_security("127.0.0.1")
    assert loopback.enable_dns_rebinding_protection
    assert "127.0.0.1:*" in loopback.allowed_hosts and "http://evil.example" not in loopback.allowed_origins
    lan = http_security("192.168.1.5", allowed_origins=("https://app.example",))
    assert "192.168.1.5:*" in lan.allowed_hosts and "https://app.example" in lan.allowed_origins
    anywhere = http_security("0.0.0.0", allowed_hosts=("memory.lan",))
    assert "memory.lan:*" in anywhere.allowed_hosts and "0.0.0.0:*" not in anywhere.allowed_hosts


def test_get_serves_only_what_memdex_indexes(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    """memory_get keeps get's rules: nothing over the file-size limit, "~user" paths are
    plain names (no home-folder lookup, no internal error), and a bad path prefix in a
    search is a one-line tool error."""
    root = tmp_path / "memory"
    write(root, "MEMORY.md", "# Memory\n\n- small\n")
    write(root, "big.md", "# Big\n\n" + "a long line of text\n" * 200)
    write(root, "~nosuchuser/note.md", "# Tilde\n\n- found\n")
    service = IndexService(indexed(root, embedder, max_file_bytes=1000), embedder=embedder)

    async def body(client: Client) -> Any:
        big = await error(client, "memory_get", path="big.md")
        tilde = await call(client, "memory_get", path="~nosuchuser/note.md")
        bad_prefix = await error(client, "memory_search", query="small", pathPrefix="\udcff")
        return big, tilde, bad_prefix

    big, tilde, bad_prefix = with_client(service, body)
    assert "limit" in big and "internal error" not in big
    assert tilde["text"] == "# Tilde\n\n- found"
    assert "UTF-8" in bad_prefix and "internal error" not in bad_prefix


def test_a_long_line_comes_as_its_best_part_within_the_token_budget(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    root = tmp_path / "chats"
    long = " ".join("the zeppelin hangar" if i == 700 else f"filler{i}" for i in range(1500))
    write(root, "chat.md", f"# Chat\n\n- user: where is it kept?\n- assistant: {long}\n")
    service = IndexService(indexed(root, embedder), embedder=embedder)

    async def body(client: Client) -> Any:
        default = await call(client, "memory_search", query="zeppelin hangar", mode="keyword")
        lines_only = await call(client, "memory_search", query="zeppelin hangar", mode="keyword", budgetTokens=0)
        return default, lines_only

    default, lines_only = with_client(service, body)
    [hit] = [r for r in default["results"] if r["startLine"] <= 4 <= r["endLine"]]
    assert "zeppelin hangar" in hit["excerpt"] and len(hit["excerpt"]) < len(long) // 2  # a part, within 1,500 tokens
    assert hit["citation"].startswith("chat.md#L")  # the citation: whole lines
    assert all("excerpt" not in r for r in lines_only["results"])  # lines alone: the lines are read whole
