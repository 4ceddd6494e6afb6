"""Shared test helpers: a deterministic recording embedder and index helpers.

Unit tests use ``RecordingEmbedder`` (fast, no model); tests marked ``slow``
load the real all-MiniLM-L6-v2 weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import make_settings, open_index
from indexer.config.settings import Settings
from indexer.indexing.report import SyncReport

# No test writes to the user's cache folder (ONNX exports): one temporary
# folder per test session, inherited by the processes tests start.
os.environ["MEMDEX_CACHE_DIR"] = tempfile.mkdtemp(prefix="memdex-test-cache-")

TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class RecordingEmbedder:
    """Deterministic embedder that records every text it is asked to embed."""

    def __init__(self, *, dimensions: int = 16, max_tokens: int = 64, model_id: str = "test/recording") -> None:
        self.model_id = model_id
        self.dimensions = dimensions
        self.max_tokens = max_tokens
        self.embedded: list[str] = []

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(TOKEN.findall(text)) for text in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
            vector = np.random.default_rng(seed).standard_normal(self.dimensions)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimensions)

    def reset(self) -> None:
        self.embedded.clear()


def write(root: Path, rel: str, text: str | bytes) -> Path:
    """Write a file below root, creating folders; returns its path."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def age_files(root: Path, seconds: float = 10.0) -> None:
    """Move every file's mtime into the past so the stat check can trust it."""
    past = time.time() - seconds
    for path in root.rglob("*.md"):
        if not path.is_symlink():
            import os

            os.utime(path, (past, past))


# Five small notes of every kind (soul, memory, daily, note with frontmatter), for engine tests.
NOTES = {
    "MEMORY.md": "# Facts\n\n- Penicillin allergy: hives in 2009.\n- Editor: vim with tmux.\n\n## Pets\n\nPangur the cat.\n",
    "SOUL.md": "# Soul\n\nBe brief and kind.\n",
    "daily/2024-05-01.md": "# Wednesday\n\nDentist at 3pm. Bought a bike.\n",
    "daily/2024-05-02.md": "# Thursday\n\nRode the bike to the lake.\n",
    "notes/garden.md": "---\ntitle: Greenhouse\ntags: [tomatoes]\n---\n# Plan\n\nTomatoes in May, basil in June.\n",
}


def fill(root: Path, files: dict[str, str] = NOTES) -> None:
    for rel, text in files.items():
        write(root, rel, text)
    age_files(root)


@pytest.fixture(autouse=True)
def restore_indexer_logger() -> Iterator[None]:
    """The CLI points the 'indexer' logger at the runner's stderr; undo that after each test."""
    logger = logging.getLogger("indexer")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture(autouse=True)
def no_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's own memdex config file and MEMDEX_* settings out of every test."""
    from indexer.config.resolve import KEYS

    for key in KEYS.values():
        monkeypatch.delenv(key.env, raising=False)
    monkeypatch.setenv("MEMDEX_CONFIG", str(tmp_path_factory.mktemp("user-config") / "config.toml"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "memory"
    folder.mkdir()
    return folder


@pytest.fixture
def embedder() -> RecordingEmbedder:
    return RecordingEmbedder()


@pytest.fixture
def settings(root: Path) -> Settings:
    return make_settings(root)


@pytest.fixture
def do_sync(settings: Settings, embedder: RecordingEmbedder) -> Callable[..., SyncReport]:
    def run(**kwargs: Any) -> SyncReport:
        use = kwargs.pop("settings", settings)
        with open_index(use, write=True, embedder=kwargs.pop("embedder", embedder)) as index:
            return index.sync(**kwargs)

    return run


def snapshot(settings: Settings, embedder: RecordingEmbedder) -> dict[str, Any]:
    with open_index(settings, embedder=embedder) as index:
        return index.store.snapshot()


# -- PostgreSQL ------------------------------------------------------------------------------
# One throwaway PostgreSQL + pgvector server per test session (tests/pg_server.py). Where it
# cannot start, PostgreSQL tests are skipped, except under CI or MEMDEX_REQUIRE_PG=1, where
# they fail: CI must never pass by skipping them.


def pg_required() -> bool:
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or os.environ.get("MEMDEX_REQUIRE_PG") == "1"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """The session's PgServer: .url, .url_for(db), .create_database(name), .restart(), .kill(), .stop()."""
    from pg_server import PgServer, PgServerError

    try:
        server = PgServer.start()
    except PgServerError as exc:
        if pg_required():
            pytest.fail(f"PostgreSQL server did not start (CI / MEMDEX_REQUIRE_PG=1): {exc}", pytrace=False)
        pytest.skip(f"no PostgreSQL server for the postgres tests: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def pg_url(pg_server: Any) -> str:
    """libpq URL of the session server's `memdex` database (pgvector installed), with a password."""
    return str(pg_server.url)


@pytest.fixture
def own_pg_database(pg_server: Any) -> Iterator[str]:
    """The URL of a new database for one test (pgvector installed), dropped after it: no
    other test's rows share its tables."""
    name = f"own_{uuid.uuid4().hex[:10]}"
    url = pg_server.create_database(name)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def pg_server_alive(pg_server: Any) -> Iterator[Any]:
    """The session server, started again after the test if the test stopped or killed it."""
    yield pg_server
    if not pg_server.is_running():
        pg_server.restart()


# -- Both engines ------------------------------------------------------------------------------
# The engine contract (test_engine_contract.py, and the invariant property in test_invariants.py)
# runs every test on each engine through ``engine_kind``: SQLite files, and namespaces of the
# session's PostgreSQL server (marked ``postgres``: skipped without a server, failed under
# CI / MEMDEX_REQUIRE_PG=1 as every PostgreSQL test is).

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class EngineKind:
    """Makes indexes on one engine. ``settings(root)`` is a new, empty index of ``root``;
    ``fresh(like)`` another one of the same root, to compare with (a fresh rebuild)."""

    def __init__(self, name: str, url: str | None, scratch: Callable[[], Path]) -> None:
        self.name = name  # the engine's ``Engine.name``
        self.url = url
        self._scratch = scratch

    def __repr__(self) -> str:
        return f"EngineKind({self.name})"

    def settings(self, root: Path, *, elsewhere: Path | None = None, **options: Any) -> Settings:
        """SQLite: ROOT/.memdex/index.db, or the file ``elsewhere`` (an index kept outside the
        root); PostgreSQL: a namespace no other test uses (the server is always elsewhere)."""
        if self.url is None:
            return make_settings(root, elsewhere, **options)
        return make_settings(root, self.url, namespace=f"contract-{uuid.uuid4().hex[:12]}", **options)

    def fresh(self, like: Settings, where: Path | None = None) -> Settings:
        """A new, empty index of ``like``'s root, with ``like``'s options, on this engine
        (SQLite: the file ``where``, or one in a new temporary folder)."""
        if self.url is None:
            return dataclasses.replace(like, index_path=(where or self._scratch() / "index.db").resolve())
        return dataclasses.replace(like, namespace=f"fresh-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=ENGINES)
def engine_kind(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> EngineKind:
    url = None if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))
    return EngineKind(request.param, url, lambda: tmp_path_factory.mktemp("fresh"))
