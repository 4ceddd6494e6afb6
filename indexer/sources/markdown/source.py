"""``MarkdownSource``: Markdown notes (``*.md``) as a ``Source`` — their kinds, ``parse.py`` and ``chunk.py``."""

from __future__ import annotations

import re
from datetime import date
from pathlib import PurePosixPath

from ..base import Chunk, TokenCounter
from .chunk import chunk_note
from .parse import Note, decode, parse_note, split_lines

# YYYY-MM-DD.md, or OpenClaw's YYYY-MM-DD-<slug>.md (its session-memory hook names them so).
DAILY_NAME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:-[^/]+)?\.md$")
MEMORY_NAMES = ("MEMORY.md", "memory.md")


class MarkdownSource:
    """Markdown notes: every file whose name ends in ``.md`` (lower case: ``NOTES.MD`` is not one)."""

    pattern = "*.md"

    def owns(self, rel_path: str) -> bool:
        """True for a path ending in ``.md``."""
        return rel_path.endswith(".md")

    def classify(self, rel_path: str, daily_folders: tuple[str, ...]) -> tuple[str, str | None]:
        """Kind and ISO date of a root-relative path (pure).

        ``SOUL.md`` is the soul, ``MEMORY.md`` or ``memory.md`` at the root the
        long-term memory, ``FOLDER/YYYY-MM-DD.md`` or ``FOLDER/YYYY-MM-DD-<slug>.md`` in one
        of ``daily_folders`` (root-relative folder paths) a daily log dated by its name; the
        rest are notes.
        """
        pure = PurePosixPath(rel_path)
        parts = pure.parts
        if parts == ("SOUL.md",):
            return "soul", None
        if len(parts) == 1 and parts[0] in MEMORY_NAMES:
            return "memory", None
        if len(parts) >= 2 and pure.parent.as_posix() in daily_folders:
            match = DAILY_NAME.match(parts[-1])
            if match:
                try:
                    day = date(int(match[1]), int(match[2]), int(match[3]))
                except ValueError:
                    return "note", None
                return "daily", day.isoformat()
        return "note", None

    def parse(self, data: bytes) -> Note:
        """``parse_note``: lines, frontmatter and Markdown blocks. Raises ``NotText`` for binary data."""
        return parse_note(data)

    def chunk(self, parsed: Note, *, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
        """``chunk_note``: sections split at content-defined block and line cuts within ``max_tokens``."""
        return chunk_note(parsed, count_tokens=count_tokens, max_tokens=max_tokens)

    def readable_lines(self, data: bytes) -> list[str]:
        """The raw lines, split as the chunker splits them. Raises ``NotText`` for binary data."""
        return split_lines(decode(data)[0])
