"""Errors the library raises for conditions a user can fix.

The CLI turns every ``IndexerError`` into one line on stderr and a non-zero
exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class IndexerError(Exception):
    """Base class for user-facing errors."""

    exit_code = 1


class ConfigError(IndexerError):
    """Bad settings: missing root, unknown model, bad option value."""


class UsageError(ConfigError):
    """A call the command cannot mean (an empty query): exit 64, EX_USAGE, like a bad option."""

    exit_code = 64


class PathError(IndexerError):
    """A path that is missing, not a memory file, or outside the root."""


class NotAnIndex(ConfigError):
    """``--db`` (or a file derived from it) names something memdex did not create:
    it is never renamed, replaced or deleted."""


class EncryptionError(IndexerError):
    """A missing or wrong encryption key, an index encrypted or not against the
    configuration, or no cipher support: the files are left exactly as they were."""


class StorageError(IndexerError):
    """SQLite cannot write or read the index: disk full, read-only, I/O error."""


class Unavailable(StorageError):
    """The index's server cannot be reached now (down, restarting, unreachable):
    trying again later may work, so long-running commands retry."""


class SchemaError(IndexerError):
    """The index was written by a newer memdex, or is not a memdex index."""


class NewerIndex(SchemaError):
    """The index was written by a newer memdex (a higher schema version than this code
    knows): every command refuses it and leaves it as it is; only ``memdex rebuild``
    moves it aside (kept, never pruned) and builds a new index from the Markdown. Its own
    exit code: ``check`` exits 1 for drift and 2 for corruption, and this is neither."""

    exit_code = 4


class UnusableIndex(SchemaError):
    """The index file is corrupt, truncated or not a database.

    Writers recover from it on their own (quarantine and rebuild); a reader
    that cannot take the writer lock reports it.
    """

    exit_code = 2


class IndexReplaced(IndexerError):
    """The index file a long-running writer holds was deleted or replaced by someone else."""


class RootReplaced(IndexReplaced):
    """The memory root was moved or replaced, and the index inside it went with it:
    the watcher must start over on the folder now at the configured path."""


class ModelError(IndexerError):
    """The embedding model cannot be loaded or does not match the index."""


class LockedError(IndexerError):
    """Another process holds the index's writer lock."""

    exit_code = 3


def mib(size: int) -> str:
    """A size in messages, in MiB: one decimal, or two significant digits below 0.1 MiB
    (a small configured bound read "0.0 MiB")."""
    value = size / 2**20
    return f"{value:.1f} MiB" if value >= 0.1 or value == 0 else f"{value:.2g} MiB"


def one_line(text: str) -> str:
    """Escape newlines, other control characters and undecodable bytes (file names may hold any)."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
