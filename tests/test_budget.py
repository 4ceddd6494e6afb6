"""Reading budget: pure packing (hypothesis) and search through the API and CLI."""

from __future__ import annotations

from conftest import write
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from indexer import open_index
from indexer.retrieval.budget import MIN_PART_TOKENS, Budget, Hit, best_part, estimate_tokens, pack, without_filler


def line_text(path: str, number: int) -> str:
    return f"{path} line {number} " + "word " * (number % 7)


def make_hit(path: str, start: int, end: int, score: float, key: int) -> Hit:
    return Hit(path, start, end, score, tuple(line_text(path, n) for n in range(start, end + 1)), key=key)


@st.composite
def ranked_hits(draw) -> list[Hit]:
    """Non-overlapping chunks of a few files (as the index has them), in a random rank order."""
    hits = []
    for path in draw(st.lists(st.sampled_from(["a.md", "b.md", "daily/c.md"]), min_size=1, max_size=3, unique=True)):
        line = 1
        for _ in range(draw(st.integers(1, 8))):
            line += draw(st.integers(0, 2))  # blank lines between chunks, or none
            size = draw(st.integers(1, 30))
            hits.append((path, line, line + size - 1))
            line += size
    order = draw(st.permutations(hits))
    return [make_hit(p, s, e, score=1.0 - i / 100, key=i) for i, (p, s, e) in enumerate(order)]


budgets = st.one_of(
    st.builds(Budget, lines=st.integers(1, 80)),
    st.builds(Budget, tokens=st.integers(1, 400)),
    st.builds(Budget, lines=st.integers(1, 80), tokens=st.integers(1, 400)),
)


@hsettings(max_examples=300, deadline=None)
@given(ranked_hits(), budgets, st.integers(1, 30))
def test_packing_keeps_every_promise(hits, budget, limit):
    packed = pack(hits, budget=budget, limit=limit)
    by_key = {hit.key: hit for hit in hits}
    assert len(packed) <= limit
    lines = [line for item in packed for line in item.lines]
    assert budget.lines is None or len(lines) <= budget.lines
    assert budget.tokens is None or sum(estimate_tokens(line) for line in lines) <= budget.tokens
    for item in packed:
        # the result's lines are exactly the file's lines start..end ("get" is exact)
        assert not item.cut  # no line here is too long for a part of the budget
        assert item.lines == tuple(line_text(item.path, n) for n in range(item.start_line, item.end_line + 1))
        members = [by_key[key] for key in item.keys]
        assert all(m.path == item.path for m in members)
        if not item.trimmed:  # merged spans are the union of their hits, no more
            covered = {n for m in members for n in range(m.start_line, m.end_line + 1)}
            assert covered == set(range(item.start_line, item.end_line + 1))
        assert item.score == max(m.score for m in members)
        assert item.heading == members[0].heading
    spans = sorted((item.path, item.start_line, item.end_line) for item in packed)
    for (p1, _, e1), (p2, s2, _) in zip(spans, spans[1:]):
        assert p1 != p2 or s2 > e1 + 1  # no two results overlap or touch


@hsettings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=8), st.integers(1, 80))
def test_budget_is_filled_when_the_hits_allow(sizes, budget_lines):
    hits = [make_hit(f"f{i}.md", 1, size, 1.0 - i / 10, i) for i, size in enumerate(sizes)]  # nothing to merge
    packed = pack(hits, budget=Budget(lines=budget_lines), limit=1000)
    used = sum(item.end_line - item.start_line + 1 for item in packed)
    available = sum(hit.end_line - hit.start_line + 1 for hit in hits)
    assert used == min(budget_lines, available)  # trimming fills the remainder exactly


def test_adjacent_and_overlapping_hits_merge_in_rank_order():
    hits = [make_hit("a.md", 10, 12, 0.9, 0), make_hit("b.md", 1, 2, 0.8, 1), make_hit("a.md", 13, 15, 0.7, 2),
            make_hit("a.md", 5, 9, 0.6, 3)]  # fmt: skip
    packed = pack(hits, budget=Budget(lines=50), limit=10)
    assert [(p.path, p.start_line, p.end_line, p.keys) for p in packed] == [
        ("a.md", 5, 15, (0, 2, 3)), ("b.md", 1, 2, (1,)),
    ]  # fmt: skip
    assert packed[0].score == 0.9


def test_oversized_chunk_is_trimmed_to_its_best_lines():
    lines = tuple(f"filler {n}" for n in range(1, 81))
    lines = lines[:60] + ("the penicillin allergy", "penicillin again") + lines[62:]
    hit = Hit("notes.md", 1, 80, 1.0, lines, key=7)
    weight = lambda line: float("penicillin" in line)  # noqa: E731
    [item] = pack([hit], budget=Budget(lines=10), limit=5, line_weight=weight)
    assert item.trimmed and item.end_line - item.start_line + 1 == 10
    assert item.start_line <= 61 and item.end_line >= 62
    assert item.lines == lines[item.start_line - 1 : item.end_line]


def test_blank_and_heading_lines_at_the_edges_are_not_read():
    hit = Hit("d.md", 1, 6, 1.0, ("# 2026-01-05", "", "## Chat", "- the message", "- another", ""), "Chat", 3)
    assert without_filler(hit) == Hit("d.md", 4, 5, 1.0, ("- the message", "- another"), "Chat", 3)
    only = Hit("d.md", 1, 2, 1.0, ("# Title", ""), "Title", 4)
    assert without_filler(only) == Hit("d.md", 1, 1, 1.0, ("# Title",), "Title", 4)
    inner = make_hit("a.md", 1, 3, 1.0, 5)
    assert without_filler(inner) is inner


def test_limit_caps_the_count_and_a_merge_needs_room():
    hits = [make_hit("a.md", 1, 3, 0.9, 0), make_hit("b.md", 1, 3, 0.8, 1), make_hit("a.md", 4, 9, 0.7, 2)]
    assert [p.path for p in pack(hits, budget=Budget(lines=50), limit=1)] == ["a.md"]
    packed = pack(hits, budget=Budget(lines=8), limit=5)  # merging 6 more lines would overflow
    assert [(p.path, p.start_line, p.end_line) for p in packed] == [("a.md", 1, 3), ("b.md", 1, 3)]


def long_line(words: int, needle_at: int) -> str:
    return " ".join("needle in the haystack" if i == needle_at else f"filler{i}" for i in range(words))


NEEDLE = lambda line: float(line.count("needle"))  # noqa: E731


def test_a_line_too_long_for_the_tokens_left_is_shown_as_its_best_part():
    lines = ("short first line", long_line(2000, 1500), "short last line")  # ~4,000 tokens on line 2
    hit = Hit("chat.md", 7, 9, 1.0, lines, key=1)
    [item] = pack([hit], budget=Budget(lines=50, tokens=300), limit=5, line_weight=NEEDLE)
    assert (item.start_line, item.end_line, item.cut) == (8, 8, True)  # the citation: the whole line
    assert "needle in the haystack" in item.excerpt
    assert item.excerpt.startswith("…") and item.excerpt.endswith("…")
    assert item.excerpt[1:-1] in lines[1]  # a part of the line, as written
    assert estimate_tokens(item.excerpt) <= 300
    [whole] = pack([hit], budget=Budget(lines=50), limit=5, line_weight=NEEDLE)  # lines only: read whole
    assert (whole.start_line, whole.end_line, whole.cut, whole.excerpt) == (7, 9, False, None)


def test_a_long_line_after_other_results_gets_the_tokens_left_or_nothing():
    first = Hit("a.md", 1, 10, 0.9, ("x" * 80,) * 10, key=1)  # 200 tokens
    long_hit = Hit("b.md", 3, 3, 0.8, (long_line(400, 10),), key=2)
    packed = pack([first, long_hit], budget=Budget(lines=50, tokens=260), limit=5, line_weight=NEEDLE)
    assert [p.path for p in packed] == ["a.md", "b.md"]
    assert packed[1].cut and sum(estimate_tokens(line) for p in packed for line in p.lines) <= 260
    tight = pack([first, long_hit], budget=Budget(lines=50, tokens=200 + MIN_PART_TOKENS - 1), limit=5,
                 line_weight=NEEDLE)  # fmt: skip
    assert [p.path for p in tight] == ["a.md"]  # too little left for a useful part


def test_long_lines_share_the_token_budget():
    hits = [Hit(f"{n}.md", 1, 1, 1 - n / 10, (long_line(600, 100 + 50 * n),), key=n) for n in range(3)]  # ~1,000 tokens each
    packed = pack(hits, budget=Budget(lines=50, tokens=1200), limit=10, line_weight=NEEDLE)
    assert [p.path for p in packed] == ["0.md", "1.md", "2.md"]  # each shows a part, not one whole line
    assert all(p.cut and "needle" in p.excerpt and estimate_tokens(p.excerpt) <= 1200 // 3 for p in packed)


def test_best_part_prefers_the_matching_window_and_the_start_on_ties():
    line = long_line(500, 300)
    part = best_part(line, chars=200, weight=NEEDLE)
    assert "needle" in part and len(part) <= 202
    plain = best_part(line, chars=200, weight=lambda text: 0.0)
    assert plain.startswith("filler0 ") and plain.endswith("…") and not plain.startswith("…")
    assert best_part("short", chars=200, weight=NEEDLE) == "short"


# -- through the API and the CLI ----------------------------------------------------


def chat_day(words: list[str]) -> str:
    return "# 2026-01-05\n\n## Chat\n\n" + "".join(f"- message {i} about {w}\n" for i, w in enumerate(words))


def test_search_fills_the_budget_and_get_returns_each_result(root, settings, embedder, do_sync):
    topics = ["kayak", "pottery", "kayak", "tax", "kayak", "garden"] * 10
    write(root, "daily/2026-01-05.md", chat_day(topics))
    write(root, "notes/kayak.md", "# Kayak\n\n" + "".join(f"- kayak note {i}\n" for i in range(40)))
    do_sync()
    with open_index(settings, embedder=embedder) as index:
        for budget in (5, 12, 50):
            results = index.search("kayak", budget_lines=budget)
            assert results
            assert sum(r.end_line - r.start_line + 1 for r in results) <= budget
            for r in results:
                got = index.get(f"{r.path}:{r.start_line}-{r.end_line}")
                assert (got.start_line, got.end_line) == (r.start_line, r.end_line)
            spans = sorted((r.path, r.start_line, r.end_line) for r in results)
            for (p1, _, e1), (p2, s2, _) in zip(spans, spans[1:]):
                assert p1 != p2 or s2 > e1 + 1
        assert len(index.search("kayak", limit=2)) <= 2
        whole = index.search("kayak", budget_lines=None, limit=3)
        assert len(whole) == 3  # no budget: one chunk per result, as many as the limit


def test_default_search_bounds_tokens_and_shows_the_best_part_of_a_long_line(root, settings, embedder, do_sync):
    messages = [f"- user: a question about topic {i}" if i % 2 else "- assistant: " + long_line(1200, 5 + i * 90)
                for i in range(8)]  # fmt: skip
    messages[4] = "- assistant: " + long_line(1200, 900).replace("needle in the haystack", "the zeppelin hangar")
    write(root, "chat.md", "# Chat\n\n" + "\n".join(messages) + "\n")
    do_sync()
    with open_index(settings, embedder=embedder) as index:
        results = index.search("zeppelin hangar")  # the default budget: 50 lines or 2,000 tokens
        assert sum(estimate_tokens(line) for r in results for line in (r.excerpt or "x").split("\n")) <= 2000
        best = results[0]
        assert best.path == "chat.md" and best.start_line <= 7 <= best.end_line
        assert best.excerpt is not None and "zeppelin hangar" in best.excerpt and "zeppelin" in best.snippet
        assert index.get("chat.md:7").lines == [messages[4]]  # the citation is the whole line
        whole = index.search("zeppelin hangar", budget_tokens=0)  # lines only: the whole line
        assert whole[0].excerpt is None and whole[0].start_line <= 7 <= whole[0].end_line
        assert "zeppelin hangar" in whole[0].snippet  # the snippet of a long line shows where it matches


def test_cjk_text_counts_a_token_per_character():
    assert estimate_tokens("我们决定周五在北京开会") == 11  # was 3: a 1,500-token budget read ~6,000 tokens of Chinese
    assert estimate_tokens("Meeting 会议 Friday") == (len("Meeting  Friday") + 3) // 4 + 2
    assert estimate_tokens("x" * 400) == 100  # English-like text as before
    lines = tuple("今天" * 100 for _ in range(20))  # 200 characters a line
    [item] = pack([Hit("chat.md", 1, 20, 1.0, lines, key=1)], budget=Budget(lines=50, tokens=1000), limit=5)
    assert sum(len(line) for line in item.lines) <= 1000  # 5 lines, not all 20


def test_a_long_cjk_line_is_cut_to_a_part_the_budget_holds_around_the_match():
    line = "天气很好。" * 300 + "针在这里" + "天气很好。" * 300  # 3,004 characters
    hit = Hit("chat.md", 3, 3, 1.0, (line,), key=1)
    weight = lambda text: float(text.count("针在这里"))
    [item] = pack([hit], budget=Budget(lines=50, tokens=300), limit=5, line_weight=weight)
    assert item.cut and "针在这里" in item.excerpt
    assert 50 <= len(item.excerpt) <= 300 // 3  # a third of the budget (PART_SHARE), a token per character


def test_filler_is_trimmed_from_each_end_reading_only_up_to_the_first_content_line(monkeypatch):
    """without_filler keeps the first to the last content line; it reads inward from each
    end (a search trims ~100 hits: reading every line of each cost ~1 ms at 100K chunks)."""
    import random

    import indexer.retrieval.budget as budget_module

    rng = random.Random(2)
    pool = ["", "  ", "# H", "## x", "- ", "* ", "text", "- item", "#tag", "1. "]
    for _ in range(3000):
        lines = tuple(rng.choice(pool) for _ in range(rng.randint(1, 8)))
        hit = budget_module.Hit("p", 10, 9 + len(lines), 1.0, lines, "h", 1)
        content = [i for i, line in enumerate(lines) if not budget_module.is_filler(line)] or [0]
        got = budget_module.without_filler(hit)
        assert (got.start_line, got.end_line) == (10 + content[0], 10 + content[-1])
        assert got.lines == lines[content[0] : content[-1] + 1]
    calls = []
    real = budget_module.is_filler
    monkeypatch.setattr(budget_module, "is_filler", lambda line: calls.append(line) or real(line))
    long = budget_module.Hit("p", 1, 52, 1.0, ("## Heading", *[f"line {i}" for i in range(50)], ""), "h", 1)
    assert budget_module.without_filler(long).lines == long.lines[1:51]
    assert len(calls) == 4  # two lines from each end, not 52
