"""Which files are memdex's own: the rules recovery follows before it moves,
replaces or deletes anything (file-level checks; connection.py adds SQLite's view).

Every index and embedding cache memdex creates carries its SQLite
``application_id``. A file is memdex's when its header says so, when it is an
index from before the stamp (memdex's tables and schema ladder, read through
SQLite by the caller's ``probe``), or when it sits at memdex's own place
(``.memdex/index.db``, ``.memdex/embeddings.db``) whatever its damage, unless
SQLite can read it and it is plainly another program's database (another
``application_id``, or other tables and none of memdex's). Anything else raises
``NotAnIndex`` and is left alone, byte for byte. A symbolic link in place of any
of memdex's files (or their ``-wal``/``-shm``/``-journal``, or the folder) is
refused too: memdex never writes through one.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from stat import S_ISLNK, S_ISREG

from indexer.errors import NotAnIndex, StorageError

INDEX_APPLICATION_ID = 0x4D444958  # "MDIX"
CACHE_APPLICATION_ID = 0x4D444543  # "MDEC"
SQLITE_HEADER = b"SQLite format 3\x00"
SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")
OWN_FOLDER = ".memdex"
CREATING_SUFFIX = ".creating"
REBUILD_SUFFIX = ".rebuild"

INDEX, CACHE = "index", "cache"
MISSING, EMPTY, OURS, LEGACY = "missing", "empty", "ours", "legacy"
# What a probe of an unstamped SQLite file found: memdex's tables, no tables at all, other tables.
PROBE_OURS, PROBE_BLANK, PROBE_OTHER = "ours", "blank", "other"
Probe = Callable[[Path, frozenset[str]], str | None]  # None: SQLite cannot read it
KINDS = {
    # kind: (application_id, tables only memdex's file of this kind has, default name)
    INDEX: (INDEX_APPLICATION_ID, frozenset({"meta", "files", "chunks"}), "index.db"),
    CACHE: (CACHE_APPLICATION_ID, frozenset({"embeddings"}), "embeddings.db"),
}


def ownership(path: Path, *, kind: str, probe: Probe) -> str:
    """MISSING: nothing there. EMPTY: 0 bytes in memdex's place or named like
    its files (replacing it loses nothing). OURS: stamped, or memdex's own
    place. LEGACY: unstamped with memdex's tables (a writer stamps it).
    Anything else raises ``NotAnIndex``."""
    application_id, tables, default_name = KINDS[kind]
    what = "index" if kind == INDEX else "embedding cache"
    stat = vet_path(path, kind=kind)
    if stat is None:
        return MISSING  # creating its folder fails with its own message
    own_place = path.parent.name == OWN_FOLDER and _base_name(path.name) == default_name
    if stat.st_size == 0:
        if own_place or path.suffix == ".db" or path.name.endswith((CREATING_SUFFIX, REBUILD_SUFFIX)):
            return EMPTY
        raise NotAnIndex(f"{path} is an empty file memdex did not create; it is left alone: choose another --db")
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        raise StorageError(f"cannot read {path} ({exc.strerror or exc})") from None
    sqlite = header[:16] == SQLITE_HEADER and len(header) == 100
    found_id = int.from_bytes(header[68:72], "big") if sqlite else 0
    if sqlite:
        if found_id == application_id:
            return OURS
        if found_id != 0:
            other = next((name for name, (app, _, _) in KINDS.items() if app == found_id), None)
            label = f"memdex's {'index' if other == INDEX else 'embedding cache'}" if other else "another program's database"
            raise NotAnIndex(f"{path} is {label}, not memdex's {what}; it is left alone: {_elsewhere(own_place)}")
        found = probe(path, tables)
        if found == PROBE_OURS:
            return LEGACY
        if own_place and found == PROBE_BLANK:
            return EMPTY
        if own_place and found == PROBE_OTHER:
            raise NotAnIndex(
                f"{path} is another program's database (its tables are not memdex's); it is left alone: "
                f"{_elsewhere(own_place)}"
            )
    if own_place:  # memdex's own file, whatever damage it has suffered (SQLite cannot read it)
        return OURS
    if kind == CACHE:
        hint = "move it away and memdex starts a new cache"
    elif path.name.endswith((CREATING_SUFFIX, REBUILD_SUFFIX)):
        hint = "memdex needs this name for a temporary index: move it away"
    else:
        hint = "choose another --db"
    raise NotAnIndex(f"{path} is not memdex's {what} (memdex never renames, replaces or deletes such a file); {hint}")


def vet_path(path: Path, *, kind: str) -> os.stat_result | None:
    """Before anything opens ``path``: neither it, its folder nor its SQLite sidecars is a
    symbolic link, and it is a regular file (a FIFO would block the first read). Its
    ``lstat``, or None when nothing is there."""
    what = "index" if kind == INDEX else "embedding cache"
    _refuse_links(path, what)
    try:
        stat = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path} ({exc.strerror or exc})") from None
    if not S_ISREG(stat.st_mode):
        raise NotAnIndex(f"{path} is not a regular file, so it cannot be memdex's {what}; choose another --db")
    return stat


def _elsewhere(own_place: bool) -> str:
    return "move it away, or choose another --db" if own_place else "choose another --db"


def _refuse_links(path: Path, what: str) -> None:
    """memdex's file, its SQLite sidecars and its folder must not be symbolic
    links: SQLite would write through them, outside the folder."""
    for candidate, label in (
        (path.parent, "folder"), (path, what), *((Path(f"{path}{s}"), f"{what}'s {s[1:]} file") for s in SIDECAR_SUFFIXES),
    ):  # fmt: skip
        try:
            link = S_ISLNK(os.lstat(candidate).st_mode)
        except OSError:
            continue
        if link:
            raise NotAnIndex(
                f"the {label} {candidate} is a symbolic link; memdex never writes through links to its own files: "
                "remove the link (or keep the index elsewhere with --db)"
            )


def _base_name(name: str) -> str:
    """``index.db`` for ``index.db``, ``index.db.rebuild``, ``index.db.rebuild.creating``..."""
    for suffix in (CREATING_SUFFIX, REBUILD_SUFFIX):
        name = name.removesuffix(suffix)
    return name


def quarantine_target(path: Path, label: str = "corrupt") -> Path:
    """A free ``<name>.<label>-<timestamp>[-N]`` name beside ``path``."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.{label}-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.{label}-{stamp}-{number}")
    return target


def prune_quarantined(path: Path, keep: int) -> None:
    """Keep the newest ``keep`` quarantined copies of ``path``; only files named
    exactly as ``quarantine_target`` names them are ever deleted."""
    own_name = re.compile(re.escape(path.name) + r"\.corrupt-\d{8}T\d{6}(-\d+)?")
    old = sorted(
        (p for p in path.parent.glob(f"{path.name}.corrupt-*") if own_name.fullmatch(p.name) and p.is_file()),
        key=lambda p: p.stat().st_mtime_ns,
    )
    for stale in old[:-keep] if keep else old:
        stale.unlink(missing_ok=True)
        Path(f"{stale}-wal").unlink(missing_ok=True)
