"""What the size of an embedding call costs: the same texts embedded in calls of 512, 128
(4 model batches: what the writer uses, caching each call's vectors as it returns) and 32
texts (one batch), with the real model, longest texts first, alternating the order each round.

    python bench/bench_embed_calls.py [--rounds 3] [--texts 512]

Prints the median seconds per call size and the ratio to one call of all texts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate_memory  # noqa: E402

from indexer.config.settings import DEFAULT_MODEL  # noqa: E402
from indexer.embedding.lazy import LazyEmbedder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=512)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="memdex-bench-calls-")) / "memory"
    generate_memory(root, files=60, seed=3)
    texts: list[str] = []
    for path in sorted(root.rglob("*.md")):
        lines = path.read_text().splitlines()
        texts += ["\n".join(lines[i : i + 12]) for i in range(0, len(lines), 12)]
    texts = sorted(texts[: args.texts], key=lambda text: -len(text))
    embedder = LazyEmbedder(DEFAULT_MODEL, batch_size=32)
    embedder.embed(texts[:8])  # load (and export) before timing
    sizes = [len(texts), 128, 32]
    seconds: dict[int, list[float]] = {size: [] for size in sizes}
    for number in range(args.rounds):
        for size in sizes if number % 2 == 0 else list(reversed(sizes)):
            start = time.perf_counter()
            for first in range(0, len(texts), size):
                embedder.embed(texts[first : first + size])
            seconds[size].append(time.perf_counter() - start)
    medians = {size: statistics.median(found) for size, found in seconds.items()}
    print(json.dumps({
        "texts": len(texts), "rounds": args.rounds,
        "seconds": {str(size): round(value, 2) for size, value in medians.items()},
        "ratio_to_one_call": {str(size): round(value / medians[len(texts)], 3) for size, value in medians.items()},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
