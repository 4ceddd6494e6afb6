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

# The first source that owns a path reads it.
SOURCES: tuple[Source[Any], ...] = (MarkdownSource(),)


def source_for(rel_path: str) -> Source[Any] | None:
    """The source that owns the root-relative POSIX path ``rel_path``, or None."""
    return next((source for source in SOURCES if source.owns(rel_path)), None)


def is_source_file(rel_path: str) -> bool:
    """True when a source owns ``rel_path`` (by name: hidden paths are the caller's business)."""
    return source_for(rel_path) is not None


def patterns() -> str:
    """The patterns of the owned paths, comma-separated, for messages (e.g. ``*.md``)."""
    return ", ".join(source.pattern for source in SOURCES)
