"""The model variants side by side: speed, and how close their vectors are to the full model's.

    python bench/bench_variants.py [--files 60] [--texts 300] [--rounds 3]

Real chunk texts of a generated folder (bench/generate.py, chunked as `memdex index`
does) are embedded in bulk by each variant on one thread, in interleaved rounds
(every variant sees the same background load): ``full`` (ONNX Runtime, fp32),
``int8-per-tensor`` (onnxruntime's default dynamic quantisation, for reference),
``int8`` (what ``model_variant = "int8"`` uses: per-channel) and ``static``
(model2vec, distilled at first use; needs the ``static`` extra). Reports texts/s,
the speed ratio to ``full``, and the cosine to ``full``'s vectors (the static
model has its own 256-dimensional space: no cosine). Retrieval quality is measured
by bench/eval_retrieval.py and bench/eval_realtalk.py with ``--variant``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np  # noqa: E402
from bench_threads import chunk_texts  # noqa: E402
from generate import generate_memory  # noqa: E402

from indexer.embedding import onnx_backend as onnx_embed  # noqa: E402
from indexer.embedding import variants  # noqa: E402
from indexer.embedding.lazy import LazyEmbedder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/out/variants.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="memdex-bench-variants-") as tmp:
        root = Path(tmp) / "memory"
        generate_memory(root, files=args.files, seed=args.seed)
        texts = chunk_texts(root)[: args.texts]
        full = LazyEmbedder(backend="onnx", bulk_threads=1)
        full.prepare()
        assert full.files is not None
        folder = onnx_embed.export_folder(full.files)
        per_tensor = Path(tmp) / "per-tensor.onnx"
        from onnxruntime.quantization import QuantType, quantize_dynamic

        logging.getLogger().setLevel(logging.ERROR)
        quantize_dynamic(str(folder / "model.onnx"), str(per_tensor), weight_type=QuantType.QInt8)
        logging.getLogger().setLevel(logging.WARNING)
        embedders = {
            "full": full,
            "int8-per-tensor": onnx_embed.OnnxEmbedder(per_tensor, full.files, threads=1),
            "int8": LazyEmbedder(variant="int8", bulk_threads=1),
            "static": LazyEmbedder(variant="static", bulk_threads=1),
        }
        reference = full.embed(texts)
        results: dict[str, dict[str, object]] = {}
        speeds: dict[str, list[float]] = {name: [] for name in embedders}
        vectors = {name: embedder.embed(texts[:8]) for name, embedder in embedders.items()}  # load and warm up
        for _ in range(args.rounds):
            for name, embedder in embedders.items():
                started = time.perf_counter()
                vectors[name] = embedder.embed(texts)
                speeds[name].append(len(texts) / (time.perf_counter() - started))
        for name in embedders:
            row: dict[str, object] = {"texts_per_second": round(statistics.median(speeds[name]), 1),
                                      "rounds": [round(v, 1) for v in speeds[name]]}  # fmt: skip
            row["speed_vs_full"] = round(statistics.median(speeds[name]) / statistics.median(speeds["full"]), 2)
            if vectors[name].shape == reference.shape:
                cosines = np.sum(vectors[name] * reference, axis=1)
                row["cosine_to_full"] = {"min": round(float(cosines.min()), 4), "mean": round(float(cosines.mean()), 4)}
            results[name] = row
            print(f"{name:16} {row}", flush=True)
    summary = {"texts": len(texts), "static_dims": variants.STATIC_DIMS, "variants": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
