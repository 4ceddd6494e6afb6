"""The ranking ablation in README: each step on the REALTALK-style dev set (per
chat and one combined index) and on the labelled fixture.

    python bench/ablation.py [--data ../shared/realtalk] [--out bench/out/ablation.json]

Runs bench/eval_realtalk.py and bench/eval_retrieval.py once per step (the
indexes and embedding caches of earlier runs are reused) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from eval_realtalk import default_data  # noqa: E402

# (label, eval_realtalk options, eval_retrieval options)
STEPS = [
    ("main today: limit 10, no budget", ["ranking=none", "budget_lines=None", "limit=10"], ["--ranking", "none", "--budget-lines", "0"]),
    ("main today: limit 40, no budget", ["ranking=none", "budget_lines=None", "limit=40"], ["--ranking", "none", "--budget-lines", "0"]),
    ("+ 50-line budget (merge, trim)", ["ranking=none"], ["--ranking", "none"]),
    ("+ heading-only chunks last", ["ranking=file_prior:0,folder_prior:0,skip_filler:0"], ["--ranking", "file_prior:0,folder_prior:0,skip_filler:0"]),
    ("+ file prior 0.3", ["ranking=folder_prior:0,skip_filler:0"], ["--ranking", "folder_prior:0,skip_filler:0"]),
    ("+ folder prior 0.3", ["ranking=skip_filler:0"], ["--ranking", "skip_filler:0"]),
    ("+ blank/heading lines at the edges not read (default)", [], []),
    ("sensitivity: file prior 0.15", ["ranking=file_prior:0.15"], ["--ranking", "file_prior:0.15"]),
    ("sensitivity: file prior 0.5", ["ranking=file_prior:0.5"], ["--ranking", "file_prior:0.5"]),
    ("sensitivity: folder prior 0.15", ["ranking=folder_prior:0.15"], ["--ranking", "folder_prior:0.15"]),
    ("sensitivity: folder prior 0.5", ["ranking=folder_prior:0.5"], ["--ranking", "folder_prior:0.5"]),
    ("round two, dropped: re-rank depth 200", ["ranking=depth:200"], ["--ranking", "depth:200"]),
    ("round two, opt-in: keyword feedback, 16 terms", ["ranking=expand_terms:16"], ["--ranking", "expand_terms:16"]),
    ("round three: no date boost", ["ranking=date_boost:0"], ["--ranking", "date_boost:0"]),
    ("round three: date boost, the log's own day only", ["ranking=date_told:0"], ["--ranking", "date_told:0"]),
    ("round three: date boost 0.2", ["ranking=date_boost:0.2"], ["--ranking", "date_boost:0.2"]),
    ("round three, opt-in: recency prior 0.05", ["ranking=recency:0.05"], ["--ranking", "recency:0.05"]),
    ("round three, opt-in: recency prior 0.1", ["ranking=recency:0.1"], ["--ranking", "recency:0.1"]),
]
CATEGORIES = ("1 multi-hop", "2 temporal", "3 commonsense", "ALL")


def realtalk(data: Path, tag: str, options: list[str], combined: bool) -> dict:
    command = [sys.executable, str(REPO / "bench" / "eval_realtalk.py"), "--data", str(data), "--tag", tag]
    command += ["--combined"] if combined else []
    for option in options:
        command += ["--option", option]
    subprocess.run(command, check=True, capture_output=True, text=True)
    name = ("results-combined" if combined else "results") + f"-{tag}.score.json"
    return json.loads((REPO / "bench" / "out" / "realtalk" / name).read_text())


def fixture(options: list[str]) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "eval_retrieval.py"), *options],
        check=True, capture_output=True, text=True, cwd=REPO,
    ).stdout  # fmt: skip
    row = next(line for line in out.splitlines() if line.startswith("| all "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    return float(cells[4]), float(cells[7])  # hybrid R@5, hybrid MRR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "ablation.json")
    parser.add_argument("--only", help="regex: run only the steps whose label matches")
    args = parser.parse_args()
    rows = []
    for number, (label, options, fixture_options) in enumerate(STEPS):
        if args.only and not re.search(args.only, label):
            continue
        tag = f"ablation{number}"
        per_chat = realtalk(args.data, tag, options, combined=False)["table"]
        combined = realtalk(args.data, tag, options, combined=True)["table"]
        r5, mrr = fixture(fixture_options)
        rows.append({"step": label, "per_chat": per_chat, "combined": combined, "fixture": {"R@5": r5, "MRR": mrr}})
        print(f"done: {label}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    head = ["step"] + [f"{c.split()[-1]} hit/cov@50L" for c in CATEGORIES] + ["combined all hit/cov@50L", "fixture R@5 / MRR"]
    print("| " + " | ".join(head) + " |")
    print("|---" * len(head) + "|")
    for row in rows:
        cells = [row["step"]]
        cells += [f"{row['per_chat'][c]['hit@50L']:.3f} / {row['per_chat'][c]['cov@50L']:.3f}" for c in CATEGORIES]
        cells.append(f"{row['combined']['ALL']['hit@50L']:.3f} / {row['combined']['ALL']['cov@50L']:.3f}")
        cells.append(f"{row['fixture']['R@5']:.3f} / {row['fixture']['MRR']:.3f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
