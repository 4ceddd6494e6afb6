"""Query building, fusion scoring and query safety in every mode."""

from __future__ import annotations

import pytest
from conftest import write
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from indexer import open_index
from indexer.errors import UsageError
from indexer.retrieval.search import fuse, keyword_part, query_terms, snippet
from indexer.store.sqlite.keyword import match_expression

NASTY = [
    "", "   ", '"', '""', "'", "AND", "OR NOT", "NEAR(a b, 2)", "a*", "*", "col:val", "text:foo",
    "^start", "(unbalanced", "a) OR (b", "🙂🚀", "-minus", "+plus", "x AND y OR", "{curly}",
    "C++ & Rust || Go", "100%", "\x00", "naïve café", "\\", "'; DROP TABLE chunks; --",
]  # fmt: skip


def test_query_terms_drop_stopwords_but_never_everything():
    assert query_terms("What did I eat on Tuesday?") == ["eat", "tuesday"]
    assert query_terms("what is it") == ["what", "is", "it"]
    assert query_terms("🙂 ???") == []


def test_match_expression_quotes_every_term():
    assert match_expression(["near", "and"]) == '"near" OR "and"'
    assert match_expression([]) is None


def test_keyword_part_is_bounded():
    assert keyword_part(5.0, 10.0) == 0.5
    assert keyword_part(50.0, 10.0) == 1.0
    assert keyword_part(1.0, 0.0) == 0.0


def test_fuse_prefers_chunks_strong_on_both_and_keeps_vector_only_hits():
    keyword = [(1, 8.0), (2, 1.0)]
    vector = [(3, 0.7), (1, 0.6), (2, 0.2)]
    ranked = [cid for cid, _ in fuse(keyword, vector, idf_total=10.0, pool=50)]
    assert ranked == [1, 3, 2]


def test_fuse_lets_the_cosine_decide_when_keyword_hits_are_incidental():
    keyword = [(1, 2.0)]  # matched one common word: 20% of the query's IDF
    vector = [(2, 0.55), (1, 0.15)]
    ranked = [cid for cid, _ in fuse(keyword, vector, idf_total=10.0, pool=50)]
    assert ranked == [2, 1]


def test_fuse_gives_missing_candidates_the_floor_of_a_full_list():
    keyword = [(1, 9.0), (2, 5.0)]  # full list (pool 2): chunk 3 scored at most 5.0
    vector = [(3, 0.5), (1, 0.4)]  # full list: chunk 2 scored at most 0.4
    scores = dict(fuse(keyword, vector, idf_total=10.0, pool=2))
    weight = 0.7 * 0.9
    assert scores[3] == pytest.approx(weight * 0.5 + (1 - weight) * 0.5)
    assert scores[2] == pytest.approx(weight * 0.5 + (1 - weight) * 0.4)


def test_snippet_picks_the_line_with_query_words():
    text = "## Health\n- sleeps 7 hours\n- allergic to penicillin since 2019\n- runs twice a week"
    assert snippet(text, ["penicillin"]) == "- allergic to penicillin since 2019"
    assert snippet(text, []) == "- sleeps 7 hours"


@pytest.fixture
def indexed(root, do_sync):
    write(root, "MEMORY.md", "# Health\n\n- allergic to penicillin\n\n# Editor\n\n- uses Helix, NEAR daily\n")
    write(root, "daily/2026-11-20.md", "- café with Zoë\n- C++ talk at 100% capacity\n")
    do_sync()
    return root


def test_natural_question_matches_partial_words(indexed, settings, embedder):
    with open_index(settings, embedder=embedder) as index:
        hits = index.search("which antibiotic is the penicillin allergy about", mode="keyword")
    assert hits and hits[0].path == "MEMORY.md" and hits[0].start_line == 3  # its heading is not read again


def test_diacritics_are_folded(indexed, settings, embedder):
    with open_index(settings, embedder=embedder) as index:
        assert index.search("cafe zoe", mode="keyword")[0].path == "daily/2026-11-20.md"


@pytest.mark.parametrize("mode", ["keyword", "vector", "hybrid"])
@pytest.mark.parametrize("query", NASTY)
def test_nasty_queries_never_raise(indexed, settings, embedder, mode, query):
    with open_index(settings, embedder=embedder) as index:
        if not query.strip():
            with pytest.raises(UsageError, match="the query is empty"):
                index.search(query, mode=mode, limit=5)
            return
        results = index.search(query, mode=mode, limit=5)
    assert isinstance(results, list)


@pytest.mark.parametrize("mode", ["keyword", "vector", "hybrid"])
def test_arbitrary_strings_are_safe_queries(indexed, settings, embedder, mode):
    with open_index(settings, embedder=embedder) as index:

        @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.text(max_size=80))
        def run(query: str) -> None:
            if not query.strip():  # an empty query is a usage error (exit 64 in the CLI)
                with pytest.raises(UsageError):
                    index.search(query, mode=mode, limit=3)
                return
            assert isinstance(index.search(query, mode=mode, limit=3), list)

        run()


@pytest.mark.parametrize("budget_lines", [None, 50])
@pytest.mark.parametrize("mode", ["keyword", "vector", "hybrid"])
def test_heading_only_chunks_never_outrank_content(root, do_sync, settings, embedder, mode, budget_lines):
    # a template's empty section matches the query best by its headings; the real note only once
    write(root, "notes/template.md", "# Garden archive\n\n## Garden archive log\n\n- \n- [ ]\n1.\n")
    write(root, "notes/real.md", "# Week\n\n- planted tomatoes in the garden by the archive shed\n")
    write(root, "notes/other.md", "# Other\n\n- the car needs new tyres\n")
    do_sync()
    options = {} if budget_lines is None else {"budget_lines": budget_lines}
    with open_index(settings, embedder=embedder) as index:
        hits = index.search("garden archive", mode=mode, limit=10, **options)
    paths = [hit.path for hit in hits]
    assert "notes/real.md" in paths
    assert paths.index("notes/real.md") < paths.index("notes/template.md") if "notes/template.md" in paths else True
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)  # printed in score order
