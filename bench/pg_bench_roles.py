"""The child processes of bench/bench_pg.py, the deterministic embedder they share, and the churn edit.

Each role runs as ``python bench/bench_pg.py --child '<json>'`` and prints one JSON line at the
end. Readers and writers print ``ready`` once set up, wait for ``go`` on stdin, then run for the
given number of seconds, so that all of them measure the same period.

Vectors: the real model (all-MiniLM-L6-v2, ONNX Runtime) embeds ``--real`` distinct chunk texts
of the folder and the benchmark's queries once (``bank`` role, cached in the work folder). Every
other chunk text gets the vector of a bank text chosen by the text's hash plus small noise seeded
by the hash (cosine ~0.96 to it), as bench_scale.py does, but as a pure function of the text:
both engines, every process and every re-run see the same vector for the same text, and the
model is not what the index throughput measures (its time is counted apart, ``embed_seconds``).
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from generate import _REPLACEMENTS, _WORD_RE, edit_one_line  # bench/generate.py

from indexer import make_settings, open_index
from indexer.embedding.lazy import LazyEmbedder
from indexer.sources.base import text_hash
from indexer.sources.markdown.chunk import chunk_note
from indexer.sources.markdown.parse import parse_note

REPO = Path(__file__).resolve().parent.parent
NOISE = 0.3  # norm of the noise added to a bank vector (before normalising)


class BenchVectors:
    """The real model's identity and tokenizer; vectors from the bank (see the module doc)."""

    def __init__(self, bank_path: Path) -> None:
        self.tokens = LazyEmbedder()  # the tokenizer only: the weights load on the first embed, never here
        self.model_id, self.dimensions, self.max_tokens = (
            self.tokens.model_id, self.tokens.dimensions, self.tokens.max_tokens)  # fmt: skip
        data = np.load(bank_path)
        self.matrix = data["vectors"].astype(np.float32)
        self.bank = dict(zip(data["hashes"].tolist(), self.matrix))
        self.queries = dict(zip(data["queries"].tolist(), data["query_vectors"].astype(np.float32)))
        self.seconds = 0.0
        self.texts = 0

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.tokens.count_tokens(texts)

    def vector(self, text: str) -> np.ndarray:
        if text in self.queries:  # a benchmark query: the model's vector, computed beforehand
            return self.queries[text]
        digest = text_hash(text)
        found = self.bank.get(digest)
        if found is not None:
            return found
        seed = int(digest[:16], 16)
        noise = np.random.default_rng(seed).standard_normal(self.dimensions).astype(np.float32)
        vector = self.matrix[seed % len(self.matrix)] + noise * (NOISE / np.sqrt(self.dimensions))
        return vector / np.linalg.norm(vector)

    def embed(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        rows = [self.vector(text) for text in texts]
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimensions)


def make_bank(root: Path, real: int, queries: list[str], out: Path) -> dict[str, Any]:
    """Embed the first ``real`` distinct chunk texts (files in sorted order) and the queries with the model."""
    model = LazyEmbedder()
    hashes: list[str] = []
    texts: list[str] = []
    seen: set[str] = set()
    for path in sorted(root.rglob("*.md")):
        note = parse_note(path.read_bytes())
        for chunk in chunk_note(note, count_tokens=model.count_tokens, max_tokens=model.max_tokens):
            if chunk.hash not in seen:
                seen.add(chunk.hash)
                hashes.append(chunk.hash)
                texts.append(chunk.embed_text)
        if len(texts) >= real:
            break
    started = time.perf_counter()
    vectors = model.embed(texts[:real])
    query_vectors = model.embed(queries)
    np.savez(out.with_suffix(".tmp.npz"), hashes=np.asarray(hashes[:real]), vectors=vectors,
             queries=np.asarray(queries), query_vectors=query_vectors)  # fmt: skip
    out.with_suffix(".tmp.npz").rename(out)
    return {"texts": len(vectors), "queries": len(queries), "model_seconds": round(time.perf_counter() - started, 1)}


def settings_for(job: dict[str, Any]) -> Any:
    options = {"namespace": job["namespace"]} if job.get("namespace") else {}
    return make_settings(job["root"], job["db"], **options)


def run_index(job: dict[str, Any]) -> dict[str, Any]:
    """One full sync (the first index, or the re-index after churn), timed."""
    embedder = BenchVectors(Path(job["bank"]))
    with open_index(settings_for(job), write=True, embedder=embedder) as index:
        report = index.sync()
        chunks = index.status()["chunks"]
    written = report.chunks_embedded + report.chunks_from_cache + report.chunks_deduplicated
    return {
        "chunks": chunks,
        "files_indexed": report.reindexed,
        "chunks_written": written,
        "seconds": round(report.seconds, 2),
        "embed_seconds": round(embedder.seconds, 2),
        "chunks_per_second": round(written / max(report.seconds, 1e-9), 1),
        "chunks_per_second_without_embedder": round(written / max(report.seconds - embedder.seconds, 1e-9), 1),
        "client_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _wait_for_go() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go from the parent")


def run_reader(job: dict[str, Any]) -> dict[str, Any]:
    """Search through the API (default reading budget and ranking) in a loop: each query in
    every mode; the query vector is the precomputed one, so the model's time is excluded."""
    embedder = BenchVectors(Path(job["bank"]))
    queries: list[str] = job["queries"]
    modes: list[str] = job["modes"]
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    errors: list[str] = []
    with open_index(settings_for(job), embedder=embedder) as index:
        for query in queries[:3]:  # warm up: connections, plans, SQLite's in-memory matrix
            for mode in modes:
                index.search(query, mode=mode)  # type: ignore[arg-type]
        _wait_for_go()
        deadline = time.perf_counter() + job["seconds"]
        i = job["offset"]
        while time.perf_counter() < deadline:
            query = queries[i % len(queries)]
            i += 1
            for mode in modes:
                started = time.perf_counter()
                try:
                    index.search(query, mode=mode)  # type: ignore[arg-type]
                except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                samples[mode].append((time.perf_counter() - started) * 1000)
    return {"samples_ms": samples, "errors": len(errors), "first_errors": errors[:3]}


def run_writer(job: dict[str, Any]) -> dict[str, Any]:
    """Index its own root (its namespace), then: edit one line of a random file, sync that file
    (what the watcher does on a save), again and again (flat out, or ``rate`` saves per second).
    Each sync is one file's transaction."""
    embedder = BenchVectors(Path(job["bank"]))
    root = Path(job["root"])
    rng = random.Random(job["seed"])
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.md") if ".memdex" not in p.parts)
    latencies: list[float] = []
    errors: list[str] = []
    with open_index(settings_for(job), write=True, embedder=embedder) as index:
        setup = index.sync()
        _wait_for_go()
        began = time.perf_counter()
        deadline = began + job["seconds"]
        rate = job.get("rate") or 0.0  # syncs per second (0: one after the other, flat out)
        while time.perf_counter() < deadline:
            if rate:  # a paced writer: the n-th save is due at n / rate
                due = began + (len(latencies) + len(errors)) / rate
                if due >= deadline:
                    break
                time.sleep(max(0.0, due - time.perf_counter()))
            path = rng.choice(files)
            edit_one_line(root / path, rng)
            started = time.perf_counter()
            try:
                report = index.sync(paths=[path])
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            if report.reindexed != 1:
                errors.append(f"{path}: sync re-indexed {report.reindexed} files, not 1")
    return {"setup_seconds": round(setup.seconds, 2), "setup_files": setup.reindexed, "sync_ms": latencies,
            "errors": len(errors), "first_errors": errors[:3]}  # fmt: skip


def churn(root: Path, fraction: float, seed: int) -> dict[str, int]:
    """Change one word on every content line of ``fraction`` of the files (not the frontmatter,
    headings or rules): every chunk with such a line gets new text, its line ranges stay."""
    rng = random.Random(seed)
    files = sorted(p for p in root.rglob("*.md") if ".memdex" not in p.parts)
    picked = rng.sample(files, round(fraction * len(files)))
    lines_changed = 0
    for path in picked:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        start = 0
        if lines and lines[0].strip() == "---":
            start = next((i + 1 for i in range(1, len(lines)) if lines[i].strip() == "---"), len(lines))
        for i in range(start, len(lines)):
            text = lines[i].strip()
            match = _WORD_RE.search(lines[i])
            if not text or text.startswith(("```", "---", "|---", "#")) or match is None:
                continue
            new = rng.choice(_REPLACEMENTS)
            new = "revised" if new.lower() == match.group(0).lower() else new
            lines[i] = lines[i][: match.start()] + new + lines[i][match.end():]
            lines_changed += 1
        path.write_text("".join(lines), encoding="utf-8")
    return {"files_changed": len(picked), "lines_changed": lines_changed}


ROLES = {"index": run_index, "reader": run_reader, "writer": run_writer}


def run_child(spec: str) -> None:
    job = json.loads(spec)
    if job["role"] == "bank":
        result = make_bank(Path(job["root"]), job["real"], job["queries"], Path(job["out"]))
    else:
        result = ROLES[job["role"]](job)
    print(json.dumps(result), flush=True)
