"""Embedding backends and thread counts side by side, idle and under CPU contention.

    python bench/bench_embed.py [--files 200] [--texts 640] [--queries 80] [--rounds 4] [--busy 0 1]

Real chunk texts of a generated memory folder (chunked with the model's
tokenizer, as ``memdex index`` does) are embedded in bulk by torch
(sentence-transformers) and ONNX Runtime with 1 and 2 threads, and single
queries are embedded one at a time; each configuration runs once on an idle
machine (as idle as a shared machine gets) and once with a busy-looping
process per ``--busy`` level competing for the cores. Also reports the
cosine between the ONNX and torch vectors of the same texts.
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
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np  # noqa: E402
from generate import generate_memory  # noqa: E402

from indexer.embedding import onnx_backend as onnx_embed  # noqa: E402
from indexer.embedding.lazy import LazyEmbedder
from indexer.embedding.torch_backend import SentenceTransformerEmbedder  # noqa: E402
from indexer.sources.markdown.chunk import chunk_note  # noqa: E402
from indexer.sources.markdown.parse import parse_note  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@contextmanager
def busy(processes: int):
    """``processes`` busy-looping Python processes competing for the cores."""
    started = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.5 if started else 0)
        yield
    finally:
        for process in started:
            process.kill()
            process.wait()


def chunk_texts(files: int, seed: int) -> list[str]:
    counter = LazyEmbedder()
    texts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="memdex-bench-embed-") as tmp:
        root = Path(tmp) / "memory"
        generate_memory(root, files=files, seed=seed)
        for path in sorted(root.rglob("*.md")):
            note = parse_note(path.read_bytes())
            chunks = chunk_note(note, count_tokens=counter.count_tokens, max_tokens=counter.max_tokens)
            texts.extend(chunk.embed_text for chunk in chunks)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--texts", type=int, default=640)
    parser.add_argument("--queries", type=int, default=80)
    parser.add_argument("--busy", type=int, nargs="*", default=[0, 1], help="competing busy processes per run")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per busy level")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/out/embed.json"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    texts = chunk_texts(args.files, args.seed)
    sample = rng.sample(texts, min(args.texts, len(texts)))
    words = [w for text in sample for w in text.split() if w.isalpha()]
    queries = [" ".join(rng.sample(words, rng.randint(3, 9))) for _ in range(args.queries)]
    lengths = LazyEmbedder().count_tokens(sample)

    torch_model = SentenceTransformerEmbedder()
    lazy = LazyEmbedder(backend="onnx")
    lazy.embed(["make or load the verified ONNX export"])
    files = lazy.files
    assert files is not None
    onnx_path = onnx_embed.export_folder(files) / "model.onnx"
    onnx = {n: onnx_embed.OnnxEmbedder(onnx_path, files, threads=n) for n in (1, 2)}

    def torch_embed(threads: int, batch: list[str]) -> np.ndarray:
        torch_model.query_threads = torch_model.bulk_threads = threads
        return torch_model.embed(batch)

    backends = {
        "torch-1": lambda batch: torch_embed(1, batch),
        "torch-2": lambda batch: torch_embed(2, batch),
        "onnx-1": lambda batch: onnx[1].embed(batch),
        "onnx-2": lambda batch: onnx[2].embed(batch),
    }
    torch_vectors = torch_embed(2, sample)
    onnx_vectors = onnx[2].embed(sample)
    cosines = np.sum(torch_vectors * onnx_vectors, axis=1)
    results: dict[str, object] = {
        "texts": len(sample),
        "tokens_per_text_mean": round(statistics.mean(lengths), 1),
        "onnx_vs_torch_cosine": {"min": float(cosines.min()), "mean": float(cosines.mean())},
        "load_average_at_start": os.getloadavg(),
        "runs": {},
    }
    for level in args.busy:
        with busy(level):
            for name, run in backends.items():
                run(sample[:32])  # warm up each configuration
            measured: dict[str, dict[str, list[float]]] = {name: {"bulk": [], "query": []} for name in backends}
            for round_number in range(args.rounds):
                # Interleaved, a slice each round: every configuration sees the same background load.
                part = sample[round_number::args.rounds]
                for name, run in backends.items():
                    started = time.perf_counter()
                    run(part)
                    measured[name]["bulk"].append(len(part) / (time.perf_counter() - started))
                    for query in queries[round_number::args.rounds]:
                        started = time.perf_counter()
                        run([query])
                        measured[name]["query"].append((time.perf_counter() - started) * 1000)
            for name, values in measured.items():
                row = {
                    "bulk_chunks_per_second_median": round(statistics.median(values["bulk"]), 1),
                    "bulk_chunks_per_second_rounds": [round(v, 1) for v in values["bulk"]],
                    "query_p50_ms": round(percentile(values["query"], 0.5), 2),
                    "query_p95_ms": round(percentile(values["query"], 0.95), 2),
                }
                results["runs"][f"{name} busy={level}"] = row  # type: ignore[index]
                print(f"busy={level} {name:8} {row}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
