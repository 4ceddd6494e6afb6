"""`get` reads exact raw-file lines and never leaves the memory root (invariants 2 and 8).

Unit tests of ``indexer.api.parse_target`` and ``indexer.api.read_target``; no index needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import write

from indexer.errors import PathError
from indexer.sources.read import Lines, parse_target, read_target

TEXT = "---\ntitle: Facts\n---\n# Facts\n\nline five\nline six\nline seven\n"
RAW = ["---", "title: Facts", "---", "# Facts", "", "line five", "line six", "line seven"]


@pytest.fixture
def real_root(root: Path) -> Path:
    """The root as the library sees it (settings resolve it)."""
    return root.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A real Markdown file next to the root, so refusals are not just 'missing file'."""
    return write(tmp_path, "outside.md", "# Secret\nnot yours\n")


# -- parse_target ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("MEMORY.md", ("MEMORY.md", None, None)),
        ("MEMORY.md:3", ("MEMORY.md", 3, None)),
        ("MEMORY.md:3-7", ("MEMORY.md", 3, 7)),
        ("daily/2024-05-01.md:10-12", ("daily/2024-05-01.md", 10, 12)),
        # a colon not followed by line numbers belongs to the path
        ("meeting 10:30.md", ("meeting 10:30.md", None, None)),
        ("notes:draft.md", ("notes:draft.md", None, None)),
        ("meeting 10:30.md:2-4", ("meeting 10:30.md", 2, 4)),
        ("a:b:c.md:5", ("a:b:c.md", 5, None)),
        ("MEMORY.md:", ("MEMORY.md:", None, None)),
        ("MEMORY.md:1-2-3", ("MEMORY.md:1-2-3", None, None)),
        ("MEMORY.md:-", ("MEMORY.md:-", None, None)),
    ],
)
def test_parse_target(target: str, expected: tuple[str, int | None, int | None]) -> None:
    assert parse_target(target) == expected


@pytest.mark.parametrize("target", ["MEMORY.md:3-", "MEMORY.md:-5"])
def test_parse_target_rejects_half_ranges(target: str) -> None:
    with pytest.raises(PathError):
        parse_target(target)


# -- read_target: ranges ----------------------------------------------------------


def test_range_counts_frontmatter_lines(real_root: Path) -> None:
    write(real_root, "MEMORY.md", TEXT)
    assert read_target(real_root, "MEMORY.md:4-6") == Lines("MEMORY.md", 4, 6, ["# Facts", "", "line five"])
    assert read_target(real_root, "MEMORY.md:1-3").lines == ["---", "title: Facts", "---"]


def test_single_line(real_root: Path) -> None:
    write(real_root, "MEMORY.md", TEXT)
    assert read_target(real_root, "MEMORY.md:7") == Lines("MEMORY.md", 7, 7, ["line six"])
    assert read_target(real_root, "MEMORY.md:7-7") == Lines("MEMORY.md", 7, 7, ["line six"])


def test_whole_file(real_root: Path) -> None:
    write(real_root, "MEMORY.md", TEXT)
    assert read_target(real_root, "MEMORY.md") == Lines("MEMORY.md", 1, len(RAW), RAW)


def test_whole_file_without_trailing_newline(real_root: Path) -> None:
    write(real_root, "a.md", "one\ntwo")
    assert read_target(real_root, "a.md") == Lines("a.md", 1, 2, ["one", "two"])


def test_trailing_blank_line_is_a_line(real_root: Path) -> None:
    write(real_root, "a.md", "one\n\n")
    assert read_target(real_root, "a.md").lines == ["one", ""]


def test_crlf_file(real_root: Path) -> None:
    write(real_root, "win.md", b"# Title\r\n\r\nfirst\r\nsecond\r\n")
    found = read_target(real_root, "win.md:3-4")
    assert found == Lines("win.md", 3, 4, ["first", "second"])
    assert read_target(real_root, "win.md").lines == ["# Title", "", "first", "second"]


def test_old_mac_and_mixed_line_breaks(real_root: Path) -> None:
    write(real_root, "mixed.md", b"a\rb\r\nc\nd")
    assert read_target(real_root, "mixed.md").lines == ["a", "b", "c", "d"]
    assert read_target(real_root, "mixed.md:2-3").lines == ["b", "c"]


def test_byte_order_mark_is_not_part_of_line_one(real_root: Path) -> None:
    write(real_root, "bom.md", "\ufeff# Title\nbody\n".encode())
    assert read_target(real_root, "bom.md:1").lines == ["# Title"]


def test_invalid_utf8_is_read_with_replacement_character(real_root: Path) -> None:
    write(real_root, "bad.md", b"ok\ncaf\xe9\n")
    assert read_target(real_root, "bad.md:2").lines == ["caf\ufffd"]


def test_out_of_range_start(real_root: Path) -> None:
    write(real_root, "MEMORY.md", TEXT)
    with pytest.raises(PathError, match="8 lines"):
        read_target(real_root, "MEMORY.md:9")
    with pytest.raises(PathError):
        read_target(real_root, "MEMORY.md:100-120")


@pytest.mark.parametrize("target", ["MEMORY.md:0", "MEMORY.md:0-3", "MEMORY.md:5-3"])
def test_bad_ranges_are_refused(real_root: Path, target: str) -> None:
    write(real_root, "MEMORY.md", TEXT)
    with pytest.raises(PathError):
        read_target(real_root, target)


def test_end_past_eof_is_clamped(real_root: Path) -> None:
    write(real_root, "MEMORY.md", TEXT)
    assert read_target(real_root, "MEMORY.md:7-500") == Lines("MEMORY.md", 7, 8, ["line six", "line seven"])


def test_empty_file(real_root: Path) -> None:
    write(real_root, "empty.md", "")
    assert read_target(real_root, "empty.md").lines == []
    with pytest.raises(PathError):
        read_target(real_root, "empty.md:1")


def test_path_with_colon_in_the_name(real_root: Path) -> None:
    write(real_root, "meeting 10:30.md", "# Standup\nalpha\nbeta\n")
    assert read_target(real_root, "meeting 10:30.md").lines == ["# Standup", "alpha", "beta"]
    assert read_target(real_root, "meeting 10:30.md:2-3") == Lines("meeting 10:30.md", 2, 3, ["alpha", "beta"])
    assert read_target(real_root, "meeting 10:30.md:3").lines == ["beta"]


def test_nested_path_and_normalised_relative_path(real_root: Path) -> None:
    write(real_root, "daily/2024-05-01.md", "# Wed\nran 5k\n")
    assert read_target(real_root, "daily/2024-05-01.md:2") == Lines("daily/2024-05-01.md", 2, 2, ["ran 5k"])
    # '..' that stays inside the root is fine and reported by its clean path
    assert read_target(real_root, "daily/../daily/./2024-05-01.md:2").path == "daily/2024-05-01.md"


def test_absolute_path_inside_root_is_accepted(real_root: Path) -> None:
    path = write(real_root, "MEMORY.md", TEXT)
    found = read_target(real_root, f"{path}:6")
    assert found == Lines("MEMORY.md", 6, 6, ["line five"])


def test_symlink_inside_root_is_accepted(real_root: Path) -> None:
    write(real_root, "MEMORY.md", TEXT)
    (real_root / "alias.md").symlink_to(real_root / "MEMORY.md")
    assert read_target(real_root, "alias.md:6") == Lines("alias.md", 6, 6, ["line five"])


# -- read_target: refusals ----------------------------------------------------------


@pytest.mark.parametrize("target", ["../outside.md", "../outside.md:1", "sub/../../outside.md", "./../outside.md:1-2"])
def test_dotdot_escape_is_refused(real_root: Path, outside: Path, target: str) -> None:
    (real_root / "sub").mkdir()
    with pytest.raises(PathError, match="outside"):
        read_target(real_root, target)


def test_absolute_path_outside_root_is_refused(real_root: Path, outside: Path) -> None:
    for target in (str(outside), f"{outside}:1", "/etc/passwd", "/etc/passwd:1"):
        with pytest.raises(PathError, match="outside"):
            read_target(real_root, target)


def test_root_prefix_sibling_is_refused(real_root: Path) -> None:
    """``/x/memory-old/a.md`` is not inside ``/x/memory`` although the string starts the same."""
    sibling = real_root.parent / f"{real_root.name}-old"
    write(sibling, "a.md", "nope\n")
    with pytest.raises(PathError):
        read_target(real_root, str(sibling / "a.md"))
    with pytest.raises(PathError):
        read_target(real_root, f"../{sibling.name}/a.md")


def test_symlink_out_of_root_is_refused(real_root: Path, outside: Path) -> None:
    (real_root / "link.md").symlink_to(outside)
    with pytest.raises(PathError, match="outside"):
        read_target(real_root, "link.md")
    with pytest.raises(PathError, match="outside"):
        read_target(real_root, "link.md:1")


def test_relative_symlink_out_of_root_is_refused(real_root: Path, outside: Path) -> None:
    os.symlink(os.path.join("..", outside.name), real_root / "rel.md")
    with pytest.raises(PathError, match="outside"):
        read_target(real_root, "rel.md:1")


def test_symlinked_folder_out_of_root_is_refused(real_root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "note.md", "# Private\nsecret\n")
    (real_root / "linked").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(PathError, match="outside"):
        read_target(real_root, "linked/note.md:1")


def test_nonexistent_file(real_root: Path) -> None:
    with pytest.raises(PathError, match="no such file"):
        read_target(real_root, "missing.md")
    with pytest.raises(PathError, match="no such file"):
        read_target(real_root, "missing.md:1-2")


def test_broken_symlink_is_refused(real_root: Path) -> None:
    (real_root / "dangling.md").symlink_to(real_root / "gone.md")
    with pytest.raises(PathError):
        read_target(real_root, "dangling.md")


def test_folder_is_refused(real_root: Path) -> None:
    (real_root / "daily").mkdir()
    with pytest.raises(PathError, match="not a file"):
        read_target(real_root, "daily")


def test_binary_file_is_refused(real_root: Path) -> None:
    write(real_root, "blob.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(PathError, match="binary"):
        read_target(real_root, "blob.md")


@pytest.mark.parametrize("target", ["", ":3", "bad\x00name.md"])
def test_empty_or_invalid_path(real_root: Path, target: str) -> None:
    with pytest.raises(PathError):
        read_target(real_root, target)
