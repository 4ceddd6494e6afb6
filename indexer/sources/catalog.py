"""Every memory file a configuration names: the files under the root (``discover.py``) and
the transcripts of the session folders (``sessions/discover.py``), as one list. The sync
and the check ask here, so they never name a kind of file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from .discover import MemoryFile, scan, scan_paths
from .sessions.discover import place_of, scan_session_paths, scan_sessions

__all__ = ["place_of", "scan_all", "scan_all_paths"]


def scan_all(
    root: Path, *, index_dir: Path | None, daily_folders: tuple[str, ...], sessions: Mapping[str, Path]
) -> tuple[list[MemoryFile], list[str]]:
    """All memory files, sorted by path, and one warning per path skipped."""
    found, warnings = scan(root, index_dir=index_dir, daily_folders=daily_folders)
    more, more_warnings = scan_sessions(sessions)
    return sorted(found + more, key=lambda item: item.path), warnings + more_warnings


def scan_all_paths(
    root: Path, paths: Iterable[str], *, index_dir: Path | None, daily_folders: tuple[str, ...],
    sessions: Mapping[str, Path],
) -> tuple[list[MemoryFile], list[str]]:
    """Like ``scan_all`` for some paths (files or folders; a path that is gone yields nothing)."""
    paths = set(paths)
    found, warnings = scan_paths(root, paths, index_dir=index_dir, daily_folders=daily_folders)
    more, more_warnings = scan_session_paths(sessions, paths)
    return sorted(found + more, key=lambda item: item.path), warnings + more_warnings
