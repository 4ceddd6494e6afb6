"""A full `memdex index` with embed_threads 1, 2 and auto, side by side with a bare
onnxruntime + tokenizers encoder of the same texts on 1 and 2 threads.

    python bench/bench_threads.py [--files 150] [--rounds 2] [--busy 0 1] [--configs ...]

A memory folder is generated (bench/generate.py), its chunk texts taken as
`memdex index` makes them, and each configuration runs in a fresh process, in
interleaved rounds (every configuration sees the same background load):

- ``bare-N``: tokenizers + onnxruntime on N intra-op threads, nothing else:
  tokenize, sort by length, batches of <= 2,048 padded tokens, mean-pool. The
  floor for these texts on N threads.
- ``memdex-N`` / ``memdex-auto``: ``memdex --embed-threads N index`` into a new
  index and embedding cache (reading, chunking, embedding, writing), run through
  ``timed_index.py``, which also notes the seconds the model was busy (inside
  ``embed`` calls): ``model_share`` is that over the wall time.
- ``base-N`` / ``base-auto`` (with ``--base REF``): the same, with the code of git
  commit REF (exported with ``git archive``): the tree before a change, side by side.

``--busy K`` adds K busy-looping processes for a run (contention). The ratios
that matter: bare-2 / memdex-auto (target >= 0.9 idle) and memdex-auto /
memdex-1 (target <= 1.05 under load). Wall and CPU seconds per run.

Issue 21's overlap of reading/chunking/writing with embedding (indexing/pipeline.py):

    python bench/bench_threads.py --files 100 --rounds 3 --base BASE_COMMIT \
        --configs bare-2 base-auto memdex-auto
"""

from __future__ import annotations

import argparse
import json
import re
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def bare_encode(texts_file: Path, threads: int) -> None:
    """The bare encoder (run in its own process): no memdex code on the hot path."""
    import numpy as np
    import onnxruntime
    from tokenizers import Tokenizer

    spec = json.loads(texts_file.read_text())
    texts, model, tokenizer_path = spec["texts"], spec["model"], spec["tokenizer"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [item.name for item in session.get_inputs()]
    tokenizer = Tokenizer.from_file(tokenizer_path)
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)
    encodings = tokenizer.encode_batch(texts)
    order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
    start = 0
    while start < len(order):
        width = len(encodings[order[start]].ids)
        batch = order[start : start + max(1, min(64, 2048 // width))]
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, i in enumerate(batch):
            n = len(encodings[i].ids)
            ids[row, :n], mask[row, :n] = encodings[i].ids, 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = session.run(None, {name: feeds[name] for name in names})
        pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        start += len(batch)


def chunk_texts(root: Path) -> list[str]:
    from indexer.embedding.lazy import LazyEmbedder
    from indexer.sources.markdown.chunk import chunk_note
    from indexer.sources.markdown.parse import parse_note

    counter = LazyEmbedder()
    texts: list[str] = []
    for path in sorted(root.rglob("*.md")):
        note = parse_note(path.read_bytes())
        texts.extend(c.embed_text for c in chunk_note(note, count_tokens=counter.count_tokens, max_tokens=counter.max_tokens))
    return list(dict.fromkeys(texts))  # memdex embeds each distinct text once


def timed(command: list[str], env: dict[str, str]) -> dict[str, object]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # memdex -v logs "bulk embedding on N threads" whenever the count changes: the choices made.
    choices = [int(m) for m in re.findall(r"bulk embedding on (\d+) thread", done.stderr)]
    row: dict[str, object] = {"wall": wall, "cpu": cpu, "thread_choices": choices}
    timed_line = re.search(r"^TIMED (.*)$", done.stderr, re.MULTILINE)  # timed_index.py's figures
    if timed_line:
        busy = json.loads(timed_line.group(1))["model_busy"]
        row |= {"model_busy": busy, "model_share": busy / wall}
    return row


def export_commit(ref: str, target: Path) -> Path:
    """The tree of git commit ``ref`` in ``target`` (``git archive``: no worktree, no checkout)."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--busy", type=int, nargs="*", default=[0])
    parser.add_argument("--configs", nargs="*", default=["bare-1", "bare-2", "memdex-1", "memdex-2", "memdex-auto"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", help="git commit whose code the base-N / base-auto configurations run")
    parser.add_argument("--out", type=Path, default=Path("bench/out/threads.json"))
    parser.add_argument("--bare", nargs=2, metavar=("TEXTS_JSON", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_encode(Path(args.bare[0]), int(args.bare[1]))
        return

    from generate import generate_memory

    from indexer.embedding import onnx_backend
    from indexer.embedding.lazy import LazyEmbedder

    lazy = LazyEmbedder(backend="onnx")
    lazy.prepare()
    assert lazy.files is not None
    model = onnx_backend.export_folder(lazy.files) / "model.onnx"
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    results: dict[str, object] = {"files": args.files, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="memdex-bench-threads-") as tmp:
        trees = {"memdex": HERE.parent}
        if any(name.startswith("base-") for name in args.configs):
            if not args.base:
                parser.error("base-N configurations need --base COMMIT")
            trees["base"] = export_commit(args.base, Path(tmp) / "base")
            results["base"] = args.base
        root = Path(tmp) / "memory"
        generate_memory(root, files=args.files, seed=args.seed)
        texts = chunk_texts(root)
        spec = Path(tmp) / "texts.json"
        spec.write_text(json.dumps({"texts": texts, "model": str(model), "tokenizer": str(lazy.files.tokenizer_path)}))
        results["texts"] = len(texts)
        print(f"{args.files} files, {len(texts)} distinct chunk texts", flush=True)
        for level in args.busy:
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(level)]
            try:
                rows: dict[str, list[dict[str, float]]] = {name: [] for name in args.configs}
                for round_number in range(args.rounds):
                    for name in args.configs:
                        kind, threads = name.split("-")
                        if kind == "bare":
                            command = [sys.executable, __file__, "--bare", str(spec), threads]
                        else:
                            db = Path(tmp) / f"{name}-{level}-{round_number}" / "index.db"
                            command = [sys.executable, str(HERE / "timed_index.py"), "-v", "--root", str(root),
                                       "--db", str(db), "--embed-threads", threads, "index", "--json"]  # fmt: skip
                        load = os.getloadavg()[0]
                        run_env = env if kind == "bare" else {**env, "PYTHONPATH": str(trees[kind])}
                        row = timed(command, run_env) | {"load": load}
                        rows[name].append(row)
                        print(f"busy={level} round={round_number} {name:12} wall {row['wall']:6.1f} s  "
                              f"cpu {row['cpu']:6.1f} s  load {load:.1f}  thread changes {row['thread_choices']}"
                              + (f"  model busy {row['model_share']:.0%}" if "model_share" in row else ""),
                              flush=True)  # fmt: skip
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait()
            summary = {name: {"wall_median": round(statistics.median(r["wall"] for r in runs), 2),
                              "cpu_median": round(statistics.median(r["cpu"] for r in runs), 2),
                              "walls": [round(r["wall"], 2) for r in runs],
                              "thread_choices": [r["thread_choices"] for r in runs],
                              "loads": [round(r["load"], 2) for r in runs],
                              **({"model_share_median": round(statistics.median(r["model_share"] for r in runs), 3)}
                                 if all("model_share" in r for r in runs) else {})}
                       for name, runs in rows.items()}  # fmt: skip
            walls = {name: item["wall_median"] for name, item in summary.items()}
            ratios = {}
            if "bare-2" in walls and "memdex-auto" in walls:
                ratios["bare-2 / memdex-auto (speed of memdex vs bare 2-thread; target >= 0.9 idle)"] = round(walls["bare-2"] / walls["memdex-auto"], 3)
            if "bare-2" in walls and "base-auto" in walls:
                ratios["bare-2 / base-auto (the same, before the change)"] = round(walls["bare-2"] / walls["base-auto"], 3)
            if "base-auto" in walls and "memdex-auto" in walls:
                ratios["memdex-auto / base-auto (time)"] = round(walls["memdex-auto"] / walls["base-auto"], 3)
            if "base-2" in walls and "memdex-2" in walls:
                ratios["memdex-2 / base-2 (time)"] = round(walls["memdex-2"] / walls["base-2"], 3)
            if "bare-1" in walls and "memdex-1" in walls:
                ratios["bare-1 / memdex-1"] = round(walls["bare-1"] / walls["memdex-1"], 3)
            if "memdex-1" in walls and "memdex-auto" in walls:
                ratios["memdex-auto / memdex-1 (time; target <= 1.05 under load)"] = round(walls["memdex-auto"] / walls["memdex-1"], 3)
            if "bare-1" in walls and "bare-2" in walls:
                ratios["bare-2 / bare-1 (time)"] = round(walls["bare-2"] / walls["bare-1"], 3)
            results["runs"][f"busy={level}"] = {"configs": summary, "ratios": ratios}  # type: ignore[index]
            print(json.dumps(ratios, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
