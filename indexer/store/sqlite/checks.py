"""SQLite's own integrity checks, for ``memdex check``: FTS5's check of the
full-text index against its rows, then SQLite's check of every page."""

from __future__ import annotations

import logging

import apsw

from .errors import BUSY_ERRORS, DAMAGE_ERRORS, READ_ONLY_ERRORS

log = logging.getLogger(__name__)

SHOWN_PER_PROBLEM = 3  # integrity_check lines named in the finding


def storage_checks(connection: apsw.Connection) -> list[str]:
    """What is corrupt, one message per finding (empty: nothing found)."""
    found = _check_full_text(connection)
    if found:
        return found  # SQLite's page check would only repeat it, or trip over it
    rows = [row[0] for row in connection.execute("PRAGMA integrity_check(20)")]
    if rows != ["ok"]:
        return [f"SQLite integrity check failed: {'; '.join(rows[:SHOWN_PER_PROBLEM])}"]
    return []


def _check_full_text(connection: apsw.Connection) -> list[str]:
    """FTS5's own check is written as an INSERT, so it needs SQLite's write lock
    for a moment; when a writer keeps it longer than the busy timeout, it is skipped."""
    try:
        connection.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
    except BUSY_ERRORS:
        log.warning("FTS5 integrity check skipped: another process is writing the index")
    except READ_ONLY_ERRORS:
        log.warning("FTS5 integrity check skipped: the index can only be read here")
    except DAMAGE_ERRORS:
        return ["the full-text index does not match its rows (FTS5 integrity check)"]
    return []
