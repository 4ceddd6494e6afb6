"""SQLite's errors as memdex reads them: which mean damage (a rebuild from the
Markdown fixes it), which mean a lock or a read-only file, and the one-line
message a user gets for the rest (disk full, permissions, I/O)."""

from __future__ import annotations

import re

import apsw

from indexer.errors import StorageError

# What SQLite raises for a damaged file, at open or in the middle of a run.
DAMAGE_ERRORS: tuple[type[Exception], ...] = (apsw.CorruptError, apsw.NotADBError)
# What SQLite raises when another connection holds a lock past the busy timeout.
BUSY_ERRORS: tuple[type[Exception], ...] = (apsw.BusyError, apsw.LockedError)
# What SQLite raises for a write on a connection opened read-only (or a read-only file).
READ_ONLY_ERRORS: tuple[type[Exception], ...] = (apsw.ReadOnlyError, apsw.CantOpenError)
# sqlite-vec reports a damaged vec0 table as a plain SQL error with these words.
VEC_DAMAGE = re.compile(r"(?i)vector blob|shadow table|sqlite-vec error|chunk position|could not (find|fetch|extract)")


def one_line_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def as_user_error(exc: BaseException) -> StorageError | None:
    """The one-line error for an SQLite failure that is not damage (disk full,
    read-only file or folder, I/O error), or None for anything else."""
    if not isinstance(exc, apsw.Error):
        return None
    # After SQLITE_FULL or an I/O error SQLite has already rolled the transaction
    # back, so `with connection:` fails again ("cannot rollback"): name the first cause.
    chain, seen = exc, 0
    while chain is not None and seen < 10:
        if isinstance(chain, (apsw.FullError, apsw.ReadOnlyError, apsw.CantOpenError, apsw.IOError, apsw.PermissionsError)):
            exc = chain
            break
        chain, seen = chain.__cause__ or chain.__context__, seen + 1
    detail = one_line_error(exc)
    if isinstance(exc, apsw.FullError):
        return StorageError(
            f"the disk holding the index is full ({detail}); files not yet written keep their old rows: "
            "free some space and run 'memdex index' again"
        )
    if isinstance(exc, (apsw.ReadOnlyError, apsw.CantOpenError, apsw.PermissionsError)):
        return StorageError(f"cannot write the index or its folder ({detail}); check its permissions")
    if isinstance(exc, apsw.IOError):
        return StorageError(f"disk I/O error on the index ({detail}); the next 'memdex index' retries")
    if isinstance(exc, apsw.TooBigError):
        return StorageError(f"a value is too big for SQLite ({detail})")
    return StorageError(f"SQLite error: {detail}")


def is_damage(exc: BaseException) -> bool:
    """SQLite's corruption errors, sqlite-vec's errors for its damaged tables, and
    text that no longer decodes (memdex only ever stores valid UTF-8)."""
    if isinstance(exc, (*DAMAGE_ERRORS, UnicodeDecodeError)):
        return True
    return isinstance(exc, apsw.SQLError) and VEC_DAMAGE.search(str(exc)) is not None
