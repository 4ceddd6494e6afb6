"""First run: ``memdex index`` with a fresh cache folder against a warm one, and MCP start to first answer.

    python bench/bench_first_run.py [--runs 3] [--workdir bench/out/first-run] [--out bench/out/first_run.json]

Interleaved, ``--runs`` times each, as fresh processes (real all-MiniLM-L6-v2, default settings):

- fresh: a new empty ``MEMDEX_CACHE_DIR`` (the one-time ONNX export runs) and a new index of
  the fixture folder (``fixtures/memory``, 52 files);
- warm: the same with a cache folder that already holds the export;
- MCP, fresh cache: from launching ``python -m indexer mcp`` (stdio, the SDK's client) to
  the first ``memory_search`` answer (keyword-only while the model is prepared), and to the
  first hybrid answer (the call repeated until it is no longer degraded).

Medians are reported; the ratio is fresh / warm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "fixtures" / "memory"


def child_env(cache: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "MEMDEX_CACHE_DIR": str(cache)}


def fresh_root(workdir: Path) -> Path:
    root = Path(tempfile.mkdtemp(dir=workdir, prefix="root-"))
    shutil.rmtree(root)
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns(".memdex"))
    return root


def index_seconds(workdir: Path, cache: Path) -> float:
    root = fresh_root(workdir)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "indexer", "--root", str(root), "index"], check=True,
                   env=child_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


async def mcp_seconds(root: Path, cache: Path) -> dict[str, float]:
    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "indexer", "--root", str(root), "mcp"], env=child_env(cache)
    )
    started = time.perf_counter()
    async with Client(parameters, read_timeout_seconds=600) as client:
        first = await client.call_tool("memory_search", {"query": "penicillin allergy"})
        first_at = time.perf_counter() - started
        degraded = first.structured_content["degraded"]
        answer = first
        while answer.structured_content["degraded"]:
            await anyio.sleep(0.2)  # polling the server, as a client would; not part of a test
            answer = await client.call_tool("memory_search", {"query": "penicillin allergy"})
        return {"first_answer_s": first_at, "first_degraded": bool(degraded),
                "first_hybrid_s": time.perf_counter() - started}  # fmt: skip


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "first-run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "first_run.json")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    warm_cache = args.workdir / "warm-cache"
    index_seconds(args.workdir, warm_cache)  # makes the export the warm runs reuse
    fresh, warm, mcp = [], [], []
    for run in range(args.runs):
        fresh.append(index_seconds(args.workdir, Path(tempfile.mkdtemp(dir=args.workdir, prefix="cache-"))))
        warm.append(index_seconds(args.workdir, warm_cache))
        indexed = fresh_root(args.workdir)
        subprocess.run([sys.executable, "-m", "indexer", "--root", str(indexed), "index"], check=True,
                       env=child_env(warm_cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        cache = Path(tempfile.mkdtemp(dir=args.workdir, prefix="cache-"))
        mcp.append(anyio.run(mcp_seconds, indexed, cache))
        print(f"run {run + 1}: fresh {fresh[-1]:.1f} s, warm {warm[-1]:.1f} s, mcp {mcp[-1]}", flush=True)
    result: dict[str, Any] = {
        "runs": args.runs, "fresh_index_s": median(fresh), "warm_index_s": median(warm),
        "ratio": round(statistics.median(fresh) / statistics.median(warm), 1),
        "mcp_first_answer_s": median([m["first_answer_s"] for m in mcp]),
        "mcp_first_degraded": all(m["first_degraded"] for m in mcp),
        "mcp_first_hybrid_s": median([m["first_hybrid_s"] for m in mcp]),
        "raw": {"fresh": fresh, "warm": warm, "mcp": mcp},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "raw"}, indent=2))


if __name__ == "__main__":
    main()
