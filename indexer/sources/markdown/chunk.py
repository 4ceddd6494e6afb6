"""Pure chunking: a parsed note -> chunks that are raw-file line ranges.

Rules, in order:
1. A section is a heading and the blocks up to the next heading; text before
   the first heading is a section without a heading. A heading with no content
   of its own joins the next section's first chunk.
2. A section whose embedded text fits the token budget is one chunk.
3. A larger section is split between blocks (paragraph, list item, table,
   fence...). Cut points are content-defined: a chunk that has reached
   ``min_tokens`` ends before an "anchor" block (its first two words hash to
   one and differ from the previous block's), and a chunk that would overflow
   is cut at the block with the smallest such hash. A one-line edit therefore
   almost always changes only the chunk that holds it (98.5% of grow/shrink
   edits in our tests, otherwise two chunks); boundaries further down stay.
4. A single block larger than the budget is split by lines, at content-defined
   cuts too (each line is a unit, its first two words decide), so inserting a
   line in a huge paragraph does not shift every later piece. A single line
   larger than the budget becomes its own chunk, flagged ``oversized``: its
   vector covers only the start of the line (the caller warns), while keyword
   search covers all of it.
5. Every non-blank body line belongs to exactly one chunk (gaps between
   blocks, such as link reference definitions, stay with the chunk above).
   A note with frontmatter and no body is one chunk of its frontmatter lines,
   so that its title and tags can be found.
6. The heading path is capped (each heading's text, and the whole path to a
   quarter of the window), so a giant heading cannot crowd out the content.

The embedded text is the heading path, a newline, then the chunk's lines.
Token counts come from the caller (the embedding model's tokenizer), and the
final embedded texts are counted again, so a chunk never exceeds the budget
unnoticed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import NamedTuple

from ..base import Chunk, TokenCounter, embedded_text, text_hash
from .parse import Block, Note

HEADING_SEPARATOR = " > "
# The heading path is prefixed to every chunk of its section (embedded text and
# the full-text heading column), so it is bounded: each heading's text to
# HEADING_TITLE_CHARS characters, the whole path to a quarter of the token window.
HEADING_TITLE_CHARS = 200
HEADING_SHARE = 4
ELLIPSIS = "…"
ANCHOR_MODULUS = 4  # on average one block in four may start a chunk
# Lines of an oversized block are much smaller units than blocks: sparser
# anchors, so that after an insert the cut points fall back in step at once.
LINE_ANCHOR_MODULUS = 16
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _Section:
    heading: str
    units: list[tuple[int, int]]  # line spans; the heading line is glued to the first


def chunk_note(
    note: Note,
    *,
    count_tokens: TokenCounter,
    max_tokens: int,
    min_tokens: int | None = None,
) -> list[Chunk]:
    """Split ``note`` into chunks whose embedded text has at most ``max_tokens``."""
    min_tokens = max_tokens // 4 if min_tokens is None else min_tokens
    lines = note.lines
    spans: list[tuple[str, int, int]] = []
    capped: dict[str, str] = {}
    for section in _sections(note.blocks):
        if section.heading not in capped:
            capped[section.heading] = _cap_heading(section.heading, count_tokens, max_tokens // HEADING_SHARE)
        section = _Section(capped[section.heading], section.units)
        spans.extend(_split_section(section, lines, count_tokens, max_tokens, min_tokens))
    if not spans:  # no Markdown blocks (e.g. only link reference definitions): keep the text
        body = [n for n in range(note.body_start, len(lines) + 1) if lines[n - 1].strip()]
        spans = [("", body[0], body[-1])] if body else []
        if not body and note.frontmatter:  # frontmatter only: its lines are the chunk (found by its title)
            return _enforce_budget([_make_chunk("", 1, note.body_start - 1, lines)], lines, count_tokens, max_tokens)
    spans = _cover_gaps(spans, lines, body_start=note.body_start)
    chunks = [_make_chunk(heading, start, end, lines) for heading, start, end in spans]
    return _enforce_budget(chunks, lines, count_tokens, max_tokens)


def _cap_heading(heading: str, count_tokens: TokenCounter, limit: int) -> str:
    """Shorten a heading path to at most ``limit`` tokens (ending in an ellipsis)."""
    if not heading:
        return heading
    tokens = count_tokens([heading])[0]
    while tokens > limit and len(heading) > 1:
        keep = max(1, min(len(heading) - 1, int(len(heading) * limit / tokens * 0.9)))
        heading = heading[:keep].rstrip() + ELLIPSIS
        tokens = count_tokens([heading])[0]
    return heading


def _short(title: str) -> str:
    return title if len(title) <= HEADING_TITLE_CHARS else title[: HEADING_TITLE_CHARS - 1].rstrip() + ELLIPSIS


def _sections(blocks: list[Block]) -> list[_Section]:
    sections: list[_Section] = []
    path: list[tuple[int, str]] = []
    heading = ""
    units: list[tuple[int, int]] = []
    heading_start: int | None = None  # first line of the heading(s) not yet glued
    heading_end = 0
    for block in blocks:
        if block.kind == "heading":
            if units:
                sections.append(_Section(heading, units))
                units, heading_start = [], block.start
            elif heading_start is None:
                heading_start = block.start
            # else: the previous heading had no content and joins this section
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, _short(block.title)))
            heading = HEADING_SEPARATOR.join(title for _, title in path)
            heading_end = block.end
        elif not units and heading_start is not None:
            units.append((heading_start, block.end))
        else:
            units.append((block.start, block.end))
    if units:
        sections.append(_Section(heading, units))
    elif heading_start is not None:  # trailing heading(s) with no content
        sections.append(_Section(heading, [(heading_start, heading_end)]))
    return sections


class _Unit(NamedTuple):
    start: int
    end: int
    tokens: int
    text: str
    modulus: int = ANCHOR_MODULUS


def _split_section(
    section: _Section,
    lines: list[str],
    count_tokens: TokenCounter,
    max_tokens: int,
    min_tokens: int,
) -> list[tuple[str, int, int]]:
    budget = max_tokens - _prefix_tokens(section.heading, count_tokens)
    first, last = section.units[0][0], section.units[-1][1]
    unit_texts = [_join(lines, a, b) for a, b in section.units]
    unit_tokens = count_tokens(unit_texts)
    if sum(unit_tokens) <= budget:
        return [(section.heading, first, last)]
    units: list[_Unit] = []
    for (a, b), tokens, text in zip(section.units, unit_tokens, unit_texts):
        if tokens <= budget:
            units.append(_Unit(a, b, tokens, text))
        else:  # its lines become units, cut at content-defined points like blocks
            units.extend(_line_units(a, b, lines, count_tokens))
    return [(section.heading, group[0].start, group[-1].end) for group in _pack(units, budget, min_tokens)]


def _pack(units: list[_Unit], budget: int, min_tokens: int) -> list[list[_Unit]]:
    """Group consecutive units into chunks within ``budget`` at content-defined cuts.

    A chunk of at least ``min_tokens`` ends before an anchor unit. When the next
    unit does not fit, the chunk is cut at the unit with the smallest anchor key
    among those past ``min_tokens`` (not simply before the unit that overflowed),
    so an edit that changes a chunk's size rarely moves the cuts after it.
    """
    groups: list[list[_Unit]] = []
    current = [units[0]]
    for previous, unit in zip(units, units[1:]):
        size = sum(u.tokens for u in current)
        if size >= min_tokens and _is_anchor(unit.text, previous.text, unit.modulus):
            groups.append(current)
            current = [unit]
            continue
        if size + unit.tokens > budget:
            cut = _best_cut(current, min_tokens)
            groups.append(current[:cut])
            current = current[cut:]
        current.append(unit)
        while len(current) > 1 and sum(u.tokens for u in current) > budget:
            groups.append([current.pop(0)])
    groups.append(current)
    return groups


def _best_cut(current: list[_Unit], min_tokens: int) -> int:
    """Index to cut ``current`` at: the smallest anchor key past ``min_tokens``, else the end."""
    best, best_key, before = len(current), b"\xff" * 7, 0
    for index, unit in enumerate(current):
        if index > 0 and before >= min_tokens and _anchor_key(unit.text) < best_key:
            best, best_key = index, _anchor_key(unit.text)
        before += unit.tokens
    return best


def _line_units(start: int, end: int, lines: list[str], count_tokens: TokenCounter) -> list[_Unit]:
    """One unit per non-blank line of an oversized block (blank lines join the line above)."""
    numbers = [n for n in range(start, end + 1) if lines[n - 1].strip() or n == start]
    counts = count_tokens([lines[n - 1] for n in numbers])
    ends = [following - 1 for following in numbers[1:]] + [end]
    return [
        _Unit(a, b, tokens, _join(lines, a, b), LINE_ANCHOR_MODULUS) for a, b, tokens in zip(numbers, ends, counts)
    ]


def _split_lines(
    start: int, end: int, lines: list[str], count_tokens: TokenCounter, budget: int
) -> list[_Unit]:
    """Pack the lines of one oversized block greedily into pieces within ``budget``."""
    numbers = list(range(start, end + 1))
    counts = count_tokens([lines[n - 1] for n in numbers])
    pieces: list[_Unit] = []
    piece_start, piece_tokens = start, 0
    for number, tokens in zip(numbers, counts):
        if piece_tokens and piece_tokens + tokens > budget:
            pieces.append(_Unit(piece_start, number - 1, piece_tokens, _join(lines, piece_start, number - 1)))
            piece_start, piece_tokens = number, 0
        piece_tokens += tokens
    pieces.append(_Unit(piece_start, end, piece_tokens, _join(lines, piece_start, end)))
    return pieces


def _cover_gaps(
    spans: list[tuple[str, int, int]], lines: list[str], *, body_start: int
) -> list[tuple[str, int, int]]:
    """Extend each chunk down to the line before the next one, minus blank lines;
    the first chunk also starts at the first non-blank body line."""
    if spans:
        first = body_start
        while first < spans[0][1] and not lines[first - 1].strip():
            first += 1
        spans = [(spans[0][0], first, spans[0][2]), *spans[1:]]
    covered: list[tuple[str, int, int]] = []
    for index, (heading, start, end) in enumerate(spans):
        limit = spans[index + 1][1] - 1 if index + 1 < len(spans) else len(lines)
        new_end = limit
        while new_end > end and not lines[new_end - 1].strip():
            new_end -= 1
        covered.append((heading, start, max(end, new_end)))
    return covered


def _enforce_budget(
    chunks: list[Chunk], lines: list[str], count_tokens: TokenCounter, max_tokens: int
) -> list[Chunk]:
    """Measure every embedded text; split by lines any that still exceed the budget."""
    counts = count_tokens([chunk.embed_text for chunk in chunks])
    result: list[Chunk] = []
    for chunk, tokens in zip(chunks, counts):
        if tokens <= max_tokens:
            result.append(chunk)
            continue
        if chunk.start_line == chunk.end_line:
            result.append(_make_chunk(chunk.heading, chunk.start_line, chunk.end_line, lines, oversized=True))
            continue
        budget = max_tokens - _prefix_tokens(chunk.heading, count_tokens)
        pieces = _split_lines(chunk.start_line, chunk.end_line, lines, count_tokens, budget)
        spans = [(piece.start, piece.end) for piece in pieces]
        if len(spans) == 1:  # the lines fit one by one but not joined: halve the range
            middle = (chunk.start_line + chunk.end_line) // 2
            spans = [(chunk.start_line, middle), (middle + 1, chunk.end_line)]
        parts = [_make_chunk(chunk.heading, a, b, lines) for a, b in _without_blank_edges(spans, lines)]
        result.extend(_enforce_budget(parts, lines, count_tokens, max_tokens))
    return result


def _without_blank_edges(spans: list[tuple[int, int]], lines: list[str]) -> list[tuple[int, int]]:
    """Spans trimmed of leading and trailing blank lines; all-blank spans dropped."""
    trimmed = []
    for start, end in spans:
        while start <= end and not lines[start - 1].strip():
            start += 1
        while end >= start and not lines[end - 1].strip():
            end -= 1
        if start <= end:
            trimmed.append((start, end))
    return trimmed


def _make_chunk(heading: str, start: int, end: int, lines: list[str], *, oversized: bool = False) -> Chunk:
    text = _join(lines, start, end)
    embed_text = embedded_text(heading, text)
    return Chunk(start, end, heading, text, embed_text, text_hash(embed_text), oversized)


def _prefix_tokens(heading: str, count_tokens: TokenCounter) -> int:
    return count_tokens([heading])[0] if heading else 0


def _lead(text: str) -> str:
    return " ".join(WORD.findall(text)[:2])


def _anchor_key(text: str) -> bytes:
    """Content-defined key of a block: a hash of its first two words (so editing
    the rest of the block does not change whether a chunk may start there),
    then a hash of its whole text to break ties between blocks that start alike."""
    lead = _lead(text).encode("utf-8")
    return hashlib.blake2b(lead, digest_size=3).digest() + hashlib.blake2b(text.encode("utf-8"), digest_size=3).digest()


def _is_anchor(text: str, previous: str, modulus: int = ANCHOR_MODULUS) -> bool:
    """A block may start a chunk when its lead hashes to an anchor and differs from
    the block before (in a run of look-alike items only the first qualifies)."""
    return _anchor_key(text)[0] % modulus == 0 and _lead(text) != _lead(previous)


def _join(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start - 1 : end])
