"""Where the encryption key of a SQLite index comes from, read when the index is opened.

In order: ``Settings.encryption_key`` (library callers), the environment variable
``MEMDEX_ENCRYPTION_KEY``, the file named by the ``encryption_key_file`` setting
(its first line; a relative path is relative to the memory root), the OS keyring
entry named by ``encryption_keyring`` (service ``memdex``, through the optional
``keyring`` package). No source set: the index is not encrypted.

A key is never printed, logged or put in an error message, and never taken
from a command-line argument (``ps`` shows those to every user).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from indexer.errors import EncryptionError

from .files import read_small_file
from .settings import Settings

KEY_ENV = "MEMDEX_ENCRYPTION_KEY"
NEW_KEY_ENV = "MEMDEX_NEW_ENCRYPTION_KEY"
KEYRING_SERVICE = "memdex"
MAX_KEY_FILE_BYTES = 64 * 1024


def key_configured(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    """Whether any key source is set (without reading a file or the keyring)."""
    env = os.environ if env is None else env
    return bool(
        settings.encryption_key or env.get(KEY_ENV) or settings.encryption_key_file or settings.encryption_keyring
    )


def encryption_key(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    """The configured key, or None when the index is not to be encrypted."""
    env = os.environ if env is None else env
    if settings.encryption_key is not None:
        return _non_empty(settings.encryption_key, "the encryption key given")
    if env.get(KEY_ENV):
        return _non_empty(env[KEY_ENV], KEY_ENV)
    if settings.encryption_key_file:
        return read_key_file(settings.encryption_key_file, root=settings.root)
    if settings.encryption_keyring:
        return read_keyring(settings.encryption_keyring)
    return None


def read_key_file(name: str | os.PathLike[str], *, root: Path) -> str:
    """The first line of a key file (a trailing newline is not part of the key)."""
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = root / path
    try:  # bounded, non-blocking, regular files only: a FIFO or /dev/zero must not hang or fill memory
        data = read_small_file(path, what="encryption key file", limit=MAX_KEY_FILE_BYTES)
    except FileNotFoundError:
        raise EncryptionError(f"cannot read the encryption key file {path} (no such file)") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EncryptionError(f"the encryption key file {path} is not UTF-8 text") from None
    lines = text.splitlines()
    return _non_empty(lines[0] if lines else "", f"the encryption key file {path}")


def read_keyring(name: str) -> str:
    """The key stored in the OS keyring under service ``memdex``, user ``name``."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise EncryptionError(
            "encryption_keyring is set but the 'keyring' package is not installed (pip install 'memdex[keyring]')"
        ) from None
    try:
        value = keyring.get_password(KEYRING_SERVICE, name)
    except keyring.errors.NoKeyringError:
        raise EncryptionError(
            f"encryption_keyring is set but no OS keyring backend is available; set {KEY_ENV} or encryption_key_file"
        ) from None
    except keyring.errors.KeyringError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EncryptionError(f"the OS keyring cannot be read ({detail}); set {KEY_ENV} or encryption_key_file") from None
    if value is None:
        raise EncryptionError(
            f"no entry {name!r} for service {KEYRING_SERVICE!r} in the OS keyring; "
            f"store the key with: keyring set {KEYRING_SERVICE} {name}"
        )
    return _non_empty(value, f"the OS keyring entry {name!r}")


def new_key(env: Mapping[str, str] | None = None, *, key_file: str | None, root: Path) -> str:
    """The key ``memdex rekey`` changes to: ``--new-key-file`` or ``MEMDEX_NEW_ENCRYPTION_KEY``."""
    env = os.environ if env is None else env
    if key_file is not None and env.get(NEW_KEY_ENV):
        raise EncryptionError(f"give the new key once: either --new-key-file or {NEW_KEY_ENV}")
    if key_file is not None:
        return read_key_file(key_file, root=Path.cwd())
    if env.get(NEW_KEY_ENV):
        return _non_empty(env[NEW_KEY_ENV], NEW_KEY_ENV)
    raise EncryptionError(f"no new key: set {NEW_KEY_ENV} or give --new-key-file")


def _non_empty(value: str, where: str) -> str:
    if not value or "\x00" in value:
        raise EncryptionError(f"{where} is empty or holds a NUL character; memdex needs a non-empty key")
    return value
