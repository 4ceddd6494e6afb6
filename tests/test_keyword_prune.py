"""Hybrid search leaves terms that are in at least half the chunks out of its keyword query."""

from __future__ import annotations

from pathlib import Path

from conftest import RecordingEmbedder, write

from indexer import make_settings, open_index
from indexer.retrieval.query import keyword_query_terms, stem_idfs


def _index(tmp_path: Path):
    root = tmp_path / "memory"
    lines = [f"- 09:{i:02d} **Alice**: message number {i} about the garden" for i in range(40)]
    lines[17] = "- 09:17 **Alice**: my penicillin allergy came back"
    write(root, "daily/2024-01-03.md", "\n\n".join(f"## Part {i}\n\n{line}" for i, line in enumerate(lines)) + "\n")
    embedder = RecordingEmbedder()
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    return settings, embedder


def test_terms_in_half_the_chunks_are_pruned_while_another_remains(tmp_path: Path) -> None:
    settings, embedder = _index(tmp_path)
    with open_index(settings, embedder=embedder) as index:
        store = index.store
        terms = ["alice", "penicillin"]
        assert keyword_query_terms(store, terms, stem_idfs(store, terms)) == ["penicillin"]
        assert keyword_query_terms(store, ["alice"], stem_idfs(store, ["alice"])) == ["alice"]  # nothing else left
        garden = ["alice", "garden"]  # both in (nearly) every chunk: kept, the query must match something
        assert keyword_query_terms(store, garden, stem_idfs(store, garden)) == garden


def test_the_default_search_sends_the_pruned_terms_and_still_finds_the_rare_one(tmp_path: Path, monkeypatch) -> None:
    settings, embedder = _index(tmp_path)
    with open_index(settings, embedder=embedder) as index:
        sent: list[list[str]] = []
        original = index.store.keyword_candidates

        def spy(terms, limit, **kwargs):
            sent.append(list(terms))
            return original(terms, limit, **kwargs)

        monkeypatch.setattr(index.store, "keyword_candidates", spy)
        results = index.search("What did Alice say about penicillin?", budget_lines=None)
        assert sent and "penicillin" in sent[0] and "alice" not in sent[0]  # "say": in no chunk, rare, kept
        assert "penicillin" in results[0].snippet
