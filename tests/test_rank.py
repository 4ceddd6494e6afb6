"""Re-ranking stages after fusion (rank.py): each rule kept, on tiny inputs."""

from __future__ import annotations

import pytest
from conftest import write

from indexer import open_index
from indexer.retrieval.stages import Evidence, Ranking, expansion_terms, has_content, parse_ranking, rerank
from indexer.store import ChunkRow

IDFS = {"gym": 2.0, "games": 2.0, "hobbi": 1.0}  # prefixes of "gym", "games", "hobbies"


def row(cid: int, path: str, text: str, start: int = 1) -> ChunkRow:
    lines = text.count("\n") + 1
    return ChunkRow(cid, path, start, start + lines - 1, "", text, "note", None)


def order(ranked, rows, *, cosine=None, weight=0.7, **ranking) -> list[int]:
    evidence = Evidence(weight, {}, cosine or {cid: 0.0 for cid in rows})
    return [cid for cid, _ in rerank(ranked, rows, evidence, term_idfs=IDFS, ranking=Ranking(**ranking))]


def test_heading_only_chunks_go_after_content():
    rows = {1: row(1, "MEMORY.md", "# Memory: gym and games"), 2: row(2, "a.md", "- went to the gym"),
            3: row(3, "b.md", "## Gym\n\n### Games\n")}  # fmt: skip
    ranked = [(1, 0.9), (3, 0.8), (2, 0.1)]
    assert order(ranked, rows, file_prior=0, folder_prior=0) == [2, 1, 3]
    assert order(ranked, rows, file_prior=0, folder_prior=0, demote_headings=False) == [1, 3, 2]
    assert has_content("## Gym\n- one line") and not has_content("# Title\n\n## Sub")


def test_file_prior_lifts_a_file_that_answers_the_whole_query():
    # day A mentions the gym and video games in different chunks; day B only the gym, in a slightly better chunk
    rows = {1: row(1, "daily/b.md", "- the gym was full"), 2: row(2, "daily/a.md", "- gym at six"),
            3: row(3, "daily/a.md", "- new video games", start=9)}  # fmt: skip
    ranked = [(1, 0.50), (2, 0.48), (3, 0.30)]
    assert order(ranked, rows, file_prior=0, folder_prior=0) == [1, 2, 3]
    assert order(ranked, rows, file_prior=0.3, folder_prior=0) == [2, 1, 3]


def test_folder_prior_lifts_the_notebook_the_query_is_about():
    rows = {1: row(1, "chat-b/daily/x.md", "- gym today"), 2: row(2, "chat-a/daily/y.md", "- gym later"),
            3: row(3, "chat-a/daily/z.md", "- games and hobbies")}  # fmt: skip
    ranked = [(1, 0.50), (2, 0.47), (3, 0.20)]
    assert order(ranked, rows, file_prior=0, folder_prior=0) == [1, 2, 3]
    assert order(ranked, rows, file_prior=0, folder_prior=0.3) == [2, 1, 3]


def test_priors_follow_the_cosine_when_keywords_say_little():
    rows = {1: row(1, "a.md", "- unrelated words"), 2: row(2, "b.md", "- more words"), 3: row(3, "b.md", "- other", start=5)}
    cosine = {1: 0.50, 2: 0.45, 3: 0.45}  # b.md is close to the query twice
    ranked = [(1, 0.50), (2, 0.45), (3, 0.45)]
    assert order(ranked, rows, cosine=cosine, weight=0.0, file_prior=0.5, folder_prior=0, best_cosines=2)[0] == 2


def test_parse_ranking():
    assert parse_ranking("none") is None
    assert parse_ranking("default") == Ranking()
    assert parse_ranking("file_prior:0.5,demote_headings:0") == Ranking(file_prior=0.5, demote_headings=False)
    with pytest.raises(ValueError):
        parse_ranking("nonsense:1")


def test_hybrid_search_puts_a_title_only_file_after_content(root, settings, embedder, do_sync):
    write(root, "MEMORY.md", "# Kayak kayak kayak\n")
    write(root, "daily/2026-01-05.md", "# 2026-01-05\n\n- paddled the kayak to the island\n")
    do_sync()
    with open_index(settings, embedder=embedder) as index:
        plain = index.search("kayak", ranking=None, budget_lines=None)
        ranked = index.search("kayak", budget_lines=None)
    assert plain[0].path == "MEMORY.md"  # bm25 alone likes the repeated title
    assert [r.path for r in ranked] == ["daily/2026-01-05.md", "MEMORY.md"]


def test_expansion_terms_are_rare_words_shared_by_the_top_chunks():
    chunks = [["gym", "squat", "at", "six"], ["squat", "gym", "deadlift"], ["squat", "deadlift", "12", "1230"]]
    idfs = {"gym": 3.0, "squat": 2.0, "deadlift": 4.0, "six": 5.0, "1230": 6.0}
    # "six" is in one chunk only, "1230" has digits, "gym" is a query term, "at" is short
    assert expansion_terms(chunks, idfs, exclude=frozenset({"gym"}), count=5) == ["deadlift", "squat"]
    assert expansion_terms(chunks, idfs, exclude=frozenset({"gym"}), count=1) == ["deadlift"]
    assert expansion_terms(chunks[:1], idfs, exclude=frozenset(), count=5) == []


def test_keyword_feedback_lifts_a_chunk_that_shares_the_top_hits_vocabulary(root, settings, embedder, do_sync):
    # the question names the kayak; the answer, in another file, only talks of the paddle and the island
    write(root, "a.md", "# A\n\n- kayak trip: paddle to the island\n")
    write(root, "b.md", "# B\n\n- kayak rental, paddle and island map\n")
    write(root, "c.md", "# C\n\n- lost my paddle near the island\n")
    for name in "defghij":
        write(root, f"{name}.md", f"# {name.upper()}\n\n- {name} groceries and laundry\n")
    do_sync()
    with open_index(settings, embedder=embedder) as index:
        plain = index.search("kayak", ranking=Ranking(file_prior=0, folder_prior=0), budget_lines=None, limit=20)
        fed = index.search("kayak", ranking=Ranking(file_prior=0, folder_prior=0, expand_terms=4), budget_lines=None, limit=20)
    rank_of = lambda results: [r.path for r in results].index("c.md")  # noqa: E731
    assert rank_of(fed) == 2 and rank_of(fed) < rank_of(plain)


def test_demoted_heading_chunks_score_below_content_and_empty_bullets_are_not_content():
    rows = {1: row(1, "t.md", "## Archive\n\n- \n- [ ]\n1."), 2: row(2, "a.md", "- went to the gym")}
    evidence = Evidence(0.7, {}, {1: 0.0, 2: 0.0})
    out = rerank([(1, 0.9), (2, 0.2)], rows, evidence, term_idfs=IDFS, ranking=Ranking(file_prior=0, folder_prior=0))
    assert [cid for cid, _ in out] == [2, 1]
    assert out[0][1] >= out[1][1]  # rank order is score order
    assert not has_content("## Archive\n- \n* [x]\n2)") and has_content("## Archive\n- one")
