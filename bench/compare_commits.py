"""Run the same benchmark commands on two commits, interleaved, and report ratios.

    python bench/compare_commits.py BASE [NEW] [--rounds 3] [--only NAME ...]

Each commit is checked out into its own temporary worktree; each benchmark runs
there with that worktree first on PYTHONPATH (and as the working folder, so
``python -m indexer`` is that commit's code), in the order BASE, NEW, BASE, NEW...
so that both sides see the same machine load. Every numeric figure of each
benchmark's JSON output is compared: the median over the rounds on each side and
the ratio NEW / BASE. A refactoring that changes no behaviour should give ratios
near 1 (times and memory) and exactly 1 (counts, recall, quality).

Writes ``bench/out/compare.json`` and prints a Markdown table of the figures
that differ (with ``--all``, every figure) and a count of the identical ones.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# name -> (script, arguments). Sizes are small enough for a
# two-sided run in tens of minutes; the README's commands use the defaults.
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "eval_retrieval": ("bench/eval_retrieval.py", []),
    "index": ("bench/bench_index.py", ["--files", "100", "--queries", "100"]),
    "scale": (
        "bench/bench_scale.py",
        ["--chunks", "20000", "--real", "400", "--small-files", "100", "--cold-files", "300", "--cold-runs", "5",
         "--queries", "100"],
    ),
    "search_cost": ("bench/bench_search_cost.py", ["--files", "300", "--queries", "150"]),
    "rebuild": ("bench/bench_rebuild.py", ["--files", "150", "--warm-runs", "3"]),
    "watch": ("bench/bench_watch.py", ["--files", "200", "--edits", "30", "--tree-files", "1000"]),
    "mcp": ("bench/bench_mcp.py", ["--files", "200", "--queries", "100", "--starts", "3", "--cold", "5"]),
    "pg": (
        "bench/bench_pg.py",
        ["--chunks", "10000", "--real", "400", "--queries", "60", "--duration", "10", "--writers", "2",
         "--writer-files", "30", "--no-churn", "--fast"],
    ),
}
WORKDIR_FLAGS = {"--workdir", "--work"}
RUN_TIMEOUT_S = 1800


def worktree(commit: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where), commit], check=True)
    return where


def run_one(tree: Path, name: str, out: Path, scratch: Path) -> dict[str, Any] | None:
    script, arguments = BENCHMARKS[name]
    if not (tree / script).exists():
        print(f"  {name}: {script} missing at {tree.name}", file=sys.stderr)
        return None
    command = [sys.executable, script, *arguments]
    source = (tree / script).read_text()
    if "--out" in source:
        command += ["--out", str(out)]
    for flag in WORKDIR_FLAGS:  # a fresh work folder per run: no side reuses the other's index
        if f'"{flag}"' in source:
            command += [flag, str(scratch)]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    # Its own process group: a benchmark that dies leaving a child behind (a watcher
    # holding the output pipes) is ended with the whole group at the timeout.
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        stderr += f"\n(killed after {RUN_TIMEOUT_S} s)"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever the benchmark left running
        except ProcessLookupError:
            pass
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(f"  {name} failed at {tree.name} ({result.returncode}):\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    figures: dict[str, Any] = {"wall_seconds": seconds}
    if out.exists():
        figures["out"] = json.loads(out.read_text())
    else:  # the script printed its figures
        figures["stdout"] = result.stdout
    return figures


def numbers(data: Any, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of a JSON value, by its dotted path (lists by index)."""
    found: dict[str, float] = {}
    if isinstance(data, bool):
        return found
    if isinstance(data, (int, float)):
        found[prefix] = float(data)
    elif isinstance(data, dict):
        for key, value in data.items():
            found.update(numbers(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list) and len(data) <= 50:
        for index, value in enumerate(data):
            found.update(numbers(value, f"{prefix}[{index}]"))
    return found


def stdout_numbers(text: str) -> dict[str, float]:
    """Figures of a table printed as text: every number, keyed by its row and column."""
    found = {}
    for row, line in enumerate(text.splitlines()):
        cells = [c.strip() for c in line.replace("|", " ").split()]
        label = cells[0] if cells else str(row)
        for column, cell in enumerate(cells):
            try:
                found[f"{label}#{row}.{column}"] = float(cell)
            except ValueError:
                continue
    return found


def compare(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    keys = set.intersection(*(set(r["base"]) & set(r["new"]) for r in rounds)) if rounds else set()
    table = {}
    for key in sorted(keys):
        base = statistics.median(r["base"][key] for r in rounds)
        new = statistics.median(r["new"][key] for r in rounds)
        table[key] = {"base": base, "new": new, "ratio": (new / base) if base else (1.0 if new == base else float("inf"))}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("new", nargs="?", default="HEAD")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS))
    parser.add_argument("--all", action="store_true", help="print every figure, not only timings and quality")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "compare.json")
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    results: dict[str, Any] = {"base": args.base, "new": args.new, "rounds": args.rounds, "benchmarks": {}}
    with tempfile.TemporaryDirectory(prefix="memdex-compare-") as tmp:
        os.chmod(tmp, 0o755)  # bench_pg's server runs as an unprivileged user that must reach its folder
        trees = {side: worktree(commit, Path(tmp) / side) for side, commit in (("base", args.base), ("new", args.new))}
        try:
            for name in names:
                per_round = []
                for number in range(args.rounds):
                    figures = {}
                    for side, tree in trees.items():
                        out = Path(tmp) / f"{name}-{side}-{number}.json"
                        scratch = Path(tmp) / f"work-{name}-{side}-{number}"
                        print(f"{name}: round {number + 1}/{args.rounds}, {side}", file=sys.stderr, flush=True)
                        run = run_one(tree, name, out, scratch)
                        if run is None:
                            break
                        flat = numbers(run.get("out", {})) or stdout_numbers(run.get("stdout", ""))
                        flat["wall_seconds"] = run["wall_seconds"]
                        figures[side] = flat
                    if len(figures) == 2:
                        per_round.append(figures)
                results["benchmarks"][name] = compare(per_round)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=2))
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    print_table(results, every=args.all)


def print_table(results: dict[str, Any], *, every: bool) -> None:
    print(f"| benchmark | figure | {results['base']} | {results['new']} | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name, table in results["benchmarks"].items():
        for key, row in table.items():
            if not every and abs(row["ratio"] - 1) < 1e-9 and key != "wall_seconds":
                continue  # identical figures (counts, quality) are summarised below
            print(f"| {name} | {key} | {row['base']:.4g} | {row['new']:.4g} | {row['ratio']:.3f} |")
        same = sum(1 for key, row in table.items() if abs(row["ratio"] - 1) < 1e-9)
        print(f"| {name} | ({same} of {len(table)} figures identical) | | | |")


if __name__ == "__main__":
    main()
