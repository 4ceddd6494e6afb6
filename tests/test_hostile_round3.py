"""Hostile input, round 3 (the "Trust" issue): what a handed-over memory folder,
a planted link or a hostile client must never make memdex do.

1. another program's SQLite database at memdex's own index path (as a file or
   as a link to it) is refused and left byte-identical; memdex writes none of
   its own files (folder, lock, index, cache, temporaries, sidecars, watcher
   state) through a symbolic link;
2. a ``*.md`` link is followed only to a file memdex would index itself;
3. ``memdex init`` never writes through a link, dangling or not;
4. a deeply nested config.toml is a one-line error;
5. a config file that is a device, a FIFO or huge is a one-line error, never a
   hang or a full memory (and a FIFO named like a note is skipped);
6. a cached ONNX export whose weights were replaced is not loaded;
7. a lone surrogate in an MCP request or a CLI argument gets a clear answer.
"""

from __future__ import annotations

import os
from pathlib import Path

import apsw
import pytest
from click.testing import CliRunner
from conftest import write
from test_cli import assert_one_line_error, ok_json, run, runner  # noqa: F401
from test_hardening_data import COMMANDS, fake_model, folder_listing  # noqa: F401

from indexer import make_settings, open_index
from indexer.errors import ConfigError, NotAnIndex
from indexer.indexing.lock import acquire_lock
from indexer.watch.state import StatusFile


@pytest.fixture
def memory(root: Path) -> Path:
    write(root, "MEMORY.md", "# Facts\n\nThe tomatoes need staking in June.\n")
    return root


def foreign_database(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = apsw.Connection(str(path))
    connection.execute("CREATE TABLE contacts(name); INSERT INTO contacts VALUES ('Ada')")
    connection.close()
    return path.read_bytes()


# -- 1. memdex's own files: only its own databases, never through a link ------------------------


@pytest.mark.parametrize("kind", ["file", "link"])
@pytest.mark.parametrize("name", ["index.db", "embeddings.db"])
def test_a_foreign_database_at_the_default_place_is_refused_and_byte_identical(
    runner: CliRunner, memory: Path, tmp_path: Path, fake_model, kind: str, name: str
) -> None:
    if name == "embeddings.db":  # an index is there (check reads the cache only then)
        ok_json(run(runner, "--root", memory, "index", "--json"))
        (memory / ".memdex" / name).unlink()
    elsewhere = tmp_path / "elsewhere"
    theirs = elsewhere / "app.db" if kind == "link" else memory / ".memdex" / name
    before = foreign_database(theirs)
    if kind == "link":
        (memory / ".memdex").mkdir(exist_ok=True)
        os.symlink(theirs, memory / ".memdex" / name)
    for command in COMMANDS:
        line = assert_one_line_error(run(runner, "--root", memory, *command))
        assert name in line, line
        assert ("symbolic link" if kind == "link" else "another program's database") in line, line
    assert theirs.read_bytes() == before
    if kind == "link":
        assert folder_listing(elsewhere) == ["app.db"]  # no -wal, -shm or .corrupt-* beside it
    assert not list((memory / ".memdex").glob(f"{name}.corrupt-*"))


def test_a_stamped_foreign_database_at_the_default_place_is_refused(runner: CliRunner, memory: Path, fake_model) -> None:
    theirs = memory / ".memdex" / "index.db"
    foreign_database(theirs)
    connection = apsw.Connection(str(theirs))
    connection.pragma("application_id", 12345)
    connection.close()
    before = theirs.read_bytes()
    assert_one_line_error(run(runner, "--root", memory, "index"), contains="another program's database")
    assert theirs.read_bytes() == before


def test_a_blank_or_damaged_index_at_the_default_place_is_still_memdexs(runner: CliRunner, memory: Path, fake_model) -> None:
    """The foreign-database rule does not cost recovery: a blank SQLite file is
    replaced, a damaged one of memdex's is moved aside and rebuilt."""
    index = memory / ".memdex" / "index.db"
    index.parent.mkdir()
    apsw.Connection(str(index)).execute("CREATE TABLE x(a); DROP TABLE x").close()  # valid, no tables
    assert index.stat().st_size > 0
    assert ok_json(run(runner, "--root", memory, "index", "--json"))["reindexed"] == 1
    with open(index, "r+b") as handle:
        handle.write(b"not a database header" * 5)
    ok_json(run(runner, "--root", memory, "index", "--json"))
    assert len(list(index.parent.glob("index.db.corrupt-*"))) == 1
    hits = ok_json(run(runner, "--root", memory, "search", "--mode", "keyword", "tomatoes", "--json"))
    assert [hit["path"] for hit in hits] == ["MEMORY.md"]


@pytest.mark.parametrize(
    "planted",
    [".memdex", ".memdex/write.lock", ".memdex/embeddings.db", ".memdex/index.db-wal", ".memdex/index.db-shm",
     ".memdex/index.db.rebuild", ".memdex/index.db.creating", ".memdex/embeddings.db-journal"],
)  # fmt: skip
def test_no_file_of_memdexs_is_written_through_a_link(
    runner: CliRunner, memory: Path, tmp_path: Path, fake_model, planted: str
) -> None:
    """A link in place of the folder, the lock, the cache, a sidecar or a
    temporary (dangling or to a precious file): one line, nothing outside changes."""
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = write(outside, "precious.txt", "keep me\n")
    target = outside if planted == ".memdex" else precious
    (memory / ".memdex").mkdir(exist_ok=planted != ".memdex")
    if planted == ".memdex":
        (memory / ".memdex").rmdir()
    os.symlink(target, memory / planted)
    for command in (["index"], ["rebuild"]):
        assert_one_line_error(run(runner, "--root", memory, *command), contains="symbolic link")
    assert_one_line_error(run(runner, "--root", memory, "search", "tomatoes"))  # a reader writes nothing either
    assert folder_listing(outside) == ["precious.txt"] and precious.read_text() == "keep me\n"
    dangling = tmp_path / "nowhere" / "made.txt"
    (memory / planted).unlink()
    os.symlink(dangling, memory / planted)
    assert_one_line_error(run(runner, "--root", memory, "index"), contains="symbolic link")
    assert not dangling.parent.exists()


def test_the_lock_and_the_watcher_state_are_never_written_through_a_link(tmp_path: Path) -> None:
    precious = write(tmp_path, "precious.txt", "keep me\n")
    folder = tmp_path / "own"
    folder.mkdir()
    os.symlink(precious, folder / "write.lock")
    with pytest.raises(ConfigError, match="symbolic link"):
        acquire_lock(folder / "write.lock")
    os.symlink(precious, folder / f"watcher.json.{os.getpid()}.tmp")  # the state file's temporary name
    status = StatusFile(folder / "watcher.json")
    status.write(pid=1)
    status.remove()
    assert precious.read_text() == "keep me\n"
    assert not (folder / f"watcher.json.{os.getpid()}.tmp").is_symlink()
    linked = tmp_path / "linked"
    os.symlink(folder, linked)
    status = StatusFile(linked / "watcher.json")  # a linked folder is not followed either
    status.write(pid=2)
    status.remove()
    assert not (folder / "watcher.json").exists()


def test_an_explicit_db_through_a_link_is_the_file_it_names(memory: Path, tmp_path: Path) -> None:
    """--db is the user's own choice: a link there is resolved once, to the file
    it names, and that file must itself be memdex's or new."""
    real = tmp_path / "real" / "index.db"
    real.parent.mkdir()
    os.symlink(real, tmp_path / "link.db")
    settings = make_settings(memory, tmp_path / "link.db")
    assert settings.index_path == real
    from conftest import RecordingEmbedder

    with open_index(settings, write=True, embedder=RecordingEmbedder()) as index:
        index.sync()
    assert real.is_file() and not real.is_symlink()
    foreign_database(tmp_path / "real" / "other.db")
    with pytest.raises(NotAnIndex):
        with open_index(make_settings(memory, tmp_path / "real" / "other.db"), write=True, embedder=RecordingEmbedder()):
            pass


# -- 3. init never writes through a link --------------------------------------------------------


@pytest.mark.parametrize("planted", ["SOUL.md", "daily", "daily/TEMPLATE.md.txt"])
def test_init_leaves_links_alone_dangling_or_not(runner: CliRunner, tmp_path: Path, planted: str) -> None:
    folder = tmp_path / "mem"
    folder.mkdir()
    (folder / "daily").mkdir(exist_ok=planted == "daily/TEMPLATE.md.txt")
    if planted == "daily":
        (folder / "daily").rmdir()
    outside = tmp_path / "outside"
    dangling = outside / "created-by-memdex"
    os.symlink(dangling, folder / planted)
    found = ok_json(run(runner, "init", folder, "--json"))
    assert not outside.exists()  # nothing created through the dangling link
    assert planted in found["symlinks"] or any(name.startswith(planted + "/") for name in found["symlinks"])
    assert (folder / planted).is_symlink()
    assert "MEMORY.md" in found["created"]
    outside.mkdir()
    existing = write(outside, "created-by-memdex", "theirs\n") if planted != "daily" else None
    plain = run(runner, "init", folder)
    assert plain.exit_code == 0 and "symbolic link" in plain.stdout
    if existing is not None:
        assert existing.read_text() == "theirs\n"
    assert folder_listing(outside) == ([] if existing is None else ["created-by-memdex"])


# -- 2. a *.md link is followed only to a file memdex would index itself ------------------------

LINKS = {  # link name -> (target, the reason a scan and get give)
    "env.md": (".env", "hidden"),
    "hidden.md": (".private/diary.md", "hidden"),
    "key.md": ("keys/id_ed25519", "not a memory file"),
    "config.md": (".memdex/config.toml", "hidden"),
}


def plant_links(root: Path) -> None:
    write(root, ".env", "API_KEY=sk-live-SECRET\n")
    write(root, ".private/diary.md", "# Diary\n\nSECRET diary words\n")
    write(root, "keys/id_ed25519", "-----BEGIN SECRET KEY-----\n")
    write(root, ".memdex/config.toml", "search_limit = 8  # SECRET\n")
    write(root, "notes/garden.md", "# Garden\n\nsow parsnips in March\n")
    for name, (target, _) in LINKS.items():
        os.symlink(target, root / name)
    os.symlink("notes/garden.md", root / "garden-link.md")  # a link to a memory file is followed


def test_links_to_hidden_or_non_memory_files_are_not_indexed(memory: Path) -> None:
    from conftest import RecordingEmbedder

    plant_links(memory)
    embedder = RecordingEmbedder()
    with open_index(make_settings(memory), write=True, embedder=embedder) as index:
        report = index.sync()
        paths = {row[0] for row in index.store.connection.execute("SELECT path FROM files")}
        assert not index.search("SECRET", mode="keyword", limit=20)
    assert paths == {"MEMORY.md", "notes/garden.md", "garden-link.md"}
    assert not any("SECRET" in text for text in embedder.embedded)
    for name, (_, reason) in LINKS.items():
        (line,) = [w for w in report.warnings if w.startswith(f"{name}:")]
        assert "skipped" in line and reason in line, line


@pytest.mark.parametrize("name", sorted(LINKS))
def test_get_and_memory_get_refuse_links_to_hidden_or_non_memory_files(
    runner: CliRunner, memory: Path, name: str
) -> None:
    from indexer.errors import PathError
    from indexer.sources.read import read_excerpt, read_target

    plant_links(memory)
    reason = LINKS[name][1]
    line = assert_one_line_error(run(runner, "--root", memory, "get", name))
    assert reason in line and "SECRET" not in line, line
    for read in (lambda: read_target(memory, name), lambda: read_excerpt(memory, name)):
        with pytest.raises(PathError, match=reason):
            read()
    assert read_target(memory, "garden-link.md").lines[2] == "sow parsnips in March"


def test_the_watcher_does_not_index_a_link_made_while_watching(memory: Path) -> None:
    """Made while the watcher runs, the links go through the watcher's targeted
    sync: the same rule (a sentinel written last shows the events were handled)."""
    from conftest import RecordingEmbedder
    from test_watch import FAST, WatcherThread, indexed_paths, wait_until

    settings = make_settings(memory)
    running = WatcherThread(settings, FAST, RecordingEmbedder(), None)
    running.start()
    try:
        plant_links(memory)
        write(memory, "sentinel.md", "# Sentinel\n\nwritten last\n")
        wait_until(lambda: "sentinel.md" in indexed_paths(settings), message="the sentinel")
        wait_until(lambda: "garden-link.md" in indexed_paths(settings), message="the good link")
        assert indexed_paths(settings) == {"MEMORY.md", "notes/garden.md", "garden-link.md", "sentinel.md"}
    finally:
        running.stop()


def test_a_fifo_named_like_a_note_never_blocks(runner: CliRunner, memory: Path, fake_model) -> None:
    os.mkfifo(memory / "pipe.md")
    os.symlink("pipe.md", memory / "pipe-link.md")
    report = ok_json(run(runner, "--root", memory, "index", "--json"))
    assert report["reindexed"] == 1
    for name in ("pipe.md", "pipe-link.md"):
        assert_one_line_error(run(runner, "--root", memory, "get", name), contains="not a file")


# -- 4. a config file nested too deeply ---------------------------------------------------------

DEEP_CONFIGS = {
    "arrays": "daily_folders = " + "[" * 100_000 + "]" * 100_000 + "\n",
    "inline-tables": "model = " + "{a = " * 100_000 + "1" + "}" * 100_000 + "\n",
    "dotted-key": "model." + ".".join(["a"] * 10_000) + " = 1\n",  # tomllib's memory: the square of its length
    "quoted-dotted-key": "model." + ".".join(['"a"'] * 10_000) + " = 1\n",
    "nested-table": "[model." + ".".join(["a"] * 50_000) + "]\nx = 1\n",
    "shallow-nesting": "daily_folders = [" + "[" * 40 + "]" * 40 + "]\n",
}


@pytest.mark.parametrize("text", DEEP_CONFIGS.values(), ids=DEEP_CONFIGS.keys())
@pytest.mark.parametrize("where", ["root", "user"])
def test_a_deeply_nested_config_is_one_line_naming_the_file(
    runner: CliRunner, memory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, where: str
) -> None:
    import tracemalloc

    path = memory / ".memdex" / "config.toml" if where == "root" else tmp_path / "user.toml"
    write(path.parent, path.name, text)
    if where == "user":
        monkeypatch.setenv("MEMDEX_CONFIG", str(path))
    tracemalloc.start()
    try:
        assert_one_line_error(run(runner, "--root", memory, "status"), contains=str(path))
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak_mb < 64, f"reading the config took {peak_mb:.0f} MB"  # a 10 000-part key: ~400 MB in tomllib
    for command in (["config"], ["search", "x"]):
        assert_one_line_error(run(runner, "--root", memory, *command), contains=str(path))


def test_an_ordinary_config_still_reads(runner: CliRunner, memory: Path) -> None:
    write(memory, ".memdex/config.toml", 'search_limit = 7\ndaily_folders = ["daily", "journal.d"]\nmodel = "a.b.c"\n')
    shown = ok_json(run(runner, "--root", memory, "config", "--json"))
    assert shown["settings"]["search_limit"]["value"] == 7
    assert shown["settings"]["daily_folders"]["value"] == ["daily", "journal.d"]


# -- 5. a config file that is a device, a FIFO or huge ------------------------------------------


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "fifo", "huge"])
@pytest.mark.parametrize("where", ["root-link", "user-env"])
def test_a_config_that_is_a_device_a_fifo_or_huge_is_one_line_and_never_hangs(
    memory: Path, tmp_path: Path, device: str, where: str
) -> None:
    """Run in a child process with a timeout: a regression hangs or fills memory there, not here."""
    import subprocess
    import sys

    target = Path(device)
    if device == "fifo":
        target = tmp_path / "config.fifo"
        os.mkfifo(target)
    elif device == "huge":
        target = tmp_path / "huge.toml"
        with open(target, "wb") as handle:
            handle.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of NULs
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEMDEX_")}
    env["MEMDEX_CONFIG"] = str(tmp_path / "no-user-file.toml")
    env["MEMDEX_CACHE_DIR"] = os.environ["MEMDEX_CACHE_DIR"]
    if where == "root-link":
        (memory / ".memdex").mkdir()
        os.symlink(target, memory / ".memdex" / "config.toml")
        named = memory / ".memdex" / "config.toml"
    else:
        env["MEMDEX_CONFIG"] = str(target)
        named = target
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "--root", str(memory), "status"], env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and lines[0].startswith("memdex: error:"), done.stderr
    assert str(named) in lines[0] and ("not a regular file" in lines[0] or "larger than" in lines[0]), lines[0]


def returns_within(call, fifo: Path, seconds: float = 20.0):
    """``call()``'s result; if it blocks on ``fifo`` (a regression), the FIFO is
    opened for writing and closed to release it, and the test fails instead of hanging."""
    import threading

    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(result=call()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # the blocked reader gets EOF
        thread.join(seconds)
        pytest.fail(f"blocked on the FIFO {fifo}")
    return box.get("result")


def test_a_planted_watcher_state_fifo_never_blocks_status(memory: Path) -> None:
    from indexer.watch.state import watcher_status

    (memory / ".memdex").mkdir()
    fifo = memory / ".memdex" / "watcher.json"
    os.mkfifo(fifo)
    assert returns_within(lambda: watcher_status(memory / ".memdex"), fifo) is None
    fifo.unlink()
    (memory / ".memdex" / "big").write_text('{"pid": 1, "x": "' + "y" * 2**20 + '"}')
    os.symlink("big", fifo)
    assert watcher_status(memory / ".memdex") is None  # never read whole


def test_a_model_folder_with_a_fifo_for_a_config_is_not_read(tmp_path: Path) -> None:
    from indexer.embedding.model_files import read_model_files

    folder = tmp_path / "model"
    folder.mkdir()
    os.mkfifo(folder / "modules.json")
    assert returns_within(lambda: read_model_files(folder), folder / "modules.json") is None


# -- 7. a lone surrogate in an MCP request or a CLI argument ------------------------------------

SURROGATE_LINES = [  # (raw JSON-RPC line, the id the answer must carry)
    ('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"memory_search","arguments":{"query":"\\ud800"}}}', 2),
    ('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"memory_get","arguments":{"path":"a\\udfff.md"}}}', 3),
    ('{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"memory_\\ud800","arguments":{}}}', 4),
    ('{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"memdex://\\ud800"}}', 5),
    ('{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"memory_search","arguments":{"\\udc00":"x"}}}', 6),
    ('{"jsonrpc":"2.0","id":"\\ud800","method":"tools/list"}', None),
    ("not json at all", None),
    ('{"jsonrpc":"2.0","id":9}', 9),
]


def test_every_stdio_request_gets_an_answer_even_with_a_lone_surrogate(memory: Path, tmp_path: Path) -> None:
    """A real ``memdex mcp`` process over stdio: each unreadable line is answered
    with a JSON-RPC error carrying its id, and the server keeps answering."""
    import json
    import selectors
    import subprocess
    import sys

    env = {**os.environ, "MEMDEX_BACKEND": "onnx", "MEMDEX_CONFIG": str(tmp_path / "none.toml")}
    process = subprocess.Popen(
        [sys.executable, "-m", "indexer", "--root", str(memory), "mcp"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]

    def send(line: str) -> None:
        process.stdin.write(line.encode("utf-8") + b"\n")  # type: ignore[union-attr]
        process.stdin.flush()  # type: ignore[union-attr]

    def answer() -> dict:
        if not selector.select(timeout=30):
            pytest.fail("no answer within 30 s: the client would wait for ever")
        return json.loads(process.stdout.readline())  # type: ignore[union-attr]

    try:
        send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))  # fmt: skip
        assert answer()["id"] == 1
        send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        send('{"jsonrpc":"2.0","method":"notifications/\\ud800"}')  # a notification: no answer is due
        for line, request_id in SURROGATE_LINES:
            send(line)
            got = answer()
            assert got["id"] == request_id and got["error"]["code"] == -32700, (line, got)
            assert "\n" not in got["error"]["message"]
            if "\\ud" in line:
                assert "lone surrogate" in got["error"]["message"], got
        send(json.dumps({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}))
        assert answer()["id"] == 10  # still answering, in order
    finally:
        process.kill()
        process.wait()


def test_surrogates_through_the_sdk_client_are_tool_errors_or_answers(memory: Path) -> None:
    """Already-decoded text with lone surrogates (a Python client, no JSON wire)."""
    import anyio
    from conftest import RecordingEmbedder
    from mcp import Client

    from indexer.serve.mcp import build_server
    from indexer.serve.service import IndexService

    embedder = RecordingEmbedder()
    settings = make_settings(memory)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    service = IndexService(settings, embedder=embedder)

    async def main() -> list:
        async with Client(build_server(service)) as client:
            found = []
            for tool, arguments in [("memory_search", {"query": "\ud800 tomatoes"}), ("memory_get", {"path": "\ud800.md"}),
                                    ("memory_search", {"query": "x", "pathPrefix": "\udcff"})]:  # fmt: skip
                with anyio.fail_after(30):
                    found.append(await client.call_tool(tool, arguments))
            return found

    try:
        searched, got, prefixed = anyio.run(main)
    finally:
        service.close()
    assert not searched.is_error or "\n" not in searched.content[0].text
    for result in (got, prefixed):
        assert result.is_error and "\n" not in result.content[0].text and "Traceback" not in result.content[0].text


@pytest.mark.parametrize(
    "args",
    [["search", "\udced\udca0\udc80"], ["search", "--mode", "keyword", "tomatoes\udcff"], ["get", "\udced\udca0\udc80.md"],
     ["search", "--path", "\udcff", "x"], ["--namespace", "\udcff", "index"], ["--db", "DB\udcff.db", "index"]],
)  # fmt: skip
def test_undecodable_cli_arguments_are_answered_without_a_traceback(
    runner: CliRunner, memory: Path, tmp_path: Path, fake_model, args: list[str]
) -> None:
    """``memdex search $'\\xed\\xa0\\x80'``: argv arrives surrogateescape'd."""
    ok_json(run(runner, "--root", memory, "index", "--json"))
    args = [arg.replace("DB", str(tmp_path) + "/") for arg in args]
    result = run(runner, "--root", memory, *args)
    assert "Traceback" not in result.output and not isinstance(result.exception, UnicodeError), result.output
    if result.exit_code != 0:
        assert_one_line_error(result)
    assert not list(tmp_path.glob("*.lock"))


# -- 6. a cached ONNX export is bound to the hash taken when it was verified ----------------------


@pytest.fixture
def onnx_export(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A verified export in a temporary cache folder (never the user's), made by
    ``export_and_verify`` with ONNX Runtime and torch stood in for: the test is
    about which file gets loaded, not about the graph."""
    import numpy as np

    from indexer.embedding import onnx_backend as onnx
    from indexer.embedding.model_files import ModelFiles

    assert os.environ["MEMDEX_CACHE_DIR"] != str(Path("~/.cache/memdex").expanduser())  # conftest's own folder
    monkeypatch.setenv("MEMDEX_CACHE_DIR", str(tmp_path / "cache"))
    loaded: list[bytes] = []

    class Runtime:
        def __init__(self, path: Path, files: ModelFiles, *, threads: int | None) -> None:
            loaded.append(path.read_bytes())

        def embed(self, texts) -> np.ndarray:
            return np.ones((len(texts), 1), dtype=np.float32)

    class Torch:
        def encode(self, texts, **_: object) -> np.ndarray:
            return np.ones((len(texts), 1), dtype=np.float32)

    monkeypatch.setattr(onnx, "OnnxEmbedder", Runtime)
    monkeypatch.setattr(onnx, "_export", lambda model, target: target.write_bytes(b"verified graph " * 1000))
    files = ModelFiles(folder=tmp_path / "model", fingerprint="f00d", dimensions=1, max_seq_length=8, max_tokens=6,
                       pooling="mean", normalize=True, do_lower_case=False, tokenizer_path=tmp_path / "t.json")  # fmt: skip
    def export() -> None:
        onnx.export_and_verify(files, Torch())
        loaded.clear()

    export()
    return onnx, files, loaded, export


def test_a_verified_export_loads_and_a_replaced_one_is_discarded(onnx_export, caplog: pytest.LogCaptureFixture) -> None:
    onnx, files, loaded, _ = onnx_export
    folder = onnx.export_folder(files)
    assert onnx.load_verified(files, threads=1) is not None and loaded == [b"verified graph " * 1000]
    model = folder / "model.onnx"
    before = os.stat(model)
    with open(model, "r+b") as handle:  # same size, same mtime: only the bytes differ
        handle.write(b"EVIL")
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    loaded.clear()
    assert onnx.load_verified(files, threads=1) is None  # the caller exports it again
    assert loaded == [] and not model.exists() and not (folder / "check.json").exists()
    assert any("not the one verified" in record.getMessage() for record in caplog.records)


def test_an_export_without_a_recorded_hash_or_with_extra_weights_is_discarded(onnx_export) -> None:
    import json

    onnx, files, loaded, export = onnx_export
    folder = onnx.export_folder(files)
    (folder / "model.onnx.data").write_bytes(b"planted external weights")
    assert onnx.load_verified(files, threads=1) is None and loaded == []
    export()
    check = json.loads((folder / "check.json").read_text())
    del check["sha256"]  # an export made before the hash was recorded
    (folder / "check.json").write_text(json.dumps(check))
    assert onnx.load_verified(files, threads=1) is None and loaded == []


def test_a_copied_export_is_hashed_again_and_its_stamp_renewed(onnx_export) -> None:
    import json

    onnx, files, loaded, _ = onnx_export
    folder = onnx.export_folder(files)
    model = folder / "model.onnx"
    data = model.read_bytes()
    model.unlink()
    model.write_bytes(data)  # a new inode and ctime: the stamp no longer matches, the hash does
    assert onnx.load_verified(files, threads=1) is not None
    stamp = json.loads((folder / "check.json").read_text())["stamps"]["model.onnx"]
    assert stamp[3] == os.stat(model).st_ino


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_key_file_that_is_a_fifo_or_a_device_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    """Read like every small file memdex reads: non-blocking, regular files only, bounded."""
    from indexer.config.encryption import read_key_file
    from indexer.errors import ConfigError

    path = tmp_path / "key"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_key_file(path, root=tmp_path)


def test_the_dotted_key_guard_is_linear_on_a_file_of_the_largest_size() -> None:
    """The guard against long dotted keys was a regular expression that backtracked from every
    position: 20 KB took 2.7 s, a 1 MiB root config (the size allowed) about two hours."""
    import threading

    from indexer.config.files import MAX_SMALL_FILE
    from indexer.config.resolve import _has_long_dotted_key

    answers: list[bool] = []
    texts = ["a" * (MAX_SMALL_FILE - 1), ("a." * 20 + "\n") * (MAX_SMALL_FILE // 41), "x." * 40 + "y = 1\n"]
    worker = threading.Thread(target=lambda: answers.extend(_has_long_dotted_key(t) for t in texts), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert answers == [False, False, True], "the guard did not finish within 30 s"


@pytest.mark.parametrize("name", ["index.db", "embeddings.db"])
def test_a_fifo_at_the_index_path_is_refused_without_blocking(tmp_path: Path, name: str) -> None:
    """The encryption check read the file's header before the regular-file check: a FIFO
    at .memdex/index.db hung `memdex status` and `memdex index` forever."""
    import subprocess
    import sys

    memory = tmp_path / "memory"
    write(memory, "MEMORY.md", "# Memory\n\n- a fact\n")
    (memory / ".memdex").mkdir()
    os.mkfifo(memory / ".memdex" / name)
    for command in (["status"], ["index"]):
        done = subprocess.run([sys.executable, "-m", "indexer", "--root", str(memory), *command],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})  # fmt: skip
        assert done.returncode != 0 and "not a regular file" in done.stderr, done.stderr
        assert done.stderr.startswith("memdex: error:") and "Traceback" not in done.stderr
