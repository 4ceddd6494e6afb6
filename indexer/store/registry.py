"""Which engine a configuration uses: the only module outside ``store/sqlite/``
and ``store/postgres/`` that names one.

A ``postgresql://`` (or ``postgres://``) database URL selects the PostgreSQL
engine, whose module (and psycopg) loads only then; anything else is the
SQLite file at ``settings.index_path``. Adding an engine means a folder under
``store/`` with an ``engine.py`` (``open_engine`` and an ``Engine``), and one
branch here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from indexer.config.encryption import key_configured
from indexer.config.settings import Settings
from indexer.errors import ConfigError, EncryptionError, IndexerError

from .protocols import Build, Engine, TakeLock

_POSTGRES = "indexer.store.postgres.engine"


def refuse_foreign_files(settings: Settings) -> None:
    """Before anything is created beside the index: refuse files memdex did not make."""
    if not settings.database_url:
        from .sqlite.engine import refuse_foreign_files as refuse

        refuse(settings)


def open_engine(
    settings: Settings,
    *,
    write: bool,
    take_lock: TakeLock,
    make_build: Callable[[], Build[Any]] | None,
    replace_newer: bool = False,
) -> Engine:
    """The configured engine, open (``write``: created or migrated). ``make_build`` makes
    the build that repairs an unusable index on the way (None: raise ``UnusableIndex``).
    An index from a newer memdex raises ``NewerIndex`` (a server's shared schema always;
    a SQLite file unless ``replace_newer``, which moves it aside and rebuilds it)."""
    if settings.database_url:
        _refuse_server_encryption(settings)
        from .postgres.engine import open_engine as open_postgres

        return open_postgres(settings, write=write)
    from .sqlite.engine import open_engine as open_sqlite

    return open_sqlite(settings, write=write, take_lock=take_lock, make_build=make_build, replace_newer=replace_newer)


def _refuse_server_encryption(settings: Settings) -> None:
    if key_configured(settings):
        raise EncryptionError(
            "an encryption key is set, but memdex encrypts only a SQLite index; a PostgreSQL index is "
            "protected by the server's own storage encryption: unset MEMDEX_ENCRYPTION_KEY, "
            "encryption_key_file and encryption_keyring for it"
        )


def change_key(settings: Settings, *, old_key: str | None, new_key: str | None) -> Any:
    """Put the index and its cache from ``old_key`` under ``new_key`` (None: unencrypted);
    the caller holds the writer lock. Returns the engine's report (``converted``,
    ``unchanged``, ``removed_damaged_copies``)."""
    if settings.database_url:
        raise EncryptionError("memdex encrypts only a SQLite index; a PostgreSQL index uses the server's encryption")
    from .sqlite.rekey import change_key as change_sqlite_key

    return change_sqlite_key(settings, old_key=old_key, new_key=new_key)


def user_error(exc: BaseException, settings: Settings | None = None) -> IndexerError | None:
    """The one-line error for a failure of any loaded engine (disk full, server
    down...), naming a server's URL without its password; None for anything else."""
    from .sqlite.errors import as_user_error

    error = as_user_error(exc)
    if error is None and _POSTGRES in sys.modules:  # not loaded: no PostgreSQL error is possible
        from .postgres.engine import user_error as postgres_error

        error = postgres_error(exc, settings.database_url if settings else None)
    return error


def access_control(settings: Settings, command: str) -> Any:
    """The server's grants (``grant``, ``revoke``, ``list``), for the owner of a PostgreSQL
    index; an SQLite index has none (its file's permissions decide who reads it)."""
    if not settings.database_url:
        raise ConfigError(
            f"{command} is PostgreSQL-only (--db postgresql://...); an SQLite index is a file, "
            "and its permissions decide who may read it"
        )
    from .postgres.engine import Grants

    return Grants(settings.database_url)
