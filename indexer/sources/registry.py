"""The sources memdex reads, and which one owns a path.

Everything that asks "is this a memory file?" asks here: the scanner and
``get`` (``discover.py``), the watcher and MCP's ``memory_get``; the sync reads
a file with the source that owns it. A new kind of memory file is one more
``Source`` (``base.py``) in ``SOURCES``.
"""

from __future__ import annotations

from typing import Any

from .base import Source
from .markdown.source import MarkdownSource
from .sessions.source import SessionSource

# The sources of files under the memory root; the first that owns a path reads it.
SOURCES: tuple[Source[Any], ...] = (MarkdownSource(),)
# Transcripts live in their own folders (``Settings.session_folders``), cited as
# ``sessions/<label>/...``; with and without tool traffic.
SESSIONS = {False: SessionSource(tools=False), True: SessionSource(tools=True)}


def source_for(rel_path: str, *, session_tools: bool = False) -> Source[Any] | None:
    """The source that owns the POSIX path ``rel_path`` (root-relative, or a session
    citation path), or None. ``session_tools``: transcripts' tool traffic is read too."""
    found = next((source for source in SOURCES if source.owns(rel_path)), None)
    if found is None and SESSIONS[False].owns(rel_path):
        return SESSIONS[bool(session_tools)]
    return found


def is_source_file(rel_path: str) -> bool:
    """True when a source of root files owns the root-relative ``rel_path`` (by name:
    hidden paths are the caller's business). Session transcripts are not root files."""
    return any(source.owns(rel_path) for source in SOURCES)


def patterns() -> str:
    """The patterns of the owned paths, comma-separated, for messages (e.g. ``*.md``)."""
    return ", ".join(source.pattern for source in SOURCES)
