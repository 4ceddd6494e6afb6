"""APSW connections: pragmas, the sqlite-vec extension and schema migrations.

Migrations are a ladder on ``PRAGMA user_version``: step N brings a database
at version N-1 to N. A database at a higher version than this code knows is
refused with a clear error, never written to. Every index and cache carries
memdex's ``application_id``; ``ownership`` decides what recovery may touch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import apsw

from indexer.errors import NewerIndex, SchemaError, StorageError, UnusableIndex

from . import encryption as crypt
from .errors import (  # noqa: F401 - re-exported: callers name them db.*
    BUSY_ERRORS, DAMAGE_ERRORS, READ_ONLY_ERRORS, as_user_error, is_damage, one_line_error,
)  # fmt: skip
from .migrations import (  # noqa: F401 - re-exported
    CACHE_SCHEMA, CACHE_SCHEMA_VERSION, NEWER_LABEL, SCHEMA_VERSION, migrate, newer_message, user_version,
)  # fmt: skip
from .ownership import (  # noqa: F401 - re-exported: callers name them db.*
    CACHE, CACHE_APPLICATION_ID, CREATING_SUFFIX, EMPTY, INDEX, INDEX_APPLICATION_ID, LEGACY, MISSING, OURS,
    PROBE_BLANK, PROBE_OTHER, PROBE_OURS, ownership as _ownership, prune_quarantined, quarantine_target, vet_path,
)  # fmt: skip

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
# Quarantined damaged files kept beside the index (the newest ones).
KEEP_QUARANTINED = 3
SIDECARS = ("-wal", "-shm", "-journal")

@dataclass(frozen=True)
class Opened:
    connection: apsw.Connection
    vec_loaded: bool
    vec_warning: str | None


def connect(path: Path, *, load_vec: bool, key: str | None = None) -> Opened:
    """Open (creating if needed) and migrate the index database at ``path``.

    A new index is created complete in ``<path>.creating`` and renamed into
    place, so a reader never sees a half-made one. A file that is not
    memdex's index raises ``NotAnIndex`` and is left untouched. With ``key``
    the file is encrypted (``encryption.py``); a wrong key raises ``EncryptionError``.
    """
    _make_folder(path.parent)
    state = ownership(path, kind=INDEX, key=key)
    if state in (MISSING, EMPTY):
        _create(path, load_vec=load_vec, key=key)
    connection = _open(path, key=key, newest=SCHEMA_VERSION)
    try:
        if connection.readonly("main"):
            raise StorageError(f"the index {path} is read-only; 'memdex search', 'status' and 'check' can still read it")
        vec_loaded, warning = load_sqlite_vec(connection) if load_vec else (False, None)
        migrate(connection, path)
    except DAMAGE_ERRORS as exc:
        connection.close()
        raise UnusableIndex(f"{path} is damaged ({exc})") from None
    except BaseException:
        connection.close()
        raise
    return Opened(connection, vec_loaded, warning)


def _create(path: Path, *, load_vec: bool, key: str | None) -> None:
    temporary = path.with_name(path.name + CREATING_SUFFIX)
    remove_own_temporary(temporary, key=key)
    connection = _open(temporary, new=INDEX_APPLICATION_ID, key=key)
    try:
        if load_vec:
            load_sqlite_vec(connection)
        migrate(connection, temporary)
        close_for_move(connection, temporary)
    except BaseException:
        connection.close()
        remove_database(temporary)
        raise
    os.replace(temporary, path)


def connect_reader(path: Path, *, load_vec: bool, key: str | None = None) -> Opened:
    """Open an existing index for searching; never creates or migrates it.

    When the index folder or file cannot be written (read-only folder,
    immutable file), the index is opened read-only instead.
    """
    state = ownership(path, kind=INDEX, key=key)
    if state == MISSING:
        raise SchemaError(f"no index at {path}; run 'memdex index' first")
    if state == EMPTY:
        raise UnusableIndex(f"{path} is empty")
    connection = _open_for_reading(path, key)
    try:
        vec_loaded, warning = load_sqlite_vec(connection) if load_vec else (False, None)
        version = user_version(connection, path)
        if version > SCHEMA_VERSION:
            raise NewerIndex(newer_message(path, version))
        if version < SCHEMA_VERSION:
            raise SchemaError(f"index at {path} has schema {version}; run 'memdex index' to upgrade it")
    except BaseException:
        connection.close()
        raise
    return Opened(connection, vec_loaded, warning)


def _open_for_reading(path: Path, key: str | None) -> apsw.Connection:
    connection = None
    try:
        connection = _open(path, flags=apsw.SQLITE_OPEN_READWRITE, key=key, newest=SCHEMA_VERSION)
        user_version(connection, path)
        return connection
    except (SchemaError, apsw.CantOpenError, apsw.ReadOnlyError) as exc:
        if connection is not None:
            connection.close()
        if isinstance(exc, UnusableIndex):
            raise
        first = exc
    # WAL needs -shm beside the index; without write access, read the file as it is.
    for query in ("mode=ro", "immutable=1"):
        try:
            connection = _open(path, uri=query, key=key)
        except (SchemaError, apsw.CantOpenError, apsw.ReadOnlyError) as exc:
            if isinstance(exc, UnusableIndex):
                raise
            continue
        try:
            user_version(connection, path)
        except (apsw.CantOpenError, apsw.ReadOnlyError):
            connection.close()
            continue
        except BaseException:
            connection.close()
            raise
        log.info("the index folder is not writable; reading %s read-only (%s)", path, query)
        return connection
    raise StorageError(f"cannot open the index {path} ({one_line_error(first)})") from None


def connect_cache(path: Path, *, key: str | None = None) -> apsw.Connection:
    """Open (creating if needed) the embedding cache database.

    A damaged cache is moved aside and started afresh: it only saves model
    calls, so losing it costs time, never data. A file that is not memdex's
    cache raises ``NotAnIndex``; in a folder that cannot be written, an
    existing cache is opened read-only (nothing new is stored). A cache from a
    newer memdex is left as it is and not used: this process keeps its vectors
    in memory (one warning), so two versions used in turn never discard each
    other's cache.
    """
    _make_folder(path.parent, quiet=True)
    state = ownership(path, kind=CACHE, key=key)
    connection = None
    try:
        if state in (MISSING, EMPTY):
            connection = _open(path, new=CACHE_APPLICATION_ID, key=key)
        else:
            try:
                connection = _open(path, key=key, newest=CACHE_SCHEMA_VERSION)
            except (SchemaError, apsw.CantOpenError, apsw.ReadOnlyError) as exc:
                if isinstance(exc, UnusableIndex):
                    raise
                connection = _open(path, uri="immutable=1", key=key)  # a folder that cannot be written
            if _newer_cache(connection, path):
                connection.close()
                return _memory_cache()
            if connection.readonly("main"):
                return connection
        with connection:
            connection.execute(CACHE_SCHEMA)
        return connection
    except (UnusableIndex, *DAMAGE_ERRORS) as exc:
        if connection is not None:
            connection.close()
        moved = quarantine(path, kind=CACHE, key=key)
        log.warning(
            "embedding cache %s is damaged (%s); %s and started afresh", path, exc,
            f"moved to {moved.name}" if moved else "removed it",
        )  # fmt: skip
    connection = _open(path, new=CACHE_APPLICATION_ID, key=key)
    with connection:
        connection.execute(CACHE_SCHEMA)
    return connection


def _newer_cache(connection: apsw.Connection, path: Path) -> bool:
    version = int(connection.pragma("user_version"))
    if version <= CACHE_SCHEMA_VERSION:
        return False
    log.warning(
        "embedding cache %s has schema %d, newer than this memdex understands (%d); it is left as it is and "
        "not used (every text is embedded again): upgrade memdex, or move it away for a new cache",
        path, version, CACHE_SCHEMA_VERSION,
    )  # fmt: skip
    return True


def _memory_cache() -> apsw.Connection:
    """A cache for this process only, in memory (the file beside the index belongs to a newer memdex)."""
    connection = apsw.Connection(":memory:")
    with connection:
        connection.execute(CACHE_SCHEMA)
    return connection


def ownership(path: Path, *, kind: str = INDEX, key: str | None = None, allow_plain: bool = False) -> str:
    """Whether ``path`` is memdex's own index (or cache), before anything opens
    it: MISSING, EMPTY, OURS or LEGACY (see ``ownership.ownership``); anything
    else raises ``NotAnIndex``. An encrypted file is OURS only when ``key``
    decrypts it; a plain one of memdex's is refused when a key is set, unless
    ``allow_plain`` (moving, deleting or converting it writes no note text)."""
    vet_path(path, kind=kind)  # no link, no FIFO: before the encryption check reads its header
    if crypt.check(path, kind=kind, key=key):
        return OURS
    state = _ownership(path, kind=kind, probe=_probe)
    if key is not None and not allow_plain and state in (OURS, LEGACY) and crypt.header_state(path) == crypt.PLAIN:
        crypt.refuse_plain(path)
    return state


def _probe(path: Path, tables: frozenset[str]) -> str | None:
    """What SQLite sees in an unstamped file: memdex's tables (an index also
    needs its user_version ladder), none at all, other ones; None if unreadable."""
    for query in ("mode=ro", "immutable=1"):
        try:
            connection = apsw.Connection(read_only_uri(path, query), flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        except apsw.Error:
            continue
        try:
            names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = int(connection.pragma("user_version"))
        except apsw.Error:
            continue
        finally:
            connection.close()
        if not names:
            return PROBE_BLANK
        return PROBE_OURS if tables <= names and (version >= 1 or "embeddings" in tables) else PROBE_OTHER
    return None


def remove_own_temporary(path: Path, *, key: str | None = None) -> None:
    """Delete a temporary index memdex left behind; a foreign file by that name raises ``NotAnIndex``."""
    if ownership(path, kind=INDEX, key=key, allow_plain=True) != MISSING:
        remove_database(path)


def quarantine(
    path: Path, *, keep: int = KEEP_QUARANTINED, kind: str = INDEX, key: str | None = None, label: str = "corrupt"
) -> Path | None:
    """Move a damaged database of memdex's (and its WAL) aside as
    ``<name>.<label>-<timestamp>``; None when there was nothing to keep (a
    0-byte file is simply replaced). A file memdex cannot prove is its own
    raises ``NotAnIndex`` and stays where it is. Only the newest ``keep``
    ``corrupt`` copies are kept; an index from a newer memdex (``label``
    ``NEWER_LABEL``) is never deleted."""
    state = ownership(path, kind=kind, key=key, allow_plain=True)
    target: Path | None = None
    if state in (OURS, LEGACY):
        target = quarantine_target(path, label)
        os.replace(path, target)
        os.utime(target)  # its mtime now says when it was moved aside: the newest are kept
        wal = Path(f"{path}-wal")
        if wal.exists():
            os.replace(wal, Path(f"{target}-wal"))
    elif state == EMPTY:
        remove_database(path)
    for suffix in ("-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    prune_quarantined(path, keep)
    return target


def close_for_move(connection: apsw.Connection, path: Path) -> None:
    """Checkpoint and close the only connection to ``path`` so that the file
    alone holds everything and can be renamed (its WAL must not be left behind)."""
    connection.pragma("wal_checkpoint(TRUNCATE)")
    connection.close()
    for suffix in SIDECARS:
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def remove_database(path: Path) -> None:
    """Delete a database file and its WAL, shared-memory and journal files."""
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in SIDECARS)):
        candidate.unlink(missing_ok=True)


def copy_into(destination: apsw.Connection, source: apsw.Connection) -> None:
    """Replace the destination database's whole content with the source's, in
    one transaction (SQLite's backup API): readers of the destination see the
    old content until the copy commits, then the new one."""
    with destination.backup("main", source, "main") as backup:
        backup.step(-1)


def read_only_uri(path: Path, query: str) -> str:
    """An SQLite URI for ``path`` ("?", "#" and "%" in folder names escaped)."""
    return f"file:{quote(os.fspath(path), safe='/')}?{query}"


def _make_folder(folder: Path, *, quiet: bool = False) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if quiet and folder.is_dir():
            return
        raise SchemaError(f"cannot create the index folder {folder} ({exc.strerror or exc})") from None


def schema_version(path: Path, *, key: str | None) -> int:
    """The index's ``user_version``, read without writing anything to a newer memdex's index
    (read-write, so its close leaves no -wal or -shm file behind, as a read-only one would)."""
    connection = _open(path, key=key, newest=SCHEMA_VERSION)
    try:
        return user_version(connection, path)
    finally:
        connection.close()


def open_database(path: Path, *, key: str | None) -> apsw.Connection:
    """A read-write connection that also accepts URIs in SQL (``VACUUM INTO``), keyed when ``key``."""
    return _open(path, flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI, key=key)


def _open(
    path: Path, flags: int | None = None, *, uri: str | None = None, new: int | None = None, key: str | None = None,
    newest: int | None = None,
) -> apsw.Connection:
    """A connection with memdex's pragmas. ``uri`` opens read-only with that
    query (``mode=ro``, ``immutable=1``); ``new`` stamps a new file with that
    application_id before anything else is written to it; ``key`` encrypts.
    A file whose schema is above ``newest`` gets no pragma that writes (WAL mode
    rewrites the header): its caller refuses it, and the file stays byte for byte."""
    try:
        if uri is not None:
            connection = apsw.Connection(read_only_uri(path, uri), flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        elif flags is None:
            connection = apsw.Connection(str(path))
        else:
            connection = apsw.Connection(str(path), flags=flags)
    except apsw.CantOpenError as exc:
        raise SchemaError(f"cannot open {path} ({exc})") from None
    try:
        if key is not None:
            crypt.apply_key(connection, key)  # before SQLite reads or writes a page
        connection.set_busy_timeout(BUSY_TIMEOUT_MS)
        if uri is None and not _newer_than(connection, newest):  # a newer memdex's file is left as it is
            if new is not None:
                connection.pragma("application_id", new)
            connection.pragma("journal_mode", "wal")
            connection.pragma("synchronous", "normal")
    except DAMAGE_ERRORS as exc:
        connection.close()
        raise UnusableIndex(f"{path} is not a usable SQLite database ({exc})") from None
    except BaseException:
        connection.close()
        raise
    return connection


def _newer_than(connection: apsw.Connection, newest: int | None) -> bool:
    return newest is not None and int(connection.pragma("user_version")) > newest


def load_sqlite_vec(connection: apsw.Connection) -> tuple[bool, str | None]:
    try:
        import sqlite_vec

        connection.enable_load_extension(True)
        try:
            connection.load_extension(sqlite_vec.loadable_path())
        finally:
            connection.enable_load_extension(False)
    except Exception as exc:  # ImportError, ExtensionLoadingError, missing file...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, f"sqlite-vec could not be loaded ({reason}); using exact NumPy vector search"
    return True, None
