"""Converting the SQLite files between keys (``memdex encrypt``, ``decrypt``, ``rekey``).

Each file (the embedding cache, then the index) is written anew as a compact
copy under the new key (``VACUUM INTO``), checked, and renamed into place: the
old file stays whole until that rename, and free pages of the old file are not
carried over. A file already in the asked state is left as it is, so a run
that was interrupted between the two files is finished by running it again.
Damaged copies kept from earlier recoveries (``*.corrupt-*``) cannot be
converted; they are deleted, so no copy under the old key (or in the clear) stays.
Indexes from a newer memdex kept by ``memdex rebuild`` (``*.newer-*``) are whole
SQLite files: they are converted like the index, never deleted, and first: one that
cannot be converted (damaged since) stops the run before the cache and the index
change, with its name and what to do.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.config.settings import Settings
from indexer.errors import EncryptionError, NewerIndex, NotAnIndex, SchemaError, one_line

from . import connection as db
from . import encryption as crypt
from .recovery import remove_leftovers

log = logging.getLogger(__name__)

CONVERT_SUFFIX = ".convert"


@dataclass
class Conversion:
    converted: list[str] = field(default_factory=list)  # files written under the new key
    unchanged: list[str] = field(default_factory=list)  # already in the asked state
    removed_damaged_copies: int = 0


def change_key(settings: Settings, *, old_key: str | None, new_key: str | None) -> Conversion:
    """Put the index and its embedding cache under ``new_key`` (None: unencrypted).
    The caller holds the writer lock."""
    if old_key is not None or new_key is not None:
        crypt.require_cipher()
    if old_key == new_key:
        raise EncryptionError("the new key is the same as the current one; nothing to change")
    # Indexes from a newer memdex that 'memdex rebuild' kept (never deleted) are converted too.
    newer = [(path, db.INDEX) for path in _newer_copies(settings.index_path)]
    files = (*newer, (settings.cache_path, db.CACHE), (settings.index_path, db.INDEX))
    for path, kind in files:  # every file must open with the old key (or already the new) before any is written
        with _kept_copy_told((path, kind) in newer, path):
            _check_before(path, kind, old_key=old_key, new_key=new_key)
    _refuse_newer(settings.index_path, old_key=old_key, new_key=new_key)
    remove_leftovers(settings.index_path, key=old_key)
    result = Conversion()
    for path, kind in files:
        if not path.exists():
            continue
        if _convert(path, kind=kind, old_key=old_key, new_key=new_key, load_vec=settings.use_sqlite_vec,
                    kept_newer=(path, kind) in newer):  # fmt: skip
            result.converted.append(str(path))
        else:
            result.unchanged.append(str(path))
        if (path, kind) not in newer:
            result.removed_damaged_copies += _remove_damaged_copies(path)
    return result


def _check_before(path: Path, kind: str, *, old_key: str | None, new_key: str | None) -> None:
    if path.exists() and not crypt.opens_with(path, new_key):
        if old_key is None and crypt.header_state(path) == crypt.ENCRYPTED:
            raise EncryptionError(f"{path} is already encrypted with another key; change keys with 'memdex rekey'")
        db.ownership(path, kind=kind, key=old_key, allow_plain=True)
        if not crypt.opens_with(path, old_key):
            state = "encrypted" if crypt.header_state(path) == crypt.ENCRYPTED else "not encrypted"
            raise EncryptionError(f"{path} is {state}, not in the state the current key says; nothing was changed")
    refuse_linked_copy(path.with_name(path.name + CONVERT_SUFFIX))


def _refuse_newer(path: Path, *, old_key: str | None, new_key: str | None) -> None:
    """The index itself from a newer memdex: refused like every command (``NewerIndex``), unchanged."""
    if path.exists():
        version = db.schema_version(path, key=new_key if crypt.opens_with(path, new_key) else old_key)
        if version > db.SCHEMA_VERSION:
            raise NewerIndex(db.newer_message(path, version))


@contextmanager
def _kept_copy_told(kept_newer: bool, path: Path) -> Iterator[None]:
    """A kept newer copy that cannot be checked or converted (damaged since) stops the run,
    saying which file and what to do; the kept copies go first, so nothing else has changed."""
    try:
        yield
    except (SchemaError, NotAnIndex, *db.DAMAGE_ERRORS) as exc:  # damaged, not a full disk
        if not kept_newer:
            raise
        raise EncryptionError(
            f"{path.name}, an index from a newer memdex that 'memdex rebuild' kept, cannot be converted "
            f"({one_line(str(exc))}); move it out of {path.parent} and run this again: the index and its cache "
            "were not changed"
        ) from None


def _convert(path: Path, *, kept_newer: bool, **how: Any) -> bool:
    with _kept_copy_told(kept_newer, path):
        return convert(path, **how)
    raise AssertionError("unreachable")  # pragma: no cover - the context manager re-raises


def _newer_copies(path: Path) -> list[Path]:
    own_name = re.compile(re.escape(path.name) + rf"\.{db.NEWER_LABEL}-\d{{8}}T\d{{6}}(-\d+)?")
    return sorted(p for p in path.parent.glob(f"{path.name}.{db.NEWER_LABEL}-*") if own_name.fullmatch(p.name) and p.is_file())


def convert(path: Path, *, kind: str, old_key: str | None, new_key: str | None, load_vec: bool) -> bool:
    """Write ``path`` anew under ``new_key`` and rename the copy into its place.
    False when there was nothing to do (missing, or already in the asked state)."""
    if not path.exists() or crypt.opens_with(path, new_key):
        return False
    db.ownership(path, kind=kind, key=old_key, allow_plain=True)
    target = path.with_name(path.name + CONVERT_SUFFIX)
    remove_own_convert_file(target)
    try:
        source = db.open_database(path, key=old_key)
        try:
            if load_vec:
                db.load_sqlite_vec(source)
            source.execute("VACUUM INTO ?", (crypt.target_uri(target, new_key),))
        finally:
            source.close()
        if not crypt.opens_with(target, new_key):
            raise EncryptionError(f"the converted copy of {path} did not come out as asked; nothing was changed")
        db.close_for_move(db.open_database(target, key=new_key), target)  # in WAL mode, as every memdex database
        db.close_for_move(db.open_database(path, key=old_key), path)
    except BaseException:
        db.remove_database(target)
        raise
    os.replace(target, path)
    log.info("converted %s", path)
    return True


def refuse_linked_copy(path: Path) -> None:
    """A link where a conversion copy (or its sidecars) goes, even a dangling one, is refused
    before anything is written: VACUUM INTO would write through it, outside the folder."""
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in db.SIDECARS)):
        if candidate.is_symlink():
            raise EncryptionError(
                f"{candidate} is a symbolic link; memdex never writes through links to its own files: remove it"
            )


def remove_own_convert_file(path: Path) -> None:
    """A conversion copy an interrupted run left behind: an SQLite file (plain or encrypted) by memdex's name."""
    refuse_linked_copy(path)
    if not path.exists():
        return
    if not path.is_file() or (path.stat().st_size and crypt.header_state(path) not in (crypt.PLAIN, crypt.ENCRYPTED)):
        raise EncryptionError(f"{path} is not a file memdex made, and memdex needs its name for a conversion: move it away")
    db.remove_database(path)


def _remove_damaged_copies(path: Path) -> int:
    own_name = re.compile(re.escape(path.name) + r"\.corrupt-\d{8}T\d{6}(-\d+)?")
    copies = [p for p in path.parent.glob(f"{path.name}.corrupt-*") if own_name.fullmatch(p.name) and p.is_file()]
    db.prune_quarantined(path, 0)
    return len(copies)
