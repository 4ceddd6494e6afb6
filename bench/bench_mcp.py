"""MCP benchmark: warm ``memory_search`` round trips over stdio beside a cold
``memdex search`` process, on the generated ~10K-chunk folder.

    python bench/bench_mcp.py [--files 1000] [--queries 200] [--starts 3] [--cold 5]
                              [--workdir bench/out/mcp-work] [--out bench/out/mcp.json]

Everything runs in one go, side by side, through the official SDK's stdio
client talking to ``python -m indexer mcp`` as a real subprocess (real
all-MiniLM-L6-v2, default settings):

- start to first answer: from launching the server to the first
  ``memory_search`` result (process start, imports, model load, first query);
- warm round trip: ``memory_search`` calls in one session (hybrid, the default,
  and keyword), measured by the client: JSON-RPC over the pipes, query
  embedding, both candidate queries, fusion, snippets;
- the server's RSS after the queries;
- cold ``memdex search --json`` as a fresh process, wall time and peak RSS.

Queries are 2-6 random words of the corpus (as in bench_index.py). The folder
and its index are kept in ``--workdir``, so only the first run pays for the
full index (about 4 minutes of model time on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from generate import generate_memory  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402

from indexer import make_settings, open_index  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 0.5), 2), "p95_ms": round(percentile(ms, 0.95), 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(statistics.fmean(ms), 2)}  # fmt: skip


def prepare(root: Path, files: int, seed: int) -> int:
    if not (root / ".memdex" / "index.db").exists():
        generate_memory(root, files=files, seed=seed)
        print(f"indexing {files} generated files (slow the first time; --workdir keeps it)...", flush=True)
        subprocess.run([sys.executable, "-m", "indexer", "--root", str(root), "index"], check=True, env=child_env())
    with open_index(make_settings(root)) as index:
        return int(index.status()["chunks"])


def child_env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def queries(root: Path, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    with open_index(make_settings(root)) as index:
        texts = [text for _, _, _, text, _ in index.store.chunk_texts()]
    words = [w for text in rng.sample(texts, min(400, len(texts))) for w in text.split() if w.isalpha()]
    return [" ".join(rng.sample(words, rng.randint(2, 6))) for _ in range(count)]


def server_pid() -> int | None:
    """The newest child of this process running ``indexer ... mcp``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"indexer" in cmdline and b"mcp" in cmdline:
            found.append(int(entry.name))
    return max(found) if found else None


def rss_mb(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
            "peak_rss_mb": round(int(fields["VmHWM"].split()[0]) / 1024, 1)}  # fmt: skip


async def session(root: Path, asked: list[str], *, warm: int, measure: bool) -> dict[str, Any]:
    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "indexer", "--root", str(root), "mcp"], env=child_env()
    )
    started = time.perf_counter()
    async with Client(parameters, read_timeout_seconds=300) as client:
        first = await client.call_tool("memory_search", {"query": asked[0]})
        first_answer = time.perf_counter() - started
        assert not first.is_error, first.content
        result: dict[str, Any] = {"first_answer_s": first_answer}
        if not measure:
            return result
        for query in asked[1 : 1 + warm]:
            await client.call_tool("memory_search", {"query": query})
        for mode in ("hybrid", "keyword"):
            seconds = []
            for query in asked[1 + warm :]:
                t = time.perf_counter()
                answer = await client.call_tool("memory_search", {"query": query, "mode": mode})
                seconds.append(time.perf_counter() - t)
                assert not answer.is_error, answer.content
            result[mode] = summary(seconds)
        pid = server_pid()
        result["server"] = rss_mb(pid) if pid else None
    return result


def cold_cli(root: Path, asked: list[str], count: int) -> dict[str, Any]:
    seconds, peaks = [], []
    for query in asked[:count]:
        t = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "indexer", "--root", str(root), "search", query, "--json"],
                                   stdout=subprocess.DEVNULL, env=child_env())  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        seconds.append(time.perf_counter() - t)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"memdex search exited with {process.returncode}")
        peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
    return {"n": count, "p50_s": round(percentile(seconds, 0.5), 2), "max_s": round(max(seconds), 2),
            "peak_rss_mb_median": round(statistics.median(peaks), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warm", type=int, default=10, help="queries before measuring")
    parser.add_argument("--starts", type=int, default=3, help="server starts timed to the first answer")
    parser.add_argument("--cold", type=int, default=5, help="cold CLI searches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "mcp-work")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "mcp.json")
    args = parser.parse_args()

    root = args.workdir / "memory"
    chunks = prepare(root, args.files, args.seed)
    asked = queries(root, 1 + args.warm + args.queries, args.seed)
    print(f"{chunks} chunks; measuring...", flush=True)
    measured = anyio.run(lambda: session(root, asked, warm=args.warm, measure=True))
    starts = [measured["first_answer_s"]]
    for n in range(args.starts - 1):
        starts.append(anyio.run(lambda: session(root, asked[n + 1 :], warm=0, measure=False))["first_answer_s"])
    cold = cold_cli(root, asked[1:], args.cold)
    result = {
        "chunks": chunks,
        "files": args.files,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "warm_memory_search_stdio": {"hybrid": measured["hybrid"], "keyword": measured["keyword"]},
        "start_to_first_answer_s": {"runs": [round(s, 2) for s in starts], "median": round(statistics.median(starts), 2)},
        "server": measured["server"],
        "cold_cli_search": cold,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
