"""What every kind of memory file provides (the ``Source`` protocol), and the chunks all kinds produce.

A source owns some root-relative paths (Markdown notes: ``*.md``; session
transcripts: ``sessions/<folder>/*.jsonl``), gives each
a kind and a date, parses a file's bytes and cuts the result into chunks. The
sync, the scanner, the watcher and ``get`` ask ``registry.py`` which source
owns a path instead of testing a suffix. Chunks are raw-file line ranges,
whatever the source, so ``get`` serves any chunk from the file's own lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class Chunk:
    start_line: int
    end_line: int
    heading: str  # heading path, e.g. "Preferences > Editor"
    text: str  # the raw lines start..end joined with "\n"
    embed_text: str  # what the model sees
    hash: str  # of embed_text: the embedding cache key, computed once
    oversized: bool = False
    date: str | None = None  # ISO day of the chunk itself (a transcript's turns); None: the file's date


def embedded_text(heading: str, text: str) -> str:
    """What the model sees for a chunk: its heading path, then its lines."""
    return f"{heading}\n{text}" if heading else text


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class ParsedBlock(Protocol):
    """A block of a parsed file, as the sync reads it: where it starts and what it is."""

    @property
    def start(self) -> int: ...  # 1-based raw-file line

    @property
    def kind(self) -> str: ...  # "heading" marks a heading line (an oversized one is reported as such)


class Parsed(Protocol):
    """A parsed file, as the sync reads it (``markdown.parse.Note`` is one)."""

    @property
    def frontmatter(self) -> dict[str, Any]: ...  # stored with the file; its "title" names the file

    @property
    def blocks(self) -> Sequence[ParsedBlock]: ...

    @property
    def warnings(self) -> list[str]: ...  # each reported with the file's path


ParsedT = TypeVar("ParsedT", bound=Parsed)


class Source(Protocol[ParsedT]):
    """One kind of memory file: which paths it owns, and how it classifies, parses and chunks them."""

    pattern: str  # the paths it owns, for messages: "*.md"

    def owns(self, rel_path: str) -> bool:
        """True when the root-relative POSIX path ``rel_path`` is this source's (by name only:
        hidden paths and symlinks are the scanner's business)."""
        ...

    def classify(self, rel_path: str, daily_folders: tuple[str, ...]) -> tuple[str, str | None]:
        """Kind and ISO date of an owned path (pure); ``daily_folders`` are root-relative folders of daily logs."""
        ...

    def parse(self, data: bytes) -> ParsedT:
        """Parse a file's bytes. Raises ``NotText`` (``markdown.parse``) for binary data."""
        ...

    def chunk(self, parsed: ParsedT, *, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
        """Chunks of a parsed file whose embedded texts have at most ``max_tokens`` tokens (a single
        line that is larger is one chunk flagged ``oversized``)."""
        ...

    def readable_lines(self, data: bytes) -> list[str]:
        """The file's lines as ``get`` shows them, one per raw line (a chunk's text is
        lines ``start..end`` of these). Raises ``NotText`` for binary data."""
        ...


@runtime_checkable
class AppendOnly(Protocol):
    """A source whose files are logs that only grow (session transcripts). When such a file
    only grew, the sync parses it from the first line of its last stored chunk on
    (``parse_from``) and keeps the chunks before: its chunker must cut a file into the
    same chunks whether it starts at line 1 or at the start of any chunk it made."""

    def parse_from(self, data: bytes, first_line: int, *, warned_through: int = 0) -> Parsed:
        """Parse ``data``, the file's bytes from the start of line ``first_line`` on. Lines up to
        ``warned_through`` were read whole before: what is wrong with them was said then."""
        ...
