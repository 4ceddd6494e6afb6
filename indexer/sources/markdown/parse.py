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


# Frontmatter bounds: YAML aliases let a few hundred bytes expand to gigabytes
# ("billion laughs") or refer to themselves. Past these, the frontmatter is
# indexed as plain text with a warning naming the file.
MAX_YAML_ALIASES = 100
MAX_FRONTMATTER_DEPTH = 50
FRONTMATTER_EXPANSION_CHARS = 64 * 1024  # allowed beyond twice the frontmatter's own length


class NotText(ValueError):
    """The bytes are not a text file (a binary signature, or many NUL bytes)."""


class FrontmatterTooLarge(ValueError):
    """Frontmatter that expands past memdex's bounds or refers to itself."""


def _load_yaml(source: str) -> Any:
    """Safe-load YAML after counting its aliases (a first pass over the parser's events)."""
    import frontmatter  # on first use, like markdown-it: commands that parse nothing start faster
    import yaml

    # libyaml when PyYAML has it (several times faster), else the pure-Python loader.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    aliases = 0
    for event in yaml.parse(source, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise FrontmatterTooLarge(f"uses more than {MAX_YAML_ALIASES} YAML aliases")
    return frontmatter.YAMLHandler().load(source, Loader=loader)


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


# Files starting like these are binary whatever else they hold. (Only signatures
# with bytes prose never starts with: "%PDF-", "GIF89a" or "ID3" could begin a
# note; such files are caught by their control bytes instead.)
BINARY_SIGNATURES = (
    b"\x89PNG", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b", b"\xfd7zXZ", b"7z\xbc\xaf",
    b"\x7fELF", b"SQLite format 3\x00", b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe", b"\x00asm",
)  # fmt: skip
# Otherwise a file is binary when more than one of its bytes, and more than this
# share of them, are NUL or other control bytes that text does not use: a
# stray NUL (a paste, a bad editor plugin) does not hide a whole note.
MAX_CONTROL_SHARE = 0.01
CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\x0b\x0c\r\x1b")
BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"), (b"\xef\xbb\xbf", "utf-8"),
)  # fmt: skip


def decode(data: bytes) -> tuple[str, list[str]]:
    """Decode note bytes: UTF-8, or UTF-16/32 when the file starts with their
    byte-order mark. Invalid bytes become U+FFFD, NUL characters too, each with
    a warning. Raises ``NotText`` for binary data (a known binary signature, or
    NUL or control bytes in more than 1% of a UTF-8 file)."""
    warnings: list[str] = []
    encoding = next(((name, len(bom)) for bom, name in BOMS if data.startswith(bom)), None)
    if encoding is None or encoding[0] == "utf-8":
        if data.startswith(BINARY_SIGNATURES):
            raise NotText("binary file (its first bytes are a binary format's signature)")
        controls = len(data) - len(data.translate(None, CONTROL_BYTES))
        if controls > 1 and controls > MAX_CONTROL_SHARE * len(data):
            raise NotText(f"binary file ({controls} NUL or control bytes)")
    name, skip = encoding or ("utf-8", 0)
    try:
        text = data[skip:].decode(name)
    except UnicodeDecodeError as exc:
        text = data[skip:].decode(name, errors="replace")
        warnings.append(f"invalid {name.upper()} at byte {exc.start + skip}; bad bytes shown as U+FFFD")
    if "\x00" in text:
        warnings.append(f"{text.count(chr(0))} NUL characters shown as U+FFFD")
        text = text.replace("\x00", "\ufffd")
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
    source = "\n".join(lines[1:closing])
    try:
        data = _load_yaml(source)
        if data is not None and not isinstance(data, dict):
            return {}, 1, f"frontmatter is a YAML {type(data).__name__}, not key: value pairs; indexed as text"
        budget = [FRONTMATTER_EXPANSION_CHARS + 2 * len(source)]
        safe = _json_safe(data or {}, budget=budget, open_containers=set())
    except FrontmatterTooLarge as exc:
        return {}, 1, f"frontmatter {exc}; indexed as text"
    except Exception as exc:  # yaml raises many types; all mean "not valid YAML"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {}, 1, f"frontmatter is not valid YAML ({first_line}); indexed as text"
    return safe, closing + 2, None


def _json_safe(value: Any, *, budget: list[int], open_containers: set[int], depth: int = 0) -> Any:
    """YAML gives dates, datetimes and non-string keys; the files table stores JSON.

    Spends ``budget[0]`` characters as it goes (aliases are expanded here), and
    refuses a container that contains itself or nests too deep.
    """
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if id(value) in open_containers:
            raise FrontmatterTooLarge("refers to itself (a recursive YAML alias)")
        if depth >= MAX_FRONTMATTER_DEPTH:
            raise FrontmatterTooLarge(f"nests deeper than {MAX_FRONTMATTER_DEPTH} levels")
        _spend(budget, 2)
        open_containers.add(id(value))
        try:
            inner = {"budget": budget, "open_containers": open_containers, "depth": depth + 1}
            if isinstance(value, dict):
                out: dict[str, Any] = {}
                for key, item in value.items():
                    name = str(key)
                    _spend(budget, len(name) + 2)
                    out[name] = _json_safe(item, **inner)
                return out
            items = [_json_safe(item, **inner) for item in value]
            if isinstance(value, (set, frozenset)):  # no order of its own: sorted, so a rebuild stores the same
                return sorted(items, key=str)
            return items
        finally:
            open_containers.discard(id(value))
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)  # JSON has no NaN or infinity
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        value = str(value)
    _spend(budget, len(value) + 2 if isinstance(value, str) else 8)
    return value


def _spend(budget: list[int], amount: int) -> None:
    budget[0] -= amount
    if budget[0] < 0:
        raise FrontmatterTooLarge(
            "expands to too much data (YAML aliases repeat it past memdex's bound)"
        )


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
