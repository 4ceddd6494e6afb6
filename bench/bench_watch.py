"""Watcher benchmark: edit-to-searchable latency, chunks embedded per edit, and
the watcher's open files, inotify watches and memory on a 10,000-file tree.

    python bench/bench_watch.py [--files 1000] [--edits 60] [--tree-files 10000]
                                [--workdir DIR] [--out bench/out/watch.json]

Latency: a generated folder of ``--files`` files (1,000 -> ~10K chunks) is
indexed, then ``memdex watch`` runs as its own process (real model, default
settings). Each edit appends a line with a unique word to a random daily log;
the clock stops when a keyword search from this process finds the word (polled
every 5 ms through a read-only connection). "Embedded per edit" counts the new
rows in the embedding cache. Tree: 10,000 one-paragraph notes in 1,000
folders, watched after their initial sync. ``--workdir`` keeps the folders and
indexes so a second run skips the slow first index.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import apsw  # noqa: E402
from generate import append_line, generate_memory  # noqa: E402

from indexer import make_settings, open_index  # noqa: E402
from indexer.watch.state import watcher_status  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def memdex(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indexer", "--root", str(root), *args], check=True, **kwargs)


def start_watcher(root: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "indexer", "--root", str(root), "watch"])
    index_dir = root / ".memdex"
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        state = watcher_status(index_dir)
        if state and state.get("pid") == process.pid and state.get("last_sync"):
            return process
        if process.poll() is not None:
            raise SystemExit(f"watcher exited with {process.returncode}")
        time.sleep(0.1)
    raise SystemExit("watcher did not finish its initial sync")


def stop_watcher(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def cache_rows(root: Path) -> int:
    connection = apsw.Connection(str(root / ".memdex" / "embeddings.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return connection.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    finally:
        connection.close()


def process_figures(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    fds = os.listdir(f"/proc/{pid}/fd")
    watches = 0
    for fd in fds:
        try:
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        watches += sum(1 for line in info.splitlines() if line.startswith("inotify wd:"))
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "peak_rss_mb": int(fields["VmHWM"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "open_fds": len(fds),
        "inotify_watches": watches,
    }


def latency(workdir: Path, files: int, edits: int, seed: int) -> dict:
    root = workdir / "latency"
    if not (root / ".memdex" / "index.db").exists():
        generate_memory(root, files=files, seed=seed)
        print(f"indexing {files} files (slow the first time; --workdir keeps it)...", flush=True)
        memdex(root, "index")
    settings = make_settings(root)
    with open_index(settings) as index:
        chunks = index.status()["chunks"]
    dailies = sorted((root / "daily").glob("*.md"))
    rng = random.Random(seed)
    watcher = start_watcher(root)
    seconds, embedded = [], []
    try:
        with open_index(settings) as reader:
            for number in range(edits):
                word = f"zqx{uuid.uuid4().hex[:12]}"  # never seen before, even in a reused --workdir
                before = cache_rows(root)
                started = time.perf_counter()
                append_line(rng.choice(dailies), f"- Noted the code word {word} today.")
                deadline = started + 30
                while not reader.search(word, mode="keyword", limit=1):
                    if time.perf_counter() > deadline:
                        raise SystemExit(f"edit {number} never became searchable")
                    time.sleep(0.005)
                seconds.append(time.perf_counter() - started)
                time.sleep(0.3)  # let the watcher settle so edits do not overlap
                embedded.append(cache_rows(root) - before)
        figures = process_figures(watcher.pid)
    finally:
        exit_code = stop_watcher(watcher)
    ms = [s * 1000 for s in seconds]
    return {
        "files": files,
        "chunks": chunks,
        "edits": edits,
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "max_ms": round(max(ms), 1),
        "all_ms": [round(value) for value in ms],
        "embedded_per_edit": {str(k): embedded.count(k) for k in sorted(set(embedded))},
        "watcher": figures,
        "watcher_exit_code": exit_code,
    }


def tree(workdir: Path, files: int, seed: int) -> dict:
    root = workdir / "tree"
    if not (root / ".memdex" / "index.db").exists():
        rng = random.Random(seed)
        folders = max(1, files // 10)
        for number in range(files):
            folder = root / f"area{number % folders:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"note{number:05d}.md").write_text(
                f"# Note {number}\n\nRemember item {rng.randrange(10**6)} about topic {number % 97}.\n"
            )
        print(f"indexing the {files}-file tree...", flush=True)
        memdex(root, "index")
    started = time.perf_counter()
    watcher = start_watcher(root)
    ready = time.perf_counter() - started
    try:
        figures = process_figures(watcher.pid)
    finally:
        exit_code = stop_watcher(watcher)
    return {"files": files, "folders": max(1, files // 10), "start_to_ready_s": round(ready, 2),
            "watcher": figures, "watcher_exit_code": exit_code}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=60)
    parser.add_argument("--tree-files", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/out/watch.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        result = {"latency": latency(workdir, args.files, args.edits, args.seed)}
        print(json.dumps(result, indent=2), flush=True)
        if args.tree_files:
            result["tree"] = tree(workdir, args.tree_files, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
