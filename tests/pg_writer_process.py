"""Helper process for tests/test_pg_concurrency.py (not a test module): one host
writing one namespace of a PostgreSQL index.

``python tests/pg_writer_process.py ROOT URL NAMESPACE [--rounds N --seed S]
[--rebuild] [--embed-delay S] [--group N] [--go FILE]``

Opens the namespace like ``memdex index --db URL --namespace NAMESPACE`` does
(``open_index(write=True)``) with the deterministic test embedder, slowed by
``--embed-delay`` seconds per model call and with sync's embedding group
lowered to ``--group`` texts so files are written a few at a time. With
``--go FILE`` it then waits for FILE to exist, so that writers start together.
Then:

- with ``--rounds N``: N times, applies round i of the edits drawn from
  ``--seed`` (``edit_round``) to ROOT and syncs; two hosts given the same
  seed make the same edits to their own copies;
- with ``--rebuild``: one rebuild; otherwise one sync.

The host id (whose stat cache the rows are) comes from ``MEMDEX_HOST``.
Prints ``opened TIME`` once the namespace is open, ``round I`` after each
round's sync, and ``done TIME`` at the end (TIME: ``time.time()``). The
tests kill it with SIGKILL part-way through.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import write  # noqa: E402
from index_process import SlowRecordingEmbedder  # noqa: E402

import indexer.indexing.writer  # noqa: E402
from indexer import make_settings, open_index  # noqa: E402

WORDS = "lake bike garden kettle violin harbour lantern cedar pepper orbit meadow copper".split()


def note(rng: random.Random, title: str, sections: int) -> str:
    """A note with a title and ``sections`` headed sections, each a few lines (several chunks)."""
    parts = [f"# {title}\n"]
    for number in range(sections):
        lines = [" ".join(rng.choice(WORDS) for _ in range(8)) + f" memo {number}." for _ in range(3)]
        parts.append(f"## Part {number} {rng.choice(WORDS)}\n\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


def initial_files(seed: int, count: int = 8) -> dict[str, str]:
    rng = random.Random(seed)
    folders = ["", "daily/", "notes/"]
    return {
        f"{folders[i % 3]}{'2024-05-%02d' % (i + 1) if i % 3 == 1 else f'note{i}'}.md": note(rng, f"Note {i}", 2 + i % 3)
        for i in range(count)
    }


def edit_round(root: Path, seed: int, number: int) -> None:
    """Round ``number`` of the edits drawn from ``seed``: change one line, append a
    section, retitle, create, delete and rename files (the same for the same seed)."""
    rng = random.Random(seed * 7919 + number)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.md") if ".memdex" not in p.parts)
    if not files:
        write(root, f"notes/fresh{number}.md", note(rng, f"Fresh {number}", 2))
        return
    target = root / rng.choice(files)
    lines = target.read_text(encoding="utf-8").split("\n")
    body = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    if body:
        spot = rng.choice(body)
        lines[spot] = lines[spot] + f" edited {number} {rng.choice(WORDS)}"
    target.write_text("\n".join(lines), encoding="utf-8")
    other = root / rng.choice(files)
    other.write_text(other.read_text(encoding="utf-8") + f"\n## Added {number}\n\nround {number} {rng.choice(WORDS)} memo.\n",
                     encoding="utf-8")  # fmt: skip
    if rng.random() < 0.4:
        retitled = root / rng.choice(files)
        text = retitled.read_text(encoding="utf-8")
        retitled.write_text(text.replace("# ", f"# Retitled{number} ", 1), encoding="utf-8")
    write(root, f"notes/new{number}.md", note(rng, f"New {number}", 1 + number % 3))
    survivors = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.md") if ".memdex" not in p.parts)
    if len(survivors) > 4 and rng.random() < 0.5:
        (root / rng.choice(survivors)).unlink()
    survivors = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.md") if ".memdex" not in p.parts)
    if rng.random() < 0.5:
        moved = rng.choice(survivors)
        destination = root / "notes" / f"moved{number}.md"
        if not destination.exists():
            (root / moved).rename(destination)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--embed-delay", type=float, default=0.0)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--go", type=Path, help="once open, wait until this file exists")
    args = parser.parse_args()
    indexer.indexing.writer.EMBED_GROUP = args.group
    settings = make_settings(args.root, args.url, namespace=args.namespace)
    embedder = SlowRecordingEmbedder(args.embed_delay, model_id="test/recording")
    with open_index(settings, write=True, embedder=embedder) as index:
        print("opened", time.time(), flush=True)
        while args.go is not None and not args.go.exists():
            time.sleep(0.005)  # polling for the test's start signal
        if args.rounds:
            for number in range(args.rounds):
                edit_round(args.root, args.seed, number)
                index.sync()
                print("round", number, flush=True)
        elif args.rebuild:
            index.rebuild()
        else:
            index.sync()
    print("done", time.time(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
