"""Soak: the central properties with many more examples and trials than CI runs.

    python bench/soak.py [--examples 2000] [--kill-trials 100] [--flip-trials 100]
                         [--hostile-examples 500] [--only PART] [--seed N]

Runs, in one pytest process each:
- the hypothesis property "any edits with syncs in between equal a fresh
  rebuild" (and its variant with syncs of just the changed paths) with
  ``--examples`` examples (CI: 100);
- ``--kill-trials`` writers (sync or rebuild) killed with SIGKILL at random
  moments, each followed by ``check`` (never corrupt) and an ``index`` that
  must equal a fresh rebuild (CI: 5);
- ``--flip-trials`` indexes with 30 random bits flipped, each found by
  ``check`` or harmless, and repaired to equal a fresh rebuild (CI: 8);
- ``--hostile-examples`` examples each of hostile frontmatter (billion laughs,
  recursive anchors, deep nesting, huge titles, odd tags, broken YAML) and of
  hostile paths (newlines, control characters, long and odd names, symlinks
  out of the root and in loops): no sync raises, nothing corrupt, ``get``
  returns every chunk's lines, equal to a fresh rebuild (CI: 25).

Each part reports its peak RSS (the pytest process) and the tracebacks in its
output (expected: 0).

Prints one JSON line per part and a summary; the exit status is 0 only if every
part passed. A failing part stops at its first failing trial or example and
prints it (hypothesis shrinks it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PARTS = {
    "property": ("tests/test_invariants.py", "fresh_rebuild", "MEMDEX_HYPOTHESIS_EXAMPLES"),
    "kill -9": ("tests/test_recovery.py", "writer_killed_at_random_moments", "MEMDEX_KILL_TRIALS"),
    "bit flips": ("tests/test_recovery.py", "flipped_bytes", "MEMDEX_FLIP_TRIALS"),
    "hostile frontmatter": ("tests/test_hostile.py", "frontmatter", "MEMDEX_HOSTILE_EXAMPLES"),
    "hostile paths": ("tests/test_hostile.py", "paths", "MEMDEX_HOSTILE_EXAMPLES"),
}


def run_part(name: str, count: int, seed: int) -> dict:
    path, selector, variable = PARTS[name]
    env = {**os.environ, variable: str(count), "MEMDEX_RECOVERY_SEED": str(seed)}
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", path, "-k", selector],
            cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
    summary = (text.strip().splitlines() or [""])[-1]
    outcome = {"part": name, "trials": count, "passed": process.returncode == 0, "pytest": summary,
               "seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024),
               "tracebacks": text.count("Traceback (most recent call last)")}  # fmt: skip
    if process.returncode != 0:
        outcome["output"] = text[-4000:]
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--kill-trials", type=int, default=100)
    parser.add_argument("--flip-trials", type=int, default=100)
    parser.add_argument("--hostile-examples", type=int, default=500)
    parser.add_argument("--only", choices=sorted(PARTS), action="append", help="Run only this part (repeatable).")
    parser.add_argument("--seed", type=int, default=20261121)
    args = parser.parse_args()
    counts = {"property": args.examples, "kill -9": args.kill_trials, "bit flips": args.flip_trials,
              "hostile frontmatter": args.hostile_examples, "hostile paths": args.hostile_examples}  # fmt: skip
    outcomes = []
    for name, count in counts.items():
        if args.only and name not in args.only:
            continue
        outcome = run_part(name, count, args.seed)
        print(json.dumps({k: v for k, v in outcome.items() if k != "output"}), flush=True)
        if "output" in outcome:
            print(outcome["output"], flush=True)
        outcomes.append(outcome)
    failures = sum(not outcome["passed"] for outcome in outcomes)
    print(json.dumps({"parts": len(outcomes), "failed_parts": failures}))
    out = REPO / "bench" / "out" / "soak.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps([{k: v for k, v in o.items() if k != "output"} for o in outcomes], indent=2))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
