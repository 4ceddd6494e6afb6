"""Files memdex itself reads and writes, with the rules a handed-over folder
cannot talk it out of.

- Reading a file a user or a folder controls (``config.toml``): opened without
  blocking, it must be a regular file of at most ``limit`` bytes, and at most
  ``limit + 1`` bytes are ever read (``/dev/zero``, a FIFO or a 10 GB file is a
  one-line error, never a hang or a full memory).
- Writing memdex's own files (the ``.memdex`` folder, its lock, index, cache,
  temporaries, quarantined copies, watcher state) and the files ``memdex init``
  creates: never through a symbolic link. A link there is refused with one
  line and left alone; new files are created with ``O_EXCL | O_NOFOLLOW``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from indexer.errors import ConfigError

from .settings import INDEX_DIR_NAME

# A configuration file is a few hundred bytes; anything past this is not one.
MAX_SMALL_FILE = 1024 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def read_small_file(path: Path, *, what: str, limit: int = MAX_SMALL_FILE) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``). Raises
    ``FileNotFoundError`` when there is nothing there (callers treat a missing
    optional file as empty) and ``ConfigError`` for anything else unusable."""
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path} ({exc.strerror or exc})") from None
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise ConfigError(f"the {what} {path} is not a regular file ({_kind(found.st_mode)}); memdex reads only files")
        if found.st_size > limit:
            raise ConfigError(f"the {what} {path} is larger than {limit} bytes; it cannot be a memdex file")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # it grew while it was read
        raise ConfigError(f"the {what} {path} is larger than {limit} bytes; it cannot be a memdex file")
    return data


def refuse_link(path: Path, *, what: str) -> None:
    """Raise ``ConfigError`` when ``path`` is a symbolic link (dangling or not):
    memdex never writes through one to its own files."""
    if path.is_symlink():
        raise ConfigError(
            f"{what} {path} is a symbolic link; memdex never writes through links to its own files: "
            "remove the link (or keep the index elsewhere with --db)"
        )


# In memdex's own folder (``.memdex``), as pytest's cache folder does: a git-backed memory
# folder never commits the index, its cache or the lock.
GITIGNORE = b"# Created by memdex: the index is a cache of the Markdown, rebuilt at will; never commit it.\n*\n"


def own_folder(folder: Path) -> None:
    """Create memdex's folder (``ROOT/.memdex``) if needed, with its ``.gitignore``
    (only in a folder named ``.memdex``: a ``--db`` elsewhere names the user's folder);
    a link there is refused."""
    refuse_link(folder, what="the index folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the index folder {folder} ({exc.strerror or exc})") from None
    refuse_link(folder, what="the index folder")  # made a link meanwhile
    if folder.name == INDEX_DIR_NAME:
        try:
            create_new_file(folder / ".gitignore", GITIGNORE)  # an existing one (the user's) is left alone
        except OSError:
            pass  # a read-only folder: the index cannot be written either, which says so


def open_own_file(path: Path, *, what: str) -> int:
    """A read-write descriptor on memdex's own file ``path`` (created if
    missing), never through a link; it must be a regular file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK, 0o644)
    except OSError as exc:
        if path.is_symlink():
            refuse_link(path, what=what)
        raise ConfigError(f"cannot open {what} {path} ({exc.strerror or exc})") from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode):
        os.close(fd)
        raise ConfigError(f"{what} {path} is not a regular file; move it away")
    os.set_blocking(fd, True)
    return fd


def create_new_file(path: Path, data: bytes, *, mode: int = 0o644) -> bool:
    """Write ``data`` to a new file at ``path``. False (nothing written) when
    anything is already there: a file, a folder, a link, even a dangling one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"
