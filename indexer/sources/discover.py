"""Which files under the memory root are memory files, their kinds and dates.

Also the one place that decides whether a path stays inside the root, for the
scanner and for ``get`` alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from stat import S_ISDIR, S_ISLNK, S_ISREG

from indexer.errors import PathError

from .registry import is_source_file, patterns, source_for

# Folders whose YYYY-MM-DD.md files are daily logs: memdex's daily/ and an
# OpenClaw workspace's memory/ (configurable: Settings.daily_folders).
DEFAULT_DAILY_FOLDERS: tuple[str, ...] = ("daily", "memory")


@dataclass(frozen=True)
class FileStamp:
    """What the stat check compares: a file whose stamp is unchanged is not read."""

    size: int
    mtime_ns: int
    ctime_ns: int  # changes on any write, a rename over the file or utime: an mtime can be restored
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileStamp:
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


@dataclass(frozen=True)
class MemoryFile:
    """A memory file found on disk: its root-relative POSIX path and stat."""

    path: str
    kind: str
    date: str | None
    stamp: FileStamp
    target: str | None = None  # for a symlink: the root-relative path it leads to
    location: Path | None = None  # a file outside the root (a session transcript): where it is

    def file(self, root: Path) -> Path:
        """The file to read: outside the root, under it, or a symlink's vetted target."""
        return self.location or root / (self.target or self.path)


def classify(rel_path: str, daily_folders: tuple[str, ...] = DEFAULT_DAILY_FOLDERS) -> tuple[str, str | None]:
    """Kind and ISO date of a root-relative path (pure), as the source that owns it
    classifies it (Markdown: ``MarkdownSource.classify``); a path no source owns is a note.

    ``daily_folders`` are the root-relative folders whose dated files are daily logs.
    """
    source = source_for(rel_path)
    return source.classify(rel_path, daily_folders) if source is not None else ("note", None)


def is_inside(root: Path, candidate: Path) -> bool:
    """True when ``candidate`` (already resolved) is ``root`` or below it."""
    return candidate == root or root in candidate.parents


def scan(
    root: Path,
    *,
    index_dir: Path | None = None,
    start: Path | None = None,
    daily_folders: tuple[str, ...] = DEFAULT_DAILY_FOLDERS,
) -> tuple[list[MemoryFile], list[str]]:
    """Walk ``root`` (or only the folder ``start`` below it) and return the
    memory files plus one warning per skipped path.

    Hidden folders and files, the index's own folder, folder symlinks (which
    could loop or duplicate files) and file symlinks that lead anywhere but to a
    file memdex would index itself (``link_refusal``) are skipped.
    """
    found: list[MemoryFile] = []
    warnings: list[str] = []
    skip_dir = index_dir.resolve() if index_dir is not None else None
    stack = [start or root]
    while stack:
        folder = stack.pop()
        prefix = "" if folder == root else folder.relative_to(root).as_posix() + "/"
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if folder == root:  # never read "no files" into a root that is gone or unreadable
                raise PathError(f"cannot list the memory root {root} ({exc.strerror or exc}); nothing changed") from None
            warnings.append(f"{folder}: cannot list folder ({exc.strerror or exc})")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    path = Path(entry.path)
                    if skip_dir is None or path != skip_dir:
                        stack.append(path)
                    continue
                if entry.is_symlink():
                    if is_source_file(rel):
                        _add_symlinked(root, Path(entry.path), found, warnings, daily_folders)
                    continue
                if not is_source_file(rel) or not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished between listing and stat: not there any more
            if not _storable(rel, warnings):
                continue
            found.append(_memory_file(rel, stat, daily_folders=daily_folders))
    found.sort(key=lambda f: f.path)
    return found, warnings


def scan_paths(
    root: Path,
    paths: Iterable[str],
    *,
    index_dir: Path | None = None,
    daily_folders: tuple[str, ...] = DEFAULT_DAILY_FOLDERS,
) -> tuple[list[MemoryFile], list[str]]:
    """Like ``scan``, for some root-relative paths only: a folder is walked, a
    file is looked at alone, and a path that is gone (or does not count)
    yields nothing. Each path is judged by the same rules as in a full scan.
    """
    found: dict[str, MemoryFile] = {}
    warnings: list[str] = []
    skip_dir = index_dir.resolve() if index_dir is not None else None
    if not root.is_dir():  # as in scan: a root that is gone must not read as "these files are gone"
        raise PathError(f"cannot list the memory root {root} (it is gone or not a folder); nothing changed")
    for rel in sorted(set(paths)):
        pure = PurePosixPath(rel)
        if not rel or pure.is_absolute() or any(part.startswith(".") for part in pure.parts):
            continue  # hidden, or "..": never part of the memory
        path = root / rel
        if skip_dir is not None and (path == skip_dir or skip_dir in path.parents):
            continue
        if any(parent.is_symlink() for parent in list(path.parents)[: len(pure.parts) - 1]):
            continue  # below a folder symlink, which scans never follow
        try:
            stat = path.lstat()
        except OSError:
            continue  # gone
        if S_ISDIR(stat.st_mode):
            files, more = scan(root, index_dir=index_dir, start=path, daily_folders=daily_folders)
            found.update((item.path, item) for item in files)
            warnings.extend(more)
        elif is_source_file(rel):
            if S_ISLNK(stat.st_mode):
                linked: list[MemoryFile] = []
                _add_symlinked(root, path, linked, warnings, daily_folders)
                found.update((item.path, item) for item in linked)
            elif S_ISREG(stat.st_mode) and _storable(rel, warnings):
                found[rel] = _memory_file(rel, stat, daily_folders=daily_folders)
    return sorted(found.values(), key=lambda f: f.path), warnings


def _add_symlinked(
    root: Path, link: Path, found: list[MemoryFile], warnings: list[str], daily_folders: tuple[str, ...]
) -> None:
    rel = link.relative_to(root).as_posix()
    if not _storable(rel, warnings):
        return
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        warnings.append(f"{rel}: skipped, broken symlink")
        return
    refusal = link_refusal(root, target)
    if refusal is not None:
        warnings.append(f"{rel}: skipped, {refusal}")
        return
    try:
        stat = target.stat()
    except OSError:
        return  # gone meanwhile
    if not S_ISREG(stat.st_mode):
        return  # a folder, a FIFO, a device: never read
    found.append(_memory_file(rel, stat, target=target.relative_to(root).as_posix(), daily_folders=daily_folders))


def link_refusal(root: Path, target: Path) -> str | None:
    """Why a symlink (or a path through one) that resolves to ``target`` is not
    followed, or None: it is followed only to a file memdex would index itself
    (inside the root, no hidden part, a file a source owns). The scanner, the
    watcher's targeted syncs and ``get``/``memory_get`` all ask here."""
    if not is_inside(root, target):
        return "symlink leads outside the memory root"
    rel = target.relative_to(root).as_posix()
    if any(part.startswith(".") for part in PurePosixPath(rel).parts):
        return "symlink leads to a hidden file or folder, which memdex does not index"
    if not is_source_file(rel):
        return f"symlink leads to a file that is not a memory file ({patterns()})"
    return None


def _memory_file(
    rel: str, stat: os.stat_result, *, target: str | None = None, daily_folders: tuple[str, ...]
) -> MemoryFile:
    kind, day = classify(rel, daily_folders)
    return MemoryFile(rel, kind, day, FileStamp.of(stat), target)


def is_utf8(text: str) -> bool:
    """False for text holding lone surrogates (undecodable bytes of a file name or argument):
    SQLite text must be UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable(rel: str, warnings: list[str]) -> bool:
    """A name with undecodable bytes cannot be stored: it is skipped with a warning."""
    if is_utf8(rel):
        return True
    warnings.append(f"{rel}: skipped, file name is not valid UTF-8")
    return False


def resolve_inside(root: Path, user_path: str) -> tuple[str, Path]:
    """Map a user-supplied path to (root-relative POSIX path, real file path).

    Accepts paths relative to the root or absolute paths inside it. Refuses
    ``..`` escapes, absolute paths elsewhere, and symlinks that lead anywhere
    but to a memory file inside the root (``link_refusal``).
    """
    rel, lexical = lexical_inside(root, user_path)
    try:
        real = lexical.resolve(strict=True)
    except FileNotFoundError:
        raise PathError(f"{user_path}: no such file under {root}") from None
    except (OSError, RuntimeError) as exc:
        raise PathError(f"{user_path}: cannot resolve ({exc})") from None
    if not is_inside(root, real):
        raise PathError(f"{user_path}: symlink leads outside the memory root")
    if not real.is_file():
        raise PathError(f"{user_path}: not a file")
    refuse_unindexed(root, rel, user_path)
    if real != lexical:  # a link on the way: followed only to a file memdex would index itself
        refusal = link_refusal(root, real)
        if refusal is not None:
            raise PathError(f"{user_path}: {refusal}")
    return rel, real


def lexical_inside(root: Path, user_path: str) -> tuple[str, Path]:
    """(root-relative POSIX path, normalised path) of a user-supplied path, which need not
    exist; ``..`` escapes and absolute paths elsewhere are refused."""
    if not user_path or "\x00" in user_path:
        raise PathError("empty or invalid path")
    given = Path(user_path)
    if user_path.startswith("~/") and not (root / given).exists():
        given = given.expanduser()  # "~user" and a file really named "~x.md" are never expanded
    joined = given if given.is_absolute() else root / given
    lexical = Path(os.path.normpath(joined))
    if not is_inside(root, lexical):
        raise PathError(f"{user_path}: outside the memory root {root}")
    return lexical.relative_to(root).as_posix(), lexical


def refuse_unindexed(root: Path, rel: str, user_path: str) -> None:
    """``get`` serves only what a scan indexes: files a source owns, nothing hidden, no folder symlinks."""
    parts = PurePosixPath(rel).parts
    if any(part.startswith(".") for part in parts):
        raise PathError(f"{user_path}: hidden files and folders are not memory files; memdex does not serve them")
    if not is_source_file(rel):
        raise PathError(f"{user_path}: not a memory file (memdex indexes and serves only {patterns()} files)")
    folder = root
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise PathError(f"{user_path}: below a folder symlink, which memdex does not index")
