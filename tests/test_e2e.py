"""End-to-end with the real all-MiniLM-L6-v2 model (packaged weights, no hub)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write

from indexer import make_settings, open_index
from indexer.embedding.torch_backend import SentenceTransformerEmbedder
from indexer.sources.markdown.chunk import chunk_note
from indexer.sources.markdown.parse import parse_note

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(scope="session")
def model() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_real_model_finds_a_paraphrase_sharing_no_words(root, model):
    write(root, "MEMORY.md", (
        "# Health\n\n- Allergic to penicillin; got a rash in 2019.\n\n"
        "# Home\n\n- The spare key is under the blue flowerpot by the shed.\n\n"
        "# Work\n\n- Quarterly report is due the first Monday of March.\n"
    ))  # fmt: skip
    write(root, "daily/2026-11-20.md", "## Log\n\n- Repotted the basil and watered the ferns.\n")
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=model) as index:
        index.sync()
    query = "which medicine must doctors never prescribe me"
    with open_index(settings, embedder=model) as index:
        keyword = index.search(query, mode="keyword")
        [top] = index.search(query, mode="hybrid", limit=1)
        [vector_top] = index.search(query, mode="vector", limit=1)
    assert keyword == []  # no shared words at all
    assert "penicillin" in top.snippet and "penicillin" in vector_top.snippet
    assert (top.path, top.start_line, top.end_line) == ("MEMORY.md", 3, 3)  # the chunk 1-3 without its heading lines
    with open_index(settings, embedder=model) as index:
        for odd in ("neovim \udcff", "🙂", '"NEAR(' * 20):  # surrogates come from non-UTF-8 argv
            for mode in ("vector", "hybrid"):
                assert isinstance(index.search(odd, mode=mode), list)


def test_real_tokenizer_budget_holds_for_every_chunk(model):
    sources = [p.read_bytes() for p in sorted((FIXTURE / "memory").rglob("*.md"))]
    sources.append(("# Dense\n\n" + "supercalifragilistic-expialidocious 1234567 " * 40 + "\n").encode())
    sources.append(("# Wide table\n\n| a | b |\n|---|---|\n" + "| ünïcödé 🙂 | ø€ |\n" * 300).encode())
    checked = 0
    for data in sources:
        chunks = chunk_note(parse_note(data), count_tokens=model.count_tokens, max_tokens=model.max_tokens)
        for chunk in chunks:
            full = model._model.tokenizer(chunk.embed_text, truncation=False)["input_ids"]
            assert chunk.oversized or len(full) <= model._model.max_seq_length
            checked += 1
    assert checked > 10


def test_hybrid_is_at_least_as_good_as_keyword_on_the_labelled_fixture(tmp_path, model):
    queries = json.loads((FIXTURE / "queries.json").read_text())
    settings = make_settings(FIXTURE / "memory", tmp_path / "index.db")
    with open_index(settings, write=True, embedder=model) as index:
        index.sync()
    recall = {}
    with open_index(settings, embedder=model) as index:
        for mode in ("keyword", "vector", "hybrid"):
            hits = 0
            for q in queries:
                results = index.search(q["query"], mode=mode, limit=5)
                found = any(
                    r.path == rel["path"] and rel["contains"] in "\n".join(index.get(f"{r.path}:{r.start_line}-{r.end_line}").lines)
                    for r in results
                    for rel in q["relevant"]
                )
                hits += found
            recall[mode] = hits / len(queries)
    assert recall["hybrid"] >= recall["keyword"]
    assert recall["hybrid"] >= recall["vector"]
