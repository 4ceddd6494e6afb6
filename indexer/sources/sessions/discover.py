"""Which files of the session folders are transcripts, under their citation paths.

A session folder's ``*.jsonl`` files, at any depth, are indexed as
``sessions/<label>/<path inside the folder>`` (``Settings.session_labels``).
Hidden files and folders, folder symlinks and file symlinks are skipped (a link
that leads out of its folder with a warning): nothing outside the configured
folders is ever read or served through them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from stat import S_ISDIR, S_ISLNK, S_ISREG

from ..discover import FileStamp, MemoryFile, is_inside, is_utf8
from .source import PREFIX, SUFFIX, session_path, split_session_path


def scan_sessions(labels: Mapping[str, Path]) -> tuple[list[MemoryFile], list[str]]:
    """Every transcript of every session folder, and one warning per path skipped."""
    found: list[MemoryFile] = []
    warnings: list[str] = []
    for label, folder in labels.items():
        _walk(label, folder, folder, found, warnings)
    found.sort(key=lambda item: item.path)
    return found, warnings


def scan_session_paths(labels: Mapping[str, Path], paths: Iterable[str]) -> tuple[list[MemoryFile], list[str]]:
    """Like ``scan_sessions`` for some citation paths (files or folders; ``sessions/``
    is all of them): a path that is gone or does not count yields nothing."""
    found: dict[str, MemoryFile] = {}
    warnings: list[str] = []
    for rel in sorted(set(paths)):
        parts = PurePosixPath(rel).parts
        if not parts or parts[0] != PREFIX or any(part.startswith(".") or part == ".." for part in parts):
            continue
        chosen = labels if len(parts) == 1 else {parts[1]: labels[parts[1]]} if parts[1] in labels else {}
        for label, folder in chosen.items():
            place = folder.joinpath(*parts[2:])
            if any(parent.is_symlink() for parent in list(place.parents)[: len(parts) - 2]):
                continue  # below a folder symlink, which scans never follow
            try:
                stat = place.lstat()
            except OSError:
                continue
            items: list[MemoryFile] = []
            if S_ISDIR(stat.st_mode):
                _walk(label, folder, place, items, warnings)
            elif rel.endswith(SUFFIX):
                _add(label, folder, place, stat, items, warnings)
            found.update((item.path, item) for item in items)
    return sorted(found.values(), key=lambda item: item.path), warnings


def place_of(root: Path, labels: Mapping[str, Path], rel_path: str) -> Path:
    """Where a scanned path is on disk, links not followed: under the root, or for a
    transcript's citation path in its session folder (for the stamp of a skipped path)."""
    split = split_session_path(rel_path)
    if split is not None and split[0] in labels:
        return labels[split[0]].joinpath(*PurePosixPath(split[1]).parts)
    return root / rel_path


def session_file(labels: Mapping[str, Path], rel_path: str) -> Path | None:
    """The real file of a transcript's citation path, when it is one a scan would index
    (in a configured folder, no hidden part, no symlink on the way); else None."""
    split = split_session_path(rel_path)
    if split is None or split[0] not in labels:
        return None
    label, inside = split
    parts = PurePosixPath(inside).parts
    if any(part.startswith(".") or part == ".." for part in parts) or PurePosixPath(inside).is_absolute():
        return None
    folder = labels[label]
    place = folder.joinpath(*parts)
    for step in [*reversed(list(place.parents)[: len(parts) - 1]), place]:
        if step.is_symlink():
            return None
    return place if is_inside(folder, Path(os.path.normpath(place))) else None


def _walk(label: str, folder: Path, start: Path, found: list[MemoryFile], warnings: list[str]) -> None:
    stack = [start]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            if current != folder or os.path.exists(folder):
                warnings.append(f"{current}: cannot list session folder ({exc.strerror or exc})")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if S_ISDIR(stat.st_mode):
                stack.append(Path(entry.path))
            elif entry.name.endswith(SUFFIX):
                _add(label, folder, Path(entry.path), stat, found, warnings)


def _add(label: str, folder: Path, place: Path, stat: os.stat_result, found: list[MemoryFile], warnings: list[str]) -> None:
    rel = session_path(label, place.relative_to(folder).as_posix())
    if S_ISLNK(stat.st_mode):
        try:
            target = place.resolve(strict=True)
        except (OSError, RuntimeError):
            target = None
        if target is None or not is_inside(folder, target):
            warnings.append(f"{rel}: skipped, symlink leads outside the session folder {folder}")
        return  # a link inside the folder: its target is indexed itself
    if not S_ISREG(stat.st_mode):
        return  # a FIFO, a device: never read
    if not is_utf8(rel):
        warnings.append(f"{rel}: skipped, file name is not valid UTF-8")
        return
    found.append(MemoryFile(rel, "session", None, FileStamp.of(stat), location=place))


def session_relevant(labels: Mapping[str, Path], event_path: str, *, is_directory: bool) -> str | None:
    """The citation path (``sessions/<label>/...``) an event in a session folder is about, or None."""
    path = Path(os.fsdecode(event_path))
    for label, folder in labels.items():
        try:
            inside = PurePosixPath(path.relative_to(folder).as_posix())
        except ValueError:
            continue
        if any(part.startswith(".") for part in inside.parts) or not is_utf8(inside.as_posix()):
            return None
        if not is_directory and not inside.name.endswith(SUFFIX):
            return None
        return session_path(label, inside.as_posix()) if inside.parts else f"{PREFIX}/{label}"
    return None
