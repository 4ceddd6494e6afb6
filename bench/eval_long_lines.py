"""Long lines: the dev set re-shaped as user/assistant transcripts, read under a token budget.

    python bench/eval_long_lines.py [--data ../shared/realtalk] [--group 30] [--read-tokens 1500]

Session transcripts and exported chats keep one message per line, and an
assistant's message is often thousands of characters long. This benchmark
makes that shape from REALTALK (read by path, never copied into the project):
in each day file, one message stays a short line (the "user"), the next
``--group`` messages are joined into one long line (the "assistant"), and so
on. The re-shaped folders and their indexes go under ``--work``
(``bench/out/longlines``); a question's gold messages keep their text, now
inside a long line.

An assistant reads the results in rank order until ``--read-tokens`` estimated
tokens (four characters each) are spent: a result's ``excerpt`` when it has one
(a long line cut to its best part), else its cited lines, read from their
start and cut where the budget ends. A gold message counts as found when its
text is in what was read. Reported per search configuration: hit (a gold
message found), cov (share found), tokens read on average, and the citation
view (a gold line inside the cited ranges, read or not).

Configurations: the default search (50 lines or 1,500 tokens, whichever fills
first, long lines cut to their best part), the same with vector search alone
(``mode="vector"``: what the chunk vectors find), and the line budget alone
(``budget_tokens=0``, the old default), read under the same token budget and
with no reading bound at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from eval_realtalk import QueryCache, default_data  # noqa: E402

from indexer import make_settings, open_index  # noqa: E402
from indexer.config.settings import DEFAULT_BUDGET_TOKENS  # noqa: E402
from indexer.embedding.torch_backend import SentenceTransformerEmbedder  # noqa: E402
from indexer.retrieval import budget as budget_module  # noqa: E402
from indexer.retrieval.budget import estimate_tokens  # noqa: E402



def reshape(source: Path, target: Path, group: int) -> dict[tuple[str, int], int]:
    """Write ``source``'s day files to ``target`` with long lines; (path, old line) -> new line."""
    moved: dict[tuple[str, int], int] = {}
    for path in sorted(source.rglob("*.md")):
        rel = path.relative_to(source).as_posix()
        out: list[str] = []
        pending: list[tuple[int, str]] = []  # (old line, message) waiting to join the long line
        short_next = True

        def flush() -> None:
            if pending:
                out.append("- assistant: " + " ".join(text for _, text in pending))
                for number, _ in pending:
                    moved[(rel, number)] = len(out)
                pending.clear()

        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
            if not line.startswith("- "):
                flush()
                out.append(line)
                moved[(rel, number)] = len(out)
                short_next = True
                continue
            if short_next:
                out.append(line)
                moved[(rel, number)] = len(out)
                short_next = False
                continue
            pending.append((number, line[2:]))
            if len(pending) == group:
                flush()
                short_next = True
        flush()
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text("\n".join(out), encoding="utf-8")
    return moved


def evidence(source: Path, gold: list[dict]) -> list[str]:
    """The text of each gold message (what must be read), from the original lines."""
    texts = []
    for item in gold:
        lines = (source / item["path"]).read_text(encoding="utf-8").split("\n")
        line = lines[item["line"] - 1]
        texts.append(line[2:][:100] if line.startswith("- ") else line.strip()[:100])  # "HH:MM **Speaker**: text"
    return texts


def read(results, files: dict[str, list[str]], budget: int | None) -> tuple[str, int]:
    """The text an assistant reads from ``results`` in order under ``budget`` tokens, and its tokens."""
    parts, used = [], 0
    for result in results:
        text = result.excerpt or "\n".join(files[result.path][result.start_line - 1 : result.end_line])
        cost = sum(estimate_tokens(line) for line in text.split("\n"))
        if budget is not None and used + cost > budget:
            text = text[: max(0, budget - used) * 4]
            parts.append(text)
            used = budget
            break
        parts.append(text)
        used += cost
    return "\n".join(parts), used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "longlines")
    parser.add_argument("--group", type=int, default=30, help="messages joined into each long line")
    parser.add_argument("--read-tokens", type=int, default=1500, help="what the assistant reads, in estimated tokens")
    parser.add_argument("--part-share", type=int, default=None, help="experiment: budget.PART_SHARE (0: off)")
    args = parser.parse_args()
    if args.part_share is not None:
        budget_module.PART_SHARE = args.part_share
    queries = [json.loads(line) for line in (args.data / "queries.jsonl").read_text().splitlines() if line.strip()]
    by_chat: dict[str, list[dict]] = defaultdict(list)
    for question in queries:
        by_chat[question["conv"]].append(question)
    model = SentenceTransformerEmbedder()
    cached = QueryCache(model, [q["question"] for q in queries])
    configs = {
        f"default (50 lines or {DEFAULT_BUDGET_TOKENS:,} tokens, long lines cut)": ({}, args.read_tokens),
        "default, vector search alone": ({"mode": "vector"}, args.read_tokens),
        "50 lines alone, read under the token budget": ({"budget_tokens": 0}, args.read_tokens),
        "50 lines alone, read whole (no reading bound)": ({"budget_tokens": 0}, None),
    }
    totals = {name: defaultdict(float) for name in configs}
    lengths: list[int] = []
    for chat in sorted(by_chat):
        source = args.data / "memory" / chat
        target = args.work / "memory" / chat
        moved = reshape(source, target, args.group)
        files = {p.relative_to(target).as_posix(): p.read_text(encoding="utf-8").split("\n") for p in target.rglob("*.md")}
        lengths += [len(line) for lines in files.values() for line in lines if line.startswith("- assistant: ")]
        settings = make_settings(target, args.work / "index" / chat / "index.db")
        settings.index_path.parent.mkdir(parents=True, exist_ok=True)
        with open_index(settings, write=True, embedder=model) as index:
            index.sync()
        with open_index(settings, embedder=cached) as index:
            for question in by_chat[chat]:
                wanted = evidence(source, question["gold"])
                gold_lines = {(g["path"], moved[(g["path"], g["line"])]) for g in question["gold"]}
                for name, (options, budget) in configs.items():
                    results = index.search(question["question"], **options)
                    text, used = read(results, files, budget)
                    found = [piece in text for piece in wanted]
                    total = totals[name]
                    total["n"] += 1
                    total["hit"] += any(found)
                    total["cov"] += sum(found) / len(found)
                    total["tokens"] += used
                    cited = {(r.path, n) for r in results for n in range(r.start_line, r.end_line + 1)}
                    total["cited"] += any(g in cited for g in gold_lines)
    print(f"long lines: {len(lengths)} assistant lines, mean {sum(lengths) / max(1, len(lengths)):.0f} characters "
          f"(--group {args.group}); reading bound {args.read_tokens} estimated tokens")  # fmt: skip
    print(f"{'configuration':55} {'hit':>6} {'cov':>6} {'tokens':>8} {'cited':>6}")
    summary = {}
    for name, total in totals.items():
        n = total["n"]
        row = {key: round(total[key] / n, 3) for key in ("hit", "cov", "tokens", "cited")}
        summary[name] = row
        print(f"{name:55} {row['hit']:6.3f} {row['cov']:6.3f} {row['tokens']:8.0f} {row['cited']:6.3f}")
    (args.work / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
