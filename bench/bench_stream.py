"""A file that never stops changing: is it searchable while it is still written?

    python bench/bench_stream.py [--seconds 8] [--interval 0.05] [--max-wait 2]
                                 [--workdir DIR] [--out bench/out/stream.json]

``memdex watch`` runs as its own process with the real model (default debounce,
``--max-wait`` as given) on a small memory folder. A writer then appends one line
with a unique word to ``log.md`` every ``--interval`` seconds for ``--seconds``.
Every 20 ms this process reads the indexed chunks of ``log.md`` (a read-only
connection) and notes the newest appended word in them: each time it grows
while writing goes on, an index version became visible, and its delay is the
time since that word was appended. Reported:
how many index versions became visible during the writing, the first one's
delay from the first append, the median and worst append-to-searchable delay,
and the time from the last append to the last word being searchable.
Before the fix the file was never indexed while it was being written
("changed during sync; left for the next sync").
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from indexer import make_settings, open_index
from indexer.watch.state import watcher_status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--max-wait", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "stream.json")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="memdex-stream-"))
    root = work / "memory"
    (root / "daily").mkdir(parents=True, exist_ok=True)
    (root / "MEMORY.md").write_text("# Facts\n\n- the user likes tea\n")
    log = root / "log.md"
    log.write_text("# Log\n\n")
    run_id = f"{time.time_ns() % 10**8:08d}"  # unique words per run, even in a reused --workdir
    watcher = subprocess.Popen(
        [sys.executable, "-m", "indexer", "--root", str(root), "watch", "--max-wait", str(args.max_wait)]
    )
    try:
        deadline = time.monotonic() + 600
        while not (watcher_status(root / ".memdex") or {}).get("last_sync"):
            if watcher.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the watcher did not start")
            time.sleep(0.1)
        appended: list[tuple[str, float]] = []  # (word, monotonic time of its append)
        done = threading.Event()

        def writer() -> None:
            with open(log, "a", encoding="utf-8") as handle:
                end = time.monotonic() + args.seconds
                n = 0
                while time.monotonic() < end:
                    word = f"stream{run_id}x{n:05d}"
                    handle.write(f"- {word} happened\n")
                    handle.flush()
                    appended.append((word, time.monotonic()))
                    n += 1
                    time.sleep(args.interval)
            done.set()

        thread = threading.Thread(target=writer)
        started = time.monotonic()
        thread.start()
        settings = make_settings(root)
        delays: list[float] = []  # append -> searchable, for words found while writing went on
        versions = 0
        first_visible = None
        found_upto = -1
        last_found_at = None
        pattern = re.compile(rf"stream{run_id}x(\d+)")
        with open_index(settings) as reader:
            while True:
                writing = not done.is_set()
                texts = reader.store.connection.execute("SELECT text FROM chunks WHERE path = 'log.md'").fetchall()
                numbers = [int(n) for (text,) in texts for n in pattern.findall(text)]
                now = time.monotonic()
                newest = max(numbers, default=-1)
                if newest > found_upto:
                    if writing:
                        versions += 1
                        delays.append(now - appended[newest][1])
                        if first_visible is None:
                            first_visible = now - started
                    found_upto = newest
                    last_found_at = now
                if not writing and found_upto == len(appended) - 1:
                    break
                if now - started > args.seconds + 120:
                    break
                time.sleep(0.02)
        thread.join()
        result = {
            "seconds_written": args.seconds,
            "append_interval_s": args.interval,
            "max_wait_s": args.max_wait,
            "lines_appended": len(appended),
            "versions_searchable_while_writing": versions,
            "first_searchable_after_s": round(first_visible, 3) if first_visible is not None else None,
            "append_to_searchable_median_s": round(statistics.median(delays), 3) if delays else None,
            "append_to_searchable_max_s": round(max(delays), 3) if delays else None,
            "last_append_to_searchable_s": round(last_found_at - appended[-1][1], 3) if last_found_at else None,
        }
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=60)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
