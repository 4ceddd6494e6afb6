"""memdex's own cost of a full index, without a model: two source trees side by side.

    python bench/bench_sync_overhead.py BASE_TREE NEW_TREE [--files 1000] [--rounds 8]

Each round indexes the same generated folder (``--files`` notes of 8 sections) into a new
SQLite index with a fake model (a seeded random vector per text: no model time), once with
each tree, as fresh processes, alternating which tree goes first. Prints the wall and CPU
seconds of each run and the ratio of the medians NEW / BASE. CPU time (all threads) is the
steadier figure on a loaded machine. A tree is a checkout, e.g. ``git worktree add
/tmp/base 36ba7e0``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import hashlib, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np
from indexer import make_settings, open_index

class Fake:
    model_id, dimensions, max_tokens = "test/fake", 16, 256
    def count_tokens(self, texts): return [len(t.split()) + 2 for t in texts]
    def embed(self, texts):
        out = np.zeros((len(texts), 16), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(16)
            out[i] = v / np.linalg.norm(v)
        return out

tmp = Path(tempfile.mkdtemp())
root = tmp / "m"
for n in range(int(sys.argv[1])):
    p = root / "notes" / f"n{n:04d}.md"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(f"# Section {k}\n\nfact {n} {k} about the harbour and the ferry timetable\n\n" for k in range(8)))
wall, cpu = time.perf_counter(), time.process_time()
with open_index(make_settings(root), write=True, embedder=Fake()) as index:
    report = index.sync()
print(time.perf_counter() - wall, time.process_time() - cpu, report.chunks_embedded)
shutil.rmtree(tmp)
"""


def run(tree: Path, files: int) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(files)], cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall, cpu, _ = out.stdout.split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    times: dict[str, list[tuple[float, float]]] = {"base": [], "new": []}
    for round_ in range(args.rounds):
        order = ("base", "new") if round_ % 2 else ("new", "base")
        for side in order:
            times[side].append(run(getattr(args, side).resolve(), args.files))
            print(side, *(f"{value:.3f}" for value in times[side][-1]), flush=True)
    for column, name in ((0, "wall"), (1, "cpu")):
        base = statistics.median(t[column] for t in times["base"])
        new = statistics.median(t[column] for t in times["new"])
        print(f"{name}: base {base:.3f} s, new {new:.3f} s, ratio {new / base:.3f}")


if __name__ == "__main__":
    main()
