"""Compare fusion rules for hybrid search on the labelled fixture (hybrid R@5 and MRR).

    python bench/fusion_variants.py

Each variant replaces ``indexer.retrieval.search.fuse`` for one pass over the same index,
so the figures are side by side. The default rule is "confidence-weighted 0.7".
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_retrieval import evaluate  # noqa: E402

from indexer import make_settings, open_index
from indexer.embedding.torch_backend import SentenceTransformerEmbedder  # noqa: E402
from indexer.retrieval import search  # noqa: E402

DEFAULT_FUSE = search.fuse


def rrf(keyword_weight: float, k: int = 60):
    def fuse(keyword, vector, *, idf_total, pool):
        kw_rank = {cid: rank for rank, (cid, _) in enumerate(keyword)}
        vec_rank = {cid: rank for rank, (cid, _) in enumerate(vector)}
        scores = [
            (cid, keyword_weight / (k + kw_rank.get(cid, 10**9)) + (1 - keyword_weight) / (k + vec_rank.get(cid, 10**9)))
            for cid in kw_rank.keys() | vec_rank.keys()
        ]
        return sorted(scores, key=lambda item: (-item[1], item[0]))

    return fuse


def fixed_blend(keyword_weight: float):
    """Coverage and cosine blended with a weight that does not depend on the query."""

    def fuse(keyword, vector, *, idf_total, pool):
        bm25, cosine = dict(keyword), dict(vector)
        scores = [
            (cid, keyword_weight * search.keyword_part(bm25.get(cid, 0.0), idf_total)
             + (1 - keyword_weight) * max(0.0, cosine.get(cid, 0.0)))
            for cid in bm25.keys() | cosine.keys()
        ]  # fmt: skip
        return sorted(scores, key=lambda item: (-item[1], item[0]))

    return fuse


def weighted(keyword_weight: float):
    def fuse(keyword, vector, *, idf_total, pool):
        return DEFAULT_FUSE(keyword, vector, idf_total=idf_total, pool=pool, keyword_weight=keyword_weight)

    return fuse


FUSION_ALONE = {"ranking": None, "budget_lines": None}  # whole chunks, no re-ranking: the fusion alone

VARIANTS = {
    "reciprocal rank fusion (1:1)": rrf(0.5),
    "reciprocal rank fusion (keyword 0.7)": rrf(0.7),
    "fixed blend 0.5": fixed_blend(0.5),
    "fixed blend 0.7": fixed_blend(0.7),
    "confidence-weighted 0.5": weighted(0.5),
    "confidence-weighted 0.7 (default)": weighted(0.7),
    "confidence-weighted 0.9": weighted(0.9),
}


def main() -> None:
    queries = json.loads(Path("fixtures/queries.json").read_text())
    model = SentenceTransformerEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings("fixtures/memory", Path(tmp) / "index.db")
        with open_index(settings, write=True, embedder=model) as index:
            index.sync()
        print("| fusion | all R@5 | all MRR | keyword R@5 | mixed R@5 | paraphrase R@5 |")
        print("|---|---|---|---|---|---|")
        with open_index(settings, embedder=model) as index:
            for name, fuse in VARIANTS.items():
                search.fuse = fuse
                table = evaluate(index, queries, options=FUSION_ALONE)
                search.fuse = DEFAULT_FUSE
                cells = [table["all"]["hybrid R@5"], table["all"]["hybrid MRR"]] + [
                    table[group]["hybrid R@5"] for group in ("keyword", "mixed", "paraphrase")
                ]
                print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
            table = evaluate(index, queries, options=FUSION_ALONE)
            for mode in ("keyword", "vector"):
                cells = [table["all"][f"{mode} R@5"], table["all"][f"{mode} MRR"]] + [
                    table[group][f"{mode} R@5"] for group in ("keyword", "mixed", "paraphrase")
                ]
                print(f"| {mode} only | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
