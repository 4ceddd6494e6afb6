"""Session transcripts: index throughput of a large transcript, and an append as a fresh process.

    python bench/bench_sessions.py [--turns 6000] [--appends 3] [--workdir DIR] [--out bench/out/sessions.json]

A generated OpenClaw session file (``--turns`` user/assistant messages with
thinking and tool blocks, as real ones carry) in its own session folder is indexed
by ``memdex index`` as a fresh process (real model, default settings but
``max_file_bytes`` raised to hold it): seconds, MB/s and chunks/s. Then, ``--appends``
times, two messages are appended and ``memdex index`` runs again as a fresh process
("tail": the file only grew, so it is parsed, chunked and embedded from its last
chunk on), side by side with the same growth written as a new file over the old
one ("whole": another inode, so the whole file is parsed and chunked again; its
vectors come from the embedding cache). Both embed the same one or two chunks;
the difference is the parse, chunk and write of everything before. A no-op
``memdex index`` (nothing changed) is the floor of a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("garden invoice ferry kestrel lantern orchard tulip quokka ledger harbour pepper violin "
         "meeting budget flight dentist recipe passport window bicycle printer backup").split()  # fmt: skip


def message(i: int, rng: random.Random) -> str:
    role = "user" if i % 2 == 0 else "assistant"
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60))) + f" (item {i})"
    content: list[dict[str, object]] = [{"type": "text", "text": text}]
    if role == "assistant" and i % 3 == 0:
        content = [{"type": "thinking", "thinking": "let me think " * 20}, *content,
                   {"type": "toolCall", "id": f"t{i}", "name": "search", "arguments": {"q": text[:40]}}]  # fmt: skip
    stamp = f"2026-11-{1 + i // 2000:02d}T{(i // 120) % 24:02d}:{(i // 2) % 60:02d}:00.000Z"
    return json.dumps({"type": "message", "id": str(i), "parentId": str(i - 1), "timestamp": stamp,
                       "message": {"role": role, "content": content}}) + "\n"  # fmt: skip


def memdex(root: Path, folder: Path, *args: str) -> tuple[float, dict[str, object]]:
    env = {**os.environ, "MEMDEX_MAX_FILE_BYTES": str(2**31)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "--root", str(root), "--session-folder", str(folder), *args, "--json"],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    return time.perf_counter() - started, json.loads(done.stdout)


def parse_speed(path: Path) -> float:
    """MB/s of the parse and chunk stage alone (in this process, a regex word count standing in
    for the tokenizer): what a transcript costs before the model sees it."""
    import re

    from indexer.sources.sessions.source import chunk_transcript, parse_transcript

    words = re.compile(r"\w+|[^\w\s]")
    data = path.read_bytes()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        chunk_transcript(parse_transcript(data), count_tokens=lambda t: [len(words.findall(x)) for x in t], max_tokens=256)
        best = min(best, time.perf_counter() - started)
    return round(len(data) / 2**20 / best, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=6000)
    parser.add_argument("--appends", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench/out/sessions.json"))
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="memdex-sessions-"))
    root, folder = work / "memory", work / "agents" / "main" / "sessions"
    root.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    path = folder / "main.jsonl"
    path.write_text(json.dumps({"type": "session", "version": 3, "id": "main", "timestamp": "2026-11-01T00:00:00Z"}) + "\n"
                    + "".join(message(i, rng) for i in range(args.turns)))  # fmt: skip
    size = path.stat().st_size
    seconds, full = memdex(root, folder, "index")
    chunks = int(full["chunks_embedded"])  # type: ignore[arg-type]
    results: dict[str, object] = {
        "turns": args.turns, "bytes": size, "full_index_seconds": round(seconds, 2),
        "mb_per_second": round(size / 2**20 / seconds, 2), "chunks": chunks, "chunks_per_second": round(chunks / seconds, 1),
    }  # fmt: skip
    results["parse_chunk_mb_per_second"] = parse_speed(path)
    noop, _ = memdex(root, folder, "index")
    tail_times, whole_times, counts = [], [], []
    turn = args.turns
    for _ in range(args.appends):
        with path.open("a", encoding="utf-8") as handle:  # tail: the file only grew
            handle.write(message(turn, rng) + message(turn + 1, rng))
        turn += 2
        seconds, report = memdex(root, folder, "index")
        tail_times.append(seconds)
        counts.append((report["tail_only"], report["chunks_embedded"]))
        grown = path.read_text(encoding="utf-8") + message(turn, rng) + message(turn + 1, rng)
        turn += 2
        fresh = path.with_suffix(".tmp")
        fresh.write_text(grown, encoding="utf-8")
        os.replace(fresh, path)  # whole: a new inode, read whole (vectors from the cache)
        seconds, report = memdex(root, folder, "index")
        whole_times.append(seconds)
        counts.append((report["tail_only"], report["chunks_embedded"]))
    results.update({
        "noop_index_seconds": round(noop, 3),
        "append_tail_seconds_median": round(statistics.median(tail_times), 3),
        "append_whole_seconds_median": round(statistics.median(whole_times), 3),
        "whole_over_tail": round(statistics.median(whole_times) / statistics.median(tail_times), 2),
        "tail_times": [round(t, 3) for t in tail_times], "whole_times": [round(t, 3) for t in whole_times],
        "tail_only_and_embedded_per_run": counts,
        "load_average": os.getloadavg()[0],
    })  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
