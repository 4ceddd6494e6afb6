"""``status`` at a few thousand files: two source trees side by side, SQLite and PostgreSQL.

    python bench/bench_status.py BASE_TREE NEW_TREE [--files 3000] [--transcripts 40]
                                 [--rounds 7] [--calls 20] [--engines sqlite,postgresql]

One generated folder: ``--files`` notes of 4 sections and ``--transcripts`` session
transcripts, a tenth of them over their bound (``session_max_file_bytes`` 20000). Each tree
indexes it into its own index (SQLite: a file; PostgreSQL: its own database on one throwaway
server from NEW_TREE/tests/pg_server.py, since a tree migrates the schema it opens) with a
fake model, in a fresh process. Then ``--rounds`` rounds, alternating which tree goes first,
each a fresh process per tree that calls ``MemoryIndex.status()`` ``--calls`` times and prints
the median CPU and wall milliseconds of a call. Prints the medians over the rounds, the ratio
NEW / BASE, and the rows ``partly_indexed`` reads (BASE: every file's state; NEW: the
transcripts over the bound). CPU time is the steadier figure on a shared machine.
A tree is a checkout, e.g. ``git worktree add /tmp/base cf6c4a4``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BOUND = 20_000

CHILD = r"""
import hashlib, json, statistics, sys, time
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

mode, root, chats, where, calls = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
options = {"session_folders": [chats], "session_max_file_bytes": %(bound)d}
if where.startswith("postgresql://"):
    settings = make_settings(root, where, namespace="bench", **options)
else:
    settings = make_settings(root, Path(where), **options)
if mode == "build":
    with open_index(settings, write=True, embedder=Fake()) as index:
        report = index.sync()
    print(json.dumps({"files": report.files_seen}))
    sys.exit()
with open_index(settings, embedder=Fake()) as index:
    index.status()  # warm: connections, caches
    cpu, wall = [], []
    for _ in range(calls):
        w, c = time.perf_counter(), time.process_time()
        info = index.status()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    store = index.store
    rows = len(store.files_over("session", %(bound)d)) if hasattr(store, "files_over") else len(store.file_states())
print(json.dumps({"cpu_ms": 1000 * statistics.median(cpu), "wall_ms": 1000 * statistics.median(wall),
                  "partly": len(info["partly_indexed"]), "files": info["files"], "partly_rows_read": rows}))
""" % {"bound": BOUND}


def generate(folder: Path, files: int, transcripts: int) -> tuple[Path, Path]:
    root, chats = folder / "memory", folder / "chats"
    for n in range(files):
        path = root / "notes" / f"d{n % 50:02d}" / f"n{n:05d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"# Section {k}\n\nfact {n} {k} about the harbour and the ferry timetable\n\n" for k in range(4)))
    chats.mkdir(parents=True)
    for t in range(transcripts):
        turns = 400 if t % 10 == 0 else 40  # a tenth over the bound
        lines = (
            json.dumps({"role": "user", "content": f"message {i} of chat {t} about the lighthouse",
                        "timestamp": f"2026-11-01T09:{i % 60:02d}:00Z"})
            for i in range(turns)
        )  # fmt: skip
        (chats / f"c{t:03d}.jsonl").write_text("\n".join(lines) + "\n")
    return root, chats


def child(tree: Path, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args], cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"{tree}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--transcripts", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "new": args.new.resolve()}
    work = Path(tempfile.mkdtemp(prefix="memdex-bench-status-"))
    server = None
    try:
        root, chats = generate(work, args.files, args.transcripts)
        for engine in args.engines.split(","):
            where = {}
            if engine == "postgresql":
                sys.path.insert(0, str(trees["new"] / "tests"))
                from pg_server import PgServer

                server = server or PgServer.start()
                where = {name: server.create_database(f"status_{name}") for name in trees}
            else:
                where = {name: str(work / f"{name}.db") for name in trees}
            for name, tree in trees.items():
                child(tree, "build", str(root), str(chats), where[name], "0")
            runs: dict[str, list[dict]] = {name: [] for name in trees}
            for r in range(args.rounds):
                order = list(trees) if r % 2 == 0 else list(reversed(trees))
                for name in order:
                    runs[name].append(child(trees[name], "status", str(root), str(chats), where[name], str(args.calls)))
            cpu = {name: statistics.median(run["cpu_ms"] for run in runs[name]) for name in trees}
            wall = {name: statistics.median(run["wall_ms"] for run in runs[name]) for name in trees}
            for name in trees:
                last = runs[name][-1]
                print(f"{engine:<10} {name:<4} status: cpu {cpu[name]:7.2f} ms, wall {wall[name]:7.2f} ms; "
                      f"{last['files']} files, {last['partly']} partly indexed, "
                      f"partly_indexed reads {last['partly_rows_read']} rows")  # fmt: skip
            print(f"{engine:<10} new/base: cpu {cpu['new'] / cpu['base']:.2f}, wall {wall['new'] / wall['base']:.2f}")
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
