"""Pure parsing: bytes of a note -> text lines, frontmatter and Markdown blocks.

Line numbers are those of the raw file: 1-based, frontmatter counted. Line
breaks are split exactly as markdown-it-py splits them (``\\r\\n``, ``\\r`` and
``\\n``), so block maps and ``get`` agree with each other.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

NEWLINES = re.compile(r"\r\n?")
FRONTMATTER_FENCE = "---"
FRONTMATTER_END = ("---", "...")
BLOCK_OPENERS = {
    "paragraph_open", "fence", "code_block", "table_open", "blockquote_open",
    "hr", "html_block", "heading_open",
}  # fmt: skip
LIST_OPENERS = {"bullet_list_open", "ordered_list_open"}



@functools.cache
def _markdown():  # -> MarkdownIt; imported on first use: commands that parse nothing start faster
    from markdown_it import MarkdownIt

    # Only block structure and line maps are used: inline parsing is skipped.
    return MarkdownIt("commonmark").enable("table").disable(["inline", "text_join"])


class NotText(ValueError):
    """The bytes are not a text file (they contain NUL bytes)."""


@dataclass(frozen=True)
class Block:
    """A top-level Markdown block (a list contributes one block per item)."""

    start: int  # 1-based, inclusive, raw-file line numbers
    end: int
    kind: str  # heading, paragraph, list_item, fence, table, ...
    level: int = 0  # heading level, 0 for other blocks
    title: str = ""  # heading text


@dataclass(frozen=True)
class Note:
    lines: list[str]  # raw lines, index 0 is line 1
    frontmatter: dict[str, Any]
    body_start: int  # first line after the frontmatter (1-based)
    blocks: list[Block]
    warnings: list[str] = field(default_factory=list)


def decode(data: bytes) -> tuple[str, list[str]]:
    """Decode note bytes as UTF-8; invalid bytes become U+FFFD with a warning."""
    if b"\x00" in data:
        raise NotText("binary file (contains NUL bytes)")
    warnings: list[str] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        warnings.append(f"invalid UTF-8 at byte {exc.start}; bad bytes shown as U+FFFD")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, warnings


def split_lines(text: str) -> list[str]:
    """Split like markdown-it does. A trailing newline does not open a new line."""
    normalized = NEWLINES.sub("\n", text)
    if normalized.endswith("\n"):
        normalized = normalized[:-1]
    return normalized.split("\n") if normalized else []


def parse_note(data: bytes) -> Note:
    """Parse a note's bytes. Raises ``NotText`` for binary data."""
    text, warnings = decode(data)
    lines = split_lines(text)
    meta, body_start, fm_warning = read_frontmatter(lines)
    if fm_warning:
        warnings.append(fm_warning)
    body = "\n".join(lines[body_start - 1 :])
    blocks = markdown_blocks(body, offset=body_start - 1, lines=lines)
    return Note(lines=lines, frontmatter=meta, body_start=body_start, blocks=blocks, warnings=warnings)


def read_frontmatter(lines: list[str]) -> tuple[dict[str, Any], int, str | None]:
    """Return (metadata, first body line, warning).

    The frontmatter is the YAML between a first line ``---`` and the next
    ``---`` or ``...`` line. python-frontmatter parses it; if that fails, the
    lines are treated as ordinary text (nothing is hidden from search) and a
    warning says why.
    """
    if not lines or lines[0].rstrip() != FRONTMATTER_FENCE:
        return {}, 1, None
    for index in range(1, len(lines)):
        if lines[index].rstrip() in FRONTMATTER_END:
            closing = index
            break
    else:
        return {}, 1, None  # a lone --- is a thematic break, not frontmatter
    import frontmatter  # on first use, like markdown-it

    try:
        data = frontmatter.YAMLHandler().load("\n".join(lines[1:closing]))
    except Exception as exc:  # yaml raises many types; all mean "not valid YAML"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {}, 1, f"frontmatter is not valid YAML ({first_line}); indexed as text"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return {}, 1, f"frontmatter is a YAML {type(data).__name__}, not key: value pairs; indexed as text"
    return _json_safe(data), closing + 2, None


def _json_safe(value: Any) -> Any:
    """YAML gives dates, datetimes and non-string keys; the files table stores JSON."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):  # no order of its own: sorted, so a rebuild stores the same
        return sorted((_json_safe(item) for item in value), key=str)
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def markdown_blocks(body: str, *, offset: int, lines: list[str]) -> list[Block]:
    """Top-level blocks of ``body`` with raw-file line ranges (trailing blanks trimmed)."""
    tokens = _markdown().parse(body)
    blocks: list[Block] = []
    for index, token in enumerate(tokens):
        if token.map is None or token.nesting == -1:
            continue
        if token.level == 0 and token.type in BLOCK_OPENERS:
            kind = token.type.removesuffix("_open")
            level, title = 0, ""
            if token.type == "heading_open":
                level, title = int(token.tag[1]), tokens[index + 1].content.strip()
            blocks.append(_block(token.map, offset, lines, kind, level, title))
        elif token.level == 1 and token.type == "list_item_open":
            blocks.append(_block(token.map, offset, lines, "list_item", 0, ""))
    return blocks


def _block(span: list[int], offset: int, lines: list[str], kind: str, level: int, title: str) -> Block:
    start, end = span[0] + offset + 1, span[1] + offset
    while end > start and not lines[end - 1].strip():
        end -= 1
    return Block(start=start, end=end, kind=kind, level=level, title=title)
