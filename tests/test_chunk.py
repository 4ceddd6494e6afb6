"""Chunk line ranges follow the Markdown structure and match the raw file."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from indexer.sources.markdown.chunk import chunk_note
from indexer.sources.markdown.parse import parse_note, split_lines

TOKEN = re.compile(r"\w+|[^\w\s]")


def count(texts):
    return [len(TOKEN.findall(t)) for t in texts]


def chunks_of(data: str | bytes, max_tokens: int = 64):
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return chunk_note(parse_note(raw), count_tokens=count, max_tokens=max_tokens)


def raw_lines(data: str | bytes) -> list[str]:
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    return split_lines(text)


def assert_text_matches_lines(data: str | bytes, chunks) -> None:
    lines = raw_lines(data)
    for chunk in chunks:
        assert chunk.text == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])


def test_sections_follow_headings_with_heading_paths():
    doc = "# Preferences\n\nIntro line.\n\n## Editor\n\n- Helix\n- gruvbox\n\n## Food\n\nNo cilantro.\n"
    chunks = chunks_of(doc)
    assert [(c.start_line, c.end_line, c.heading) for c in chunks] == [
        (1, 3, "Preferences"),
        (5, 8, "Preferences > Editor"),
        (10, 12, "Preferences > Food"),
    ]
    assert chunks[1].embed_text.startswith("Preferences > Editor\n## Editor")
    assert_text_matches_lines(doc, chunks)


def test_frontmatter_lines_are_counted_and_excluded():
    doc = "---\ntitle: Notes\ntags: [a, b]\n---\n# Heading\n\nBody text.\n"
    note = parse_note(doc.encode())
    assert note.frontmatter == {"title": "Notes", "tags": ["a", "b"]}
    assert note.body_start == 5
    chunks = chunks_of(doc)
    assert [(c.start_line, c.end_line) for c in chunks] == [(5, 7)]
    assert_text_matches_lines(doc, chunks)


def test_crlf_and_bom_keep_line_numbers():
    doc = "\ufeff---\r\ntitle: x\r\n---\r\n# A\r\n\r\none\r\n\r\n# B\r\n\r\ntwo\r\n"
    raw = doc.encode("utf-8")
    chunks = chunks_of(raw)
    assert [(c.start_line, c.end_line, c.heading) for c in chunks] == [(4, 6, "A"), (8, 10, "B")]
    assert chunks[0].text == "# A\n\none"
    assert_text_matches_lines(raw, chunks)


def test_no_headings_is_one_section():
    doc = "first line\nsecond line\n\nanother paragraph\n"
    chunks = chunks_of(doc)
    assert [(c.start_line, c.end_line, c.heading) for c in chunks] == [(1, 4, "")]


def test_every_heading_level_and_setext():
    doc = "# H1\na\n## H2\nb\n### H3\nc\n#### H4\nd\n##### H5\ne\n###### H6\nf\n\nSetext\n======\ng\n"
    chunks = chunks_of(doc)
    assert [c.heading for c in chunks] == [
        "H1", "H1 > H2", "H1 > H2 > H3", "H1 > H2 > H3 > H4", "H1 > H2 > H3 > H4 > H5",
        "H1 > H2 > H3 > H4 > H5 > H6", "Setext",
    ]  # fmt: skip
    assert (chunks[-1].start_line, chunks[-1].end_line) == (14, 16)
    assert_text_matches_lines(doc, chunks)


def test_empty_heading_joins_next_section():
    doc = "# Project\n## Goals\n\nShip it.\n"
    chunks = chunks_of(doc)
    assert [(c.start_line, c.end_line, c.heading) for c in chunks] == [(1, 4, "Project > Goals")]


def test_large_section_splits_between_blocks_never_inside_a_fence():
    fence = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(8)) + "\n```\n"
    items = "".join(f"- item number {i} has several words in it\n" for i in range(30))
    doc = "# Big\n\n" + items + "\n" + fence + "\nclosing paragraph\n"
    chunks = chunks_of(doc, max_tokens=60)
    assert len(chunks) > 3
    lines = raw_lines(doc)
    fence_start = lines.index("```python") + 1
    fence_end = fence_start + 9
    for chunk in chunks:
        inside = chunk.start_line > fence_start and chunk.start_line <= fence_end
        assert not inside, "a chunk starts inside the fence"
        assert count([chunk.embed_text])[0] <= 60
    assert_text_matches_lines(doc, chunks)


def test_nested_lists_stay_with_their_item():
    doc = "# L\n\n- parent one\n  - child a\n  - child b\n- parent two\n  1. sub\n"
    note = parse_note(doc.encode())
    items = [(b.start, b.end) for b in note.blocks if b.kind == "list_item"]
    assert items == [(3, 5), (6, 7)]


def test_single_huge_block_is_split_by_lines():
    paragraph = "\n".join(f"word{i} " * 10 for i in range(40))
    chunks = chunks_of("# P\n\n" + paragraph + "\n", max_tokens=50)
    assert len(chunks) > 5
    assert all(count([c.embed_text])[0] <= 50 for c in chunks)


def test_single_overlong_line_is_flagged_not_silently_truncated():
    doc = "# P\n\n" + "token " * 500 + "\n"
    chunks = chunks_of(doc, max_tokens=50)
    assert any(c.oversized for c in chunks)


def test_every_nonblank_body_line_is_in_exactly_one_chunk():
    doc = "[top]: http://example.com/top\n\nintro\n\n[ref]: http://example.com\n\n# A\n\ntext\n\n<div>\nhtml\n</div>\n\n> quote\n> more\n\n---\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    chunks = chunks_of(doc)
    covered = [n for c in chunks for n in range(c.start_line, c.end_line + 1)]
    assert len(covered) == len(set(covered))
    lines = raw_lines(doc)
    for number, line in enumerate(lines, start=1):
        if line.strip():
            assert number in covered, f"line {number} {line!r} not in any chunk"


def test_broken_frontmatter_is_indexed_as_text_with_warning():
    doc = "---\ntitle: [unclosed\n---\nbody\n"
    note = parse_note(doc.encode())
    assert note.frontmatter == {}
    assert note.body_start == 1
    assert any("frontmatter" in w for w in note.warnings)


def test_one_line_edit_in_300_line_file_changes_one_chunk():
    lines = []
    for section in range(15):
        lines.append(f"## Section {section}")
        lines.append("")
        lines.extend(f"- entry {section}.{i} about topic {i * section}" for i in range(17))
        lines.append("")
    original = "\n".join(lines) + "\n"
    assert len(lines) == 300  # 15 sections of 20 lines; each section exceeds 64 tokens and is split
    edited_lines = list(lines)
    edited_lines[150] = edited_lines[150] + " (edited)"
    before = {c.hash for c in chunks_of(original)}
    after = {c.hash for c in chunks_of("\n".join(edited_lines) + "\n")}
    assert len(after - before) == 1


def test_edit_in_long_headingless_list_changes_few_chunks():
    base = [f"- log entry {i}: walked {i % 7} km and read chapter {i}" for i in range(200)]
    edited = list(base)
    edited[100] = "- log entry 100: walked 3 km"
    before = {c.hash for c in chunks_of("\n".join(base) + "\n")}
    after = {c.hash for c in chunks_of("\n".join(edited) + "\n")}
    assert len(after - before) <= 2  # content-defined cuts resync right after the edit


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([
    "# Title", "## Sub", "### Deep", "", "plain text line", "- item", "  - nested item", "1. ordered",
    "```", "code line", "> quote", "| a | b |", "|---|---|", "---", "title: x", "word " * 30, "\r", "\t- tab",
]), max_size=60))  # fmt: skip
def test_chunks_always_match_raw_lines(pieces):
    doc = "\n".join(pieces)
    chunks = chunks_of(doc, max_tokens=40)
    assert_text_matches_lines(doc, chunks)
    starts = [c.start_line for c in chunks]
    assert starts == sorted(starts)
    for first, second in zip(chunks, chunks[1:]):
        assert first.end_line < second.start_line
    for chunk in chunks:
        assert chunk.oversized or count([chunk.embed_text])[0] <= 40
    note = parse_note(doc.encode())
    covered = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    for number in range(note.body_start, len(note.lines) + 1):
        assert number in covered or not note.lines[number - 1].strip()


def test_text_without_markdown_blocks_is_still_a_chunk():
    doc = "\n[wiki]: https://example.com/wiki\n[docs]: https://example.com/docs\n"
    assert [(c.start_line, c.end_line) for c in chunks_of(doc)] == [(2, 3)]


@pytest.mark.parametrize("doc", ["", "\n\n\n", "---\n---\n"])
def test_empty_documents_have_no_chunks(doc):
    assert chunks_of(doc) == []


def test_edits_that_grow_or_shrink_lines_rarely_move_later_boundaries():
    """Over many one-line edits in long sections: never more than 2 chunks change, mostly 1."""
    import random

    words = "alpha beta gamma delta editor coffee meeting project deadline python notes ines porto tea".split()
    changed_counts = []
    for seed in range(3):
        rng = random.Random(seed)
        lines = ["# Log"]
        for section in range(4):
            lines += ["", f"## Section {section}"]
            for _ in range(rng.randint(10, 18)):
                text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 35)))
                lines += ["", text] if seed % 2 else [f"- {text}"]
        base = {c.hash for c in chunks_of("\n".join(lines) + "\n", max_tokens=120)}
        for index, line in enumerate(lines):
            if not line or line.startswith("#"):
                continue
            for new_line in (line + " three more words", line.rsplit(" ", 1)[0]):
                edited = lines[:index] + [new_line] + lines[index + 1 :]
                after = {c.hash for c in chunks_of("\n".join(edited) + "\n", max_tokens=120)}
                changed_counts.append(len(after - base))
    assert max(changed_counts) <= 2
    assert changed_counts.count(1) / len(changed_counts) >= 0.95
