"""The ``Source`` seam: the registry owns ``*.md`` through ``MarkdownSource`` (which reads
exactly as ``parse_note`` + ``chunk_note``), and a second source plugs in by joining ``SOURCES``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from indexer.errors import PathError
from indexer.sources import registry
from indexer.sources.base import Chunk, Parsed, Source, TokenCounter, embedded_text, text_hash
from indexer.sources.discover import classify, scan
from indexer.sources.markdown.chunk import chunk_note
from indexer.sources.markdown.parse import parse_note
from indexer.sources.markdown.source import MarkdownSource
from indexer.sources.read import read_target
from indexer.sources.registry import is_source_file, source_for

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "memory" / "projects" / "culvert.md"
TOKEN = re.compile(r"\w+|[^\w\s]")


def count(texts):
    return [len(TOKEN.findall(text)) for text in texts]


@pytest.mark.parametrize(
    ("path", "owned"),
    [
        ("MEMORY.md", True), ("notes/car.md", True), ("daily/2026-09-01.md", True),
        ("notes/car.MD", False), ("notes/car.Md", False), ("notes/car.md.bak", False),
        ("notes/car.txt", False), ("sessions/a.jsonl", False), ("md", False),
    ],
)  # fmt: skip
def test_the_registry_owns_markdown_files_only(path, owned):
    assert is_source_file(path) is owned
    assert isinstance(source_for(path), MarkdownSource) if owned else source_for(path) is None


def test_markdown_source_reads_as_parse_note_and_chunk_note():
    data = FIXTURE.read_bytes()
    source = MarkdownSource()
    parsed = source.parse(data)
    assert parsed == parse_note(data)
    chunks = source.chunk(parsed, count_tokens=count, max_tokens=64)
    assert len(chunks) > 1
    assert chunks == chunk_note(parse_note(data), count_tokens=count, max_tokens=64)
    for path in ("SOUL.md", "MEMORY.md", "memory/2026-11-30.md", "memory/2026-02-30.md", "notes/car.md"):
        assert source.classify(path, ("daily", "memory")) == classify(path)


# -- a second source, as transcripts will plug in ---------------------------------------


@dataclass(frozen=True)
class Transcript:
    lines: list[str]
    frontmatter: dict[str, Any] = field(default_factory=dict)
    blocks: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class TranscriptSource:
    """Sessions as JSON lines: one chunk per line."""

    pattern = "*.jsonl"

    def owns(self, rel_path: str) -> bool:
        return rel_path.endswith(".jsonl")

    def classify(self, rel_path: str, daily_folders: tuple[str, ...]) -> tuple[str, str | None]:
        return "transcript", None

    def parse(self, data: bytes) -> Transcript:
        return Transcript(data.decode("utf-8").splitlines())

    def chunk(self, parsed: Transcript, *, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
        return [
            Chunk(number, number, "", line, embedded_text("", line), text_hash(line))
            for number, line in enumerate(parsed.lines, start=1)
        ]

    def readable_lines(self, data: bytes) -> list[str]:
        return data.decode("utf-8").splitlines()


def test_a_second_source_plugs_in_by_joining_the_registry(monkeypatch, tmp_path):
    transcripts: Source[Transcript] = TranscriptSource()
    parsed: Parsed = transcripts.parse(b"{}")
    assert parsed.frontmatter == {}
    monkeypatch.setattr(registry, "SOURCES", (*registry.SOURCES, transcripts))
    assert source_for("sessions/2026-11-30.jsonl") is transcripts
    assert isinstance(source_for("notes/car.md"), MarkdownSource)
    assert classify("sessions/2026-11-30.jsonl") == ("transcript", None)

    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "s1.jsonl").write_text('{"role": "user"}\n{"role": "assistant"}\n')
    (tmp_path / "note.md").write_text("# Note\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    found, warnings = scan(tmp_path)
    assert [(item.path, item.kind) for item in found] == [("note.md", "note"), ("sessions/s1.jsonl", "transcript")]
    assert not warnings
    assert read_target(tmp_path, "sessions/s1.jsonl:2").lines == ['{"role": "assistant"}']
    with pytest.raises(PathError, match=r"only \*\.md, \*\.jsonl files"):
        read_target(tmp_path, "image.png")
