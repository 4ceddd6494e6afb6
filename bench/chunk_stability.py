"""How many chunks a one-line edit re-embeds, over many edits in long sections.

    python bench/chunk_stability.py [--seeds 6] [--max-tokens 256]

Builds documents of sections too long for one chunk (paragraphs or list items
of 5-40 words), then for every content line makes two edits (append three
words; drop the last word) and counts chunks whose embedded text changed.
Tokens are counted as words and punctuation, so no model is needed.
"""

from __future__ import annotations

import argparse
import random
import re
from collections import Counter

from indexer.chunk import chunk_note
from indexer.parse import parse_note

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


if __name__ == "__main__":
    main()
