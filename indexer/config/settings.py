"""Frozen settings, built once by the CLI (or by a library caller)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import ConfigError

from .database import check_database, is_database_url, redact

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
INDEX_DIR_NAME = ".memdex"
INDEX_FILE_NAME = "index.db"
CACHE_FILE_NAME = "embeddings.db"
LOCK_FILE_NAME = "write.lock"
SERVER_STATE_NAME = "postgres"  # with a PostgreSQL index: the name its local lock and watcher files take

# Bump when chunk boundaries or embedded text change: the index re-chunks and
# re-embeds everything (announced), since old chunks would no longer match.
# 2: content-defined cuts inside oversized blocks, capped heading paths;
# 3: an oversized chunk's vector pools token windows over all its text (indexing/windows.py).
CHUNKER_VERSION = 3
# What one search returns by default: about a screenful, what an assistant can
# read per question without crowding out the conversation (~2,000 tokens of
# notes or chat lines), and room for 10-15 short hits or 3-5 note sections.
# The token bound is for long lines: 50 ordinary chat or note lines are ~1,850
# estimated tokens, so it does not cut them (1,500 cost the dev set 0.027 hit@50L,
# 2,000 0.008), while 50 transcript lines of thousands of characters stop at ~2,000.
# One definition for the settings below and MemoryIndex.search's defaults (api.py).
DEFAULT_BUDGET_LINES = 50
DEFAULT_BUDGET_TOKENS = 2000  # ~ estimated tokens (budget.estimate_tokens); whichever of the two fills first


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know; nothing here is mutated after start-up."""

    root: Path
    index_path: Path
    model: str = DEFAULT_MODEL
    # Files larger than this are skipped with a warning (a 20 MB "note" is
    # almost always a pasted log; embedding it would take many minutes).
    max_file_bytes: int = 5 * 1024 * 1024
    # The same bound for session transcripts: a long coding session is often 10-50 MB,
    # mostly tool output, and is one conversation; a larger file is still skipped.
    session_max_file_bytes: int = 64 * 1024 * 1024
    # Try to load sqlite-vec; when False or when loading fails, vector search
    # runs as an exact NumPy scan over the stored vectors.
    use_sqlite_vec: bool = True
    embed_batch_size: int = 32
    # Root-relative folders whose YYYY-MM-DD.md files are daily logs (memdex's
    # daily/, an OpenClaw workspace's memory/). Changing it re-classifies files.
    daily_folders: tuple[str, ...] = ("daily", "memory")
    # Folders of session transcripts (JSONL), absolute: ``session_folders`` in the
    # config file, MEMDEX_SESSION_FOLDERS, --session-folder (relative: to the root).
    # Their files are indexed as ``sessions/<label>/...`` (``session_labels``).
    session_folders: tuple[Path, ...] = ()
    # Index tool calls, tool results and thinking blocks of transcripts too.
    session_tools: bool = False
    # What `memdex search` and the MCP memory_search use when not told otherwise.
    search_mode: str = "hybrid"
    # At most this many results (None: as many as the reading budget holds).
    search_limit: int | None = None
    # The reading budget in lines a search fills (0: whole chunks, no budget).
    search_budget_lines: int = DEFAULT_BUDGET_LINES
    # ... and in estimated tokens (four characters each; a CJK character one), whichever fills first (0: no
    # token bound). Long lines (chat transcripts) would otherwise make 50 lines 30K tokens.
    search_budget_tokens: int = DEFAULT_BUDGET_TOKENS
    # Embedding backend: "auto" (ONNX Runtime for queries, AUTO_BULK in embedding/lazy.py
    # for bulk), "onnx" or "torch". The CLI reads --backend / MEMDEX_BACKEND.
    backend: str = "auto"
    # A remote embedding model instead (embedding/http_backend.py): an OpenAI-compatible
    # endpoint (``http://localhost:11434/v1`` for Ollama) and the model's name there; its
    # key only from MEMDEX_EMBEDDING_KEY in the environment. Tokens per text the model takes.
    embedding_url: str | None = None
    embedding_model: str | None = None
    embedding_max_tokens: int = 512
    # An optional re-ranking stage (retrieval/rerank.py): a /rerank endpoint (llama.cpp,
    # Jina, vLLM) that re-orders the first ``rerank_top`` results; key from MEMDEX_RERANK_KEY.
    rerank_url: str | None = None
    rerank_model: str | None = None
    rerank_top: int = 30
    # Threads for query-sized embeddings (1: fast even when other processes keep
    # the cores busy) and for bulk embedding ("auto": before each model call, the
    # cores nobody else is using, at least one; embedding/cores.py). The CLI reads
    # --embed-threads / MEMDEX_EMBED_THREADS.
    query_threads: int = 1
    embed_threads: int | str = "auto"
    # A faster form of the model, made locally from its files: "full" (the model
    # itself), "int8" (quantised ONNX) or "static" (model2vec, distilled at first
    # use). Each is its own vector space: changing it re-embeds. embedding/variants.py.
    model_variant: str = "full"
    # PostgreSQL instead of SQLite (``--db postgresql://...``): the server's URL
    # (credentials also from libpq's PG* variables and ~/.pgpass), this root's
    # namespace there (default HOST:ROOT) and the namespaces searches cover
    # (empty: just this one; "*": all of them).
    database_url: str | None = None
    namespace: str | None = None
    search_namespaces: tuple[str, ...] = ()
    # Encryption at rest (SQLite): the key itself (library callers; never shown in
    # repr), else MEMDEX_ENCRYPTION_KEY, a file holding it, or an OS keyring entry
    # (``config/encryption.py`` reads them when the index is opened).
    encryption_key: str | None = field(default=None, repr=False, compare=False)
    encryption_key_file: str | None = None
    encryption_keyring: str | None = None

    @property
    def host(self) -> str:
        """This machine's name: whose stat cache a PostgreSQL index's file stamps are
        (``MEMDEX_HOST`` overrides it, e.g. for several containers sharing a hostname)."""
        return os.environ.get("MEMDEX_HOST", "").strip() or socket.gethostname()

    @property
    def index_location(self) -> str:
        """Where the index is, for people: its file, or the server's URL without the password."""
        if self.database_url:
            return redact(self.database_url)
        return str(self.index_path)

    @property
    def namespace_name(self) -> str:
        return self.namespace or f"{self.host}:{self.root}"

    @property
    def index_dir(self) -> Path:
        return self.index_path.parent

    @property
    def cache_path(self) -> Path:
        return self._sibling(CACHE_FILE_NAME, ".embeddings.db")

    @property
    def lock_path(self) -> Path:
        return self._sibling(LOCK_FILE_NAME, ".lock")

    @property
    def status_path(self) -> Path:
        """The running watcher's state file (``watch/state.py``)."""
        return self._sibling("watcher.json", ".watcher.json")

    @property
    def session_labels(self) -> dict[str, Path]:
        """Label -> folder of each session folder: its name (``<parent>-sessions`` for a folder
        named ``sessions``), ``name-2`` for a
        second folder of the same name, so a citation ``sessions/<label>/...`` names one file.
        Leading dots are dropped (``~/.codex/sessions``: ``codex-sessions``): a hidden part of a
        path is never a memory file's, so a hidden label would hide its transcripts from path syncs."""
        labels: dict[str, Path] = {}
        for folder in self.session_folders:
            base = folder.name.lstrip(".") or "root"
            parent = folder.parent.name.lstrip(".")
            if base == "sessions" and parent:  # OpenClaw's agents/<id>/sessions: main-sessions
                base = f"{parent}-{base}"
            label, n = base, 1
            while label in labels:
                n += 1
                label = f"{base}-{n}"
            labels[label] = folder
        return labels

    def _sibling(self, default_name: str, suffix: str) -> Path:
        """``embeddings.db``/``write.lock`` beside an ``index.db``; beside any other
        ``--db`` name, files named after it (never a generic name in the user's folder)."""
        if self.index_path.name == INDEX_FILE_NAME:
            return self.index_dir / default_name
        return self.index_path.with_name(self.index_path.name + suffix)


def make_settings(
    root: str | Path = ".",
    index_path: str | Path | None = None,
    **options: object,
) -> Settings:
    """Validate the root and derive the index location (``ROOT/.memdex/index.db``)."""
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise ConfigError(f"memory root does not exist: {root_path}")
    if not root_path.is_dir():
        raise ConfigError(f"memory root is not a folder: {root_path}")
    root_path = root_path.resolve()
    folders = options.get("session_folders")
    if folders:
        options = {**options, "session_folders": _session_folders(root_path, folders)}  # type: ignore[arg-type]
    if isinstance(index_path, str):
        check_database(index_path)  # a server address gone wrong is refused, not taken for a file name
    if is_database_url(index_path):
        # The server holds the index; the root's .memdex/ keeps the writer lock and watcher state.
        options = {**options, "database_url": str(index_path)}
        resolved_index = root_path / INDEX_DIR_NAME / SERVER_STATE_NAME  # postgres.lock, postgres.watcher.json
    elif index_path is None:
        resolved_index = root_path / INDEX_DIR_NAME / INDEX_FILE_NAME
    else:
        resolved_index = Path(index_path).expanduser().resolve()
        if resolved_index.is_dir():
            raise ConfigError(f"--db must name a file, not a folder: {resolved_index}")
        if resolved_index.exists() and not resolved_index.is_file():
            raise ConfigError(f"--db must name a regular file: {resolved_index} is not one")
        if resolved_index.suffix.lower() == ".md" and (resolved_index == root_path or root_path in resolved_index.parents):
            raise ConfigError(f"--db {resolved_index} is a memory file's name; choose a name that does not end in .md")
    for what, value in (("--db" if index_path is not None else "the index file", None if is_database_url(index_path) else str(resolved_index)),
                        ("--namespace", options.get("namespace"))):  # fmt: skip
        if isinstance(value, str) and not _is_text(value):  # undecodable bytes of a file name or argument
            raise ConfigError(f"{what} {value.encode('utf-8', 'backslashreplace').decode()} is not valid UTF-8, "
                              "which the index needs; choose another name")  # fmt: skip
    return Settings(root=root_path, index_path=resolved_index, **options)  # type: ignore[arg-type]


def _session_folders(root: Path, folders: object) -> tuple[Path, ...]:
    """Absolute, resolved folders (``~`` expanded, relative ones against the root), in order,
    each once; a folder that does not exist yet is kept (its sessions count once it does)."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    found: list[Path] = []
    for item in folders:  # type: ignore[union-attr]
        text = str(item)
        if not text.strip() or "\x00" in text or not _is_text(text):
            raise ConfigError(f"session folder {text!r} is not a usable folder name")
        path = Path(text).expanduser()
        path = (path if path.is_absolute() else root / path).resolve()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"session folder {path} is not a folder")
        if path not in found:
            found.append(path)
    return tuple(found)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
