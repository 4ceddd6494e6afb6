"""``SessionSource``: session transcripts (JSONL) as a ``Source``.

A transcript is read line by line (``formats.py`` knows the records). Each
JSONL line becomes exactly one readable line (``[2026-12-06 09:10] user:
...``; a line without conversation, or with only tool traffic when tools are
not indexed, becomes a blank line), so a chunk's text has one line per JSONL
line and ``get path:start-end`` returns the chunk's lines, as for Markdown.

A chunk is a run of turns: consecutive messages packed until the model's
window is full, a new local day starts, or an hour passes without a message.
Packing is greedy from the start of the file, so a transcript that grows
keeps its earlier chunks: only the last one changes and new ones follow.
Chunks are dated by their first message's local date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from ..base import Chunk, TokenCounter, embedded_text, text_hash
from .formats import Turn, parse_record

PREFIX = "sessions"  # citations: sessions/<folder label>/<path inside the folder>
SUFFIX = ".jsonl"
# A pause this long between two messages starts a new chunk (a new conversation).
GAP = timedelta(hours=1)
# Lines longer than this are skipped with a warning (a pasted blob is no conversation).
MAX_LINE_BYTES = 4 * 1024 * 1024
# Warnings per file about skipped lines; the rest are counted in one more.
MAX_LINE_WARNINGS = 5
NEWLINE = " ⏎ "  # a message's own line breaks, inside its one readable line


@dataclass(frozen=True)
class TurnBlock:
    """A JSONL line that holds conversation (``Parsed.blocks``)."""

    start: int
    kind: str = "turn"


@dataclass
class Transcript:
    """A parsed transcript: one readable line per JSONL line, and the turns of each."""

    lines: list[str]  # from line ``first_line`` on
    turns: dict[int, list[Turn]]  # line -> the turns it holds (only lines with turns)
    warnings: list[str] = field(default_factory=list)
    frontmatter: dict[str, Any] = field(default_factory=dict)
    first_line: int = 1

    def line(self, number: int) -> str:
        return self.lines[number - self.first_line]

    @property
    def blocks(self) -> list[TurnBlock]:
        return [TurnBlock(line) for line in self.turns]


def render(turn: Turn) -> str:
    """A turn as a line: ``[2026-12-06 09:10] user: text`` (no time when the record had none)."""
    text = NEWLINE.join(part for part in turn.text.splitlines() if part.strip()) or turn.text
    when = f"[{turn.time:%Y-%m-%d %H:%M}] " if turn.time is not None else ""
    return f"{when}{turn.role}: {text}"


def parse_transcript(data: bytes, *, tools: bool = False, first_line: int = 1, warned_through: int = 0) -> Transcript:
    """Parse JSONL bytes (which start at line ``first_line`` of the file). A line that is
    not JSON, not UTF-8, too long or of no known format is skipped with a warning naming
    it (not when it is at or before line ``warned_through``: read, and warned about, before);
    a last line without its newline that is not JSON yet is being written: blank, no warning."""
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()  # the newline that ends the last line
    lines: list[str] = []
    turns: dict[int, list[Turn]] = {}
    problems: list[str] = []
    for offset, chunk in enumerate(raw):
        number = first_line + offset
        found, problem = _line_turns(number, chunk, tools=tools)
        being_written = offset == len(raw) - 1 and not data.endswith(b"\n")
        if problem and number > warned_through and not (being_written and problem.startswith("not JSON")):
            problems.append(f"line {number}: skipped, {problem}")
        if found:
            turns[number] = found
        lines.append(" ".join(render(turn) for turn in found))
    warnings = problems[:MAX_LINE_WARNINGS]
    if len(problems) > MAX_LINE_WARNINGS:
        warnings.append(f"{len(problems) - MAX_LINE_WARNINGS} more lines skipped (not JSON or of no known format)")
    return Transcript(lines, turns, warnings, first_line=first_line)


def _line_turns(number: int, raw: bytes, *, tools: bool) -> tuple[list[Turn], str | None]:
    if not raw.strip():
        return [], None
    if len(raw) > MAX_LINE_BYTES:
        return [], f"longer than {MAX_LINE_BYTES // 2**20} MiB"
    try:
        text = raw.decode("utf-8-sig")  # a BOM (a file written on Windows) is no part of the record
    except UnicodeDecodeError:
        return [], "not valid UTF-8"
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        return [], "not JSON"
    try:
        found = parse_record(number, record, tools=tools)
    except (TypeError, ValueError, AttributeError):  # a shape no format foresaw: this line only
        found = None
    if found is None:
        return [], "not a message of a known transcript format"
    return found, None


def chunk_transcript(transcript: Transcript, *, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
    """Runs of turns within ``max_tokens`` (summed per line: a bound above the joined lines'
    count, since each count includes the model's special tokens and blank lines add none),
    one local day each, no hour-long pause."""
    numbers = list(transcript.turns)
    sizes = count_tokens([transcript.line(n) for n in numbers]) if numbers else []
    chunks: list[Chunk] = []
    run: list[int] = []  # indexes into numbers
    used = 0
    last_time: datetime | None = None
    for index, number in enumerate(numbers):
        time = next((t.time for t in transcript.turns[number] if t.time is not None), None)
        if run and (
            used + sizes[index] > max_tokens
            or (time is not None and last_time is not None and (time.date() != last_time.date() or time - last_time > GAP))
        ):
            chunks.append(_chunk(transcript, numbers, run, oversized=used > max_tokens))
            run, used, last_time = [], 0, None  # nothing before a chunk counts: parse_from starts here
        run.append(index)
        used += sizes[index]
        last_time = time or last_time
    if run:
        chunks.append(_chunk(transcript, numbers, run, oversized=used > max_tokens))
    return chunks


def _chunk(transcript: Transcript, numbers: list[int], run: list[int], *, oversized: bool) -> Chunk:
    """The readable lines ``start..end`` are the chunk's text and what the model sees."""
    start, end = numbers[run[0]], numbers[run[-1]]
    first = next((t.time for i in run for t in transcript.turns[numbers[i]] if t.time is not None), None)
    text = "\n".join(transcript.lines[start - transcript.first_line : end - transcript.first_line + 1])
    embed = embedded_text("", text)
    return Chunk(start, end, "", text, embed, text_hash(embed), oversized=oversized,
                 date=first.date().isoformat() if first is not None else None)  # fmt: skip


def session_path(label: str, inside: str) -> str:
    """The citation path of a transcript: ``sessions/<label>/<path inside its folder>``."""
    return f"{PREFIX}/{label}/{inside}"


def split_session_path(rel_path: str) -> tuple[str, str] | None:
    """(label, path inside the folder) of a session citation path, or None."""
    parts = PurePosixPath(rel_path).parts
    if len(parts) < 3 or parts[0] != PREFIX or not rel_path.endswith(SUFFIX):
        return None
    return parts[1], "/".join(parts[2:])


class SessionSource:
    """Session transcripts: ``sessions/<label>/...*.jsonl``, the files of the configured
    session folders (never files under the memory root: the scanner lists those)."""

    pattern = "sessions/<folder>/*.jsonl"

    def __init__(self, *, tools: bool = False) -> None:
        self.tools = tools

    def owns(self, rel_path: str) -> bool:
        return split_session_path(rel_path) is not None

    def classify(self, rel_path: str, daily_folders: tuple[str, ...]) -> tuple[str, str | None]:
        """Every transcript is a ``session``; its chunks carry their own dates."""
        return "session", None

    def parse(self, data: bytes) -> Transcript:
        return parse_transcript(data, tools=self.tools)

    def parse_from(self, data: bytes, first_line: int, *, warned_through: int = 0) -> Transcript:
        """A transcript that only grew, from line ``first_line`` on (``base.AppendOnly``)."""
        return parse_transcript(data, tools=self.tools, first_line=first_line, warned_through=warned_through)

    def chunk(self, parsed: Transcript, *, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
        return chunk_transcript(parsed, count_tokens=count_tokens, max_tokens=max_tokens)

    def readable_lines(self, data: bytes) -> list[str]:
        """The file's lines as people read them: one ``[time] role: text`` line per JSONL line."""
        return parse_transcript(data, tools=self.tools).lines
