"""How many chunks a one-line edit re-embeds, over many edits in long sections.

    python bench/chunk_stability.py [--seeds 6] [--max-tokens 256] [--huge-lines 20000 --inserts 10]

Builds documents of sections too long for one chunk (paragraphs or list items
of 5-40 words), then for every content line makes two edits (append three
words; drop the last word) and counts chunks whose embedded text changed.
Then one paragraph of ``--huge-lines`` lines (a single block far larger than
the window, split by lines) gets ``--inserts`` one-line inserts at random places.
Tokens are counted as words and punctuation, so no model is needed. Writes
bench/out/chunk_stability.json.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

from indexer.sources.markdown.chunk import chunk_note
from indexer.sources.markdown.parse import parse_note

TOKEN = re.compile(r"\w+|[^\w\s]")
WORDS = (
    "alpha beta gamma delta editor vim coffee meeting project deadline python rust notes "
    "kasia ines porto tea walk"
).split()


def count_tokens(texts):
    return [len(TOKEN.findall(text)) for text in texts]


def document(rng: random.Random, style: str) -> list[str]:
    lines = ["# Log"]
    for section in range(6):
        lines += ["", f"## Section {section}"]
        for _ in range(rng.randint(8, 20)):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))
            lines += ["", text] if style == "paragraphs" else [f"- {text}"]
    return lines


def chunk_hashes(lines: list[str], max_tokens: int) -> set[str]:
    note = parse_note(("\n".join(lines) + "\n").encode())
    return {c.hash for c in chunk_note(note, count_tokens=count_tokens, max_tokens=max_tokens)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--huge-lines", type=int, default=20_000)
    parser.add_argument("--inserts", type=int, default=10)
    args = parser.parse_args()
    changed: Counter[int] = Counter()
    for seed in range(args.seeds):
        rng = random.Random(seed)
        for style in ("paragraphs", "list"):
            lines = document(rng, style)
            before = chunk_hashes(lines, args.max_tokens)
            for index, line in enumerate(lines):
                if not line or line.startswith("#"):
                    continue
                for new_line in (line + " extra words here", " ".join(line.split()[:-1])):
                    edited = lines[:index] + [new_line] + lines[index + 1 :]
                    changed[len(chunk_hashes(edited, args.max_tokens) - before)] += 1
    total = sum(changed.values())
    print(f"{total} one-line edits; chunks re-embedded per edit: {dict(sorted(changed.items()))}")
    print(f"exactly one chunk: {changed[1] / total:.1%}; at most: {max(changed)}")
    huge = huge_block_inserts(args.huge_lines, args.inserts, args.max_tokens)
    print(f"{args.inserts} one-line inserts into one {args.huge_lines}-line paragraph; chunks re-embedded: {huge}")
    out = Path(__file__).parent / "out" / "chunk_stability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "edits": total, "re_embedded_per_edit": dict(sorted(changed.items())),
        "huge_block": {"lines": args.huge_lines, "inserts": args.inserts, "re_embedded": huge},
    }, indent=2))


def huge_block_inserts(size: int, inserts: int, max_tokens: int) -> list[int]:
    rng = random.Random(size)
    lines = ["# Big"] + [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(size)]
    before = chunk_hashes(lines, max_tokens)
    counts = []
    for _ in range(inserts):
        at = rng.randint(2, len(lines))
        edited = lines[:at] + ["inserted " + " ".join(rng.choice(WORDS) for _ in range(6))] + lines[at:]
        counts.append(len(chunk_hashes(edited, max_tokens) - before))
    return counts


if __name__ == "__main__":
    main()
