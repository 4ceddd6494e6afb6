"""Encryption at rest for the SQLite files, through SQLite3 Multiple Ciphers
(the ``apsw-sqlite3mc`` package, which installs APSW's own ``apsw`` module with
the cipher built in; the default ChaCha20-Poly1305 scheme).

Every database memdex opens with a key gets it first, before SQLite reads a
page, and keeps temporary tables and sorts in memory: the index, the embedding
cache, their WAL and every rebuild, quarantine or conversion file are encrypted.

A file is told apart by its first 100 bytes: plain SQLite starts with "SQLite
format 3"; an encrypted one starts with a random salt but keeps bytes 16-23
(page size, versions, reserved bytes, payload fractions) in the clear. Opening
one whose first page does not decrypt is a wrong key, never damage: nothing is
moved, rebuilt or written.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import quote

import apsw

from indexer.errors import EncryptionError, NotAnIndex

from .ownership import KINDS, SQLITE_HEADER

PLAIN, ENCRYPTED, OTHER = "plain", "encrypted", "other"
KEY_HINT = "set MEMDEX_ENCRYPTION_KEY, or the encryption_key_file or encryption_keyring setting"


def available() -> bool:
    """Whether the loaded SQLite can encrypt (``apsw-sqlite3mc`` rather than plain ``apsw``)."""
    return hasattr(apsw, "mc_version")


def require_cipher() -> None:
    if not available():
        raise EncryptionError(
            "an encryption key is set but this SQLite has no encryption; install it over plain APSW "
            "with: pip install --force-reinstall --no-deps 'apsw-sqlite3mc>=3.54'"
        )


def header_state(path: Path) -> str | None:
    """PLAIN, ENCRYPTED or OTHER for a file's first 100 bytes; None when it is missing, short or unreadable."""
    try:  # never through a link, never blocking on a FIFO
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        header = os.read(fd, 100) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(header) < 100:
        return None
    if header[:16] == SQLITE_HEADER:
        return PLAIN
    size = int.from_bytes(header[16:18], "big")
    size = 65536 if size == 1 else size
    page_size_ok = 512 <= size <= 65536 and size & (size - 1) == 0
    # Reserved bytes per page hold the cipher's nonce and tag: never 0 for memdex's scheme.
    if page_size_ok and header[18] in (1, 2) and header[19] in (1, 2) and header[20] > 0 and header[21:24] == b"\x40\x20\x20":
        return ENCRYPTED
    return OTHER


def apply_key(connection: apsw.Connection, key: str) -> None:
    """Key a connection before anything is read (a new file is then written encrypted);
    temporary tables and sorts stay in memory, never in an unencrypted temporary file."""
    require_cipher()
    if connection.pragma("hexkey", key.encode("utf-8").hex()) != "ok":
        raise EncryptionError("SQLite did not accept the encryption key")
    connection.pragma("temp_store", "memory")


def wrong_key(path: Path) -> EncryptionError:
    return EncryptionError(
        f"cannot decrypt {path} with the configured key (a wrong key, or its first page is damaged); "
        "nothing was changed"
    )


def check(path: Path, *, kind: str, key: str | None) -> bool:
    """Refuse a file whose encryption does not match ``key``: encrypted without a
    key, not encrypted with one (a plain file memdex made: converting it is
    'memdex encrypt'), or a key that does not decrypt it. True when the file is
    encrypted, decrypts with ``key`` and carries memdex's stamp for ``kind``; False
    when ``ownership`` decides (plain, missing, empty, damaged)."""
    state = header_state(path)
    if state == ENCRYPTED:
        if key is None:
            raise EncryptionError(f"{path} is encrypted; {KEY_HINT} to open it")
        application_id, _, _ = KINDS[kind]
        found = read_application_id(path, key)
        if found != application_id:
            raise NotAnIndex(f"{path} is an encrypted database that is not memdex's {kind}; it is left alone")
        return True
    return False


def refuse_plain(path: Path) -> None:
    raise EncryptionError(
        f"{path} is not encrypted, but an encryption key is set; run 'memdex encrypt' to encrypt it "
        "(or unset the key to use it unencrypted)"
    )


def read_application_id(path: Path, key: str) -> int:
    """The application_id of an encrypted file, read with ``key`` (``wrong_key`` if page 1 does not decrypt)."""
    last: Exception | None = None
    for query in ("mode=ro", "immutable=1"):
        try:
            connection = apsw.Connection(_uri(path, query), flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        except apsw.Error as exc:
            last = exc
            continue
        try:
            apply_key(connection, key)
            return int(connection.pragma("application_id"))
        except (apsw.NotADBError, apsw.CorruptError):
            raise wrong_key(path) from None
        except (apsw.CantOpenError, apsw.ReadOnlyError, apsw.BusyError) as exc:
            last = exc
        finally:
            connection.close()
    raise EncryptionError(f"cannot read {path} ({last})") from None


def opens_with(path: Path, key: str | None) -> bool:
    """Whether ``path`` is in the state ``key`` asks for: encrypted with that key, or plain for None."""
    state = header_state(path)
    if key is None:
        return state == PLAIN
    if state != ENCRYPTED:
        return False
    try:
        read_application_id(path, key)
    except EncryptionError:
        return False
    return True


def target_uri(path: Path, key: str | None) -> str:
    """The URI ``VACUUM INTO`` writes a copy to, under ``key`` (None: unencrypted)."""
    # "key=" (empty) makes the copy plain; without it the copy would take the source's key.
    return _uri(path, f"hexkey={key.encode('utf-8').hex()}" if key is not None else "key=")


def _uri(path: Path, query: str) -> str:
    return f"file:{quote(os.fspath(path), safe='/')}?{query}"
