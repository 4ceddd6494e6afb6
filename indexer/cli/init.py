"""``memdex init``: a memory folder from the templates, and what a newcomer does next.

Kept apart from app.py (which registers it) so the group module stays small.
"""

from __future__ import annotations

import json
import shlex
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

import click

from indexer.config.files import create_new_file
from indexer.errors import PathError


def _templates() -> Traversable:
    """The memory-files/ templates: packaged as ``indexer.templates`` in a wheel,
    read from the source tree in a checkout or editable install."""
    checkout = Path(__file__).resolve().parents[2] / "memory-files"
    if checkout.is_dir():
        return checkout
    try:
        return resources.files("indexer.templates")
    except ModuleNotFoundError:
        raise PathError("memdex's templates are missing from this installation") from None


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the created and kept files as JSON.")
def init_command(directory: Path, as_json: bool) -> None:
    """Create a memory folder from the templates (existing files are kept), and say what comes next.

    \b
    Examples:
      memdex init ~/assistant-memory
      memdex init . --json
    """
    if directory.exists() and not directory.is_dir():
        raise PathError(f"{directory} exists and is not a folder")
    created, kept, links = [], [], []
    for rel, source in _template_files(_templates(), PurePosixPath()):
        target = directory / rel
        try:
            link = next((directory / rel.parents[i] for i in range(len(rel.parts) - 2, -1, -1)
                         if (directory / rel.parents[i]).is_symlink()), None)  # fmt: skip
            if link is None and target.is_symlink():
                link = target
            if link is None:
                target.parent.mkdir(parents=True, exist_ok=True)
                if create_new_file(target, source.read_bytes()):  # O_EXCL | O_NOFOLLOW: never through a link
                    created.append(rel.as_posix())
                    continue
                link = target if target.is_symlink() else None  # made a link meanwhile
        except OSError as exc:
            raise PathError(f"cannot write {target} ({exc.strerror or exc})") from None
        (links if link is not None else kept).append(rel.as_posix())
    if as_json:
        click.echo(json.dumps({"directory": str(directory.resolve()), "created": created, "kept": kept + links,
                               "symlinks": links}, indent=2))  # fmt: skip
        return
    for name in created:
        click.echo(f"created {directory / name}")
    for name in kept:
        click.echo(f"kept existing {directory / name}")
    for name in links:
        click.echo(f"left alone {directory / name}: a symbolic link is on its way (memdex never writes through one)")
    click.echo(next_steps(directory.resolve()))


def next_steps(root: Path) -> str:
    """What a newcomer does after ``init`` (README "Your own memory, your assistant")."""
    memdex = _memdex_path()
    where = shlex.quote(str(root))
    return (
        "\nnext:\n"
        "  1. write your notes in its Markdown files, then index them:\n"
        f"     {memdex} --root {where} index\n"
        "  2. connect an assistant (Claude Code here; README \"Assistants\" has the others):\n"
        f"     claude mcp add --scope user memdex -- {memdex} --root {where} mcp --watch"
    )


def _memdex_path() -> str:
    """This ``memdex`` as an absolute path (hosts start servers with their own PATH), or the bare name."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if program is not None and program.name == "memdex" and program.exists():
        return shlex.quote(str(program.absolute()))
    return "memdex"


def _template_files(folder: Traversable, prefix: PurePosixPath) -> list[tuple[PurePosixPath, Traversable]]:
    files: list[tuple[PurePosixPath, Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith(("__", ".")):
            continue
        if entry.is_dir():
            files.extend(_template_files(entry, prefix / entry.name))
        else:
            files.append((prefix / entry.name, entry))
    return files
