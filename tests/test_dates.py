"""The dates a query names (retrieval/dates.py) and the date boost stage (stages.DateBoost)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from indexer.retrieval import dates
from indexer.retrieval.dates import Window, query_windows, told_windows
from indexer.retrieval.stages import Evidence, Ranking, in_windows, rerank
from indexer.store import ChunkRow

TODAY = date(2026, 12, 6)  # a Sunday


def days(query: str) -> list[tuple[str, str, bool]]:
    return [(w.start.isoformat(), w.end.isoformat(), w.any_year) for w in query_windows(query, today=TODAY)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("What book was he reading on 21.01.2024?", [("2024-01-21", "2024-01-21", False)]),
        ("notes from 2024-01-05", [("2024-01-05", "2024-01-05", False)]),
        ("When was it, December 23, 2023?", [("2023-12-23", "2023-12-23", False)]),
        ("party on 31st December 2023", [("2023-12-31", "2023-12-31", False)]),
        ("trips in January 2024", [("2024-01-01", "2024-01-31", False)]),
        ("the vet visit in September", [("2000-09-01", "2000-09-30", True)]),
        ("what costume on 31 October?", [("2000-10-31", "2000-10-31", True)]),
        ("What did I do last week?", [("2026-11-23", "2026-11-29", False)]),
        ("and yesterday?", [("2026-12-05", "2026-12-05", False)]),
        ("two weeks ago", [("2026-11-19", "2026-11-25", False)]),
        ("It may rain; May I?", []),
        ("the 3.5 release and 10/20 vision", []),
        ("31.02.2024 is no day", []),
    ],
)
def test_query_windows(query, expected):
    assert days(query) == expected


def test_a_month_without_a_year_holds_that_month_of_any_year():
    window = Window(date(2000, 9, 1), date(2000, 9, 30), any_year=True)
    assert window.holds(date(2026, 9, 14)) and window.holds(date(2019, 9, 1))
    assert not window.holds(date(2026, 10, 1))
    assert in_windows("2026-09-14", [window]) and not in_windows(None, [window]) and not in_windows("junk", [window])


def row(cid: int, path: str, day: str | None) -> ChunkRow:
    return ChunkRow(cid, path, 1, 1, "", "- a line", "daily" if day else "note", day)


def test_date_boost_lifts_the_named_day_without_filtering():
    rows = {1: row(1, "daily/2024-01-20.md", "2024-01-20"), 2: row(2, "notes/a.md", None),
            3: row(3, "daily/2024-01-21.md", "2024-01-21")}  # fmt: skip
    ranked = [(1, 0.60), (2, 0.58), (3, 0.55)]
    evidence = Evidence(0.0, {}, {cid: 0.0 for cid in rows})
    windows = query_windows("on 21.01.2024", today=TODAY)

    def order(**ranking) -> list[int]:
        plain = Ranking(file_prior=0, folder_prior=0, **ranking)
        return [cid for cid, _ in rerank(ranked, rows, evidence, term_idfs={}, ranking=plain, windows=windows)]

    assert order(date_boost=0) == [1, 2, 3]
    assert order() == [1, 3, 2]  # the default boost: 0.55 + 0.1 * 0.45 = 0.595 passes 0.58, not 0.60
    assert order(date_boost=0.3) == [3, 1, 2]  # 0.685: first; nothing is dropped
    no_date = [cid for cid, _ in rerank(ranked, rows, evidence, term_idfs={}, ranking=Ranking(file_prior=0, folder_prior=0))]
    assert no_date == [1, 2, 3]  # a query naming no date changes nothing


def test_a_log_that_says_yesterday_speaks_of_the_day_before():
    assert [(w.start.isoformat(), w.end.isoformat()) for w in told_windows("hiking yesterday, and last Friday", date(2024, 1, 21))] == [
        ("2024-01-21", "2024-01-21"), ("2024-01-20", "2024-01-20"), ("2024-01-19", "2024-01-19"),
    ]  # fmt: skip
    rows = {1: ChunkRow(1, "daily/2024-01-19.md", 1, 1, "", "- a walk", "daily", "2024-01-19"),
            2: ChunkRow(2, "daily/2024-01-21.md", 1, 1, "", "- went hiking yesterday", "daily", "2024-01-21")}  # fmt: skip
    ranked = [(1, 0.60), (2, 0.50)]
    evidence = Evidence(0.0, {}, {1: 0.0, 2: 0.0})
    windows = query_windows("What did she do on 20.01.2024?", today=TODAY)

    def order(**ranking) -> list[int]:
        chosen = Ranking(file_prior=0, folder_prior=0, date_boost=0.3, **ranking)
        return [cid for cid, _ in rerank(ranked, rows, evidence, term_idfs={}, ranking=chosen, windows=windows)]

    assert order() == [2, 1]
    assert order(date_told=False) == [1, 2]


def test_recency_prior_is_opt_in_and_favours_the_newer_log():
    rows = {1: ChunkRow(1, "daily/2024-01-01.md", 1, 1, "", "- old", "daily", "2024-01-01"),
            2: ChunkRow(2, "daily/2024-01-29.md", 1, 1, "", "- new", "daily", "2024-01-29"),
            3: ChunkRow(3, "notes/a.md", 1, 1, "", "- undated", "note", None)}  # fmt: skip
    ranked = [(1, 0.60), (3, 0.58), (2, 0.55)]
    evidence = Evidence(0.0, {}, {1: 0.0, 2: 0.0, 3: 0.0})

    def order(**ranking) -> list[int]:
        chosen = Ranking(file_prior=0, folder_prior=0, **ranking)
        return [cid for cid, _ in rerank(ranked, rows, evidence, term_idfs={}, ranking=chosen)]

    assert order() == [1, 3, 2]  # off by default
    # 28 days at a 14-day half-life: prior 0.25 for the old log, 1 for the new one, their mean for the note
    assert order(recency=0.2) == [2, 3, 1]


def _every_pattern(text: str, today: date) -> list[Window]:
    """query_windows without its pre-checks: every pattern run on every text (the reference)."""
    windows: list[Window] = []
    taken: list[tuple[int, int]] = []
    for pattern in dates.PATTERNS:
        for match in pattern.finditer(text):
            if any(start < match.end() and match.start() < end for start, end in taken):
                continue
            window = dates._window(match)
            if window is not None:
                windows.append(window)
                taken.append(match.span())
    return windows + [dates._relative(match, today) for match in dates.RELATIVE.finditer(text)]


def test_the_pre_checks_never_change_the_windows_found():
    """query_windows skips the patterns a text cannot match (no digit, no month's first
    letters, no relative word): the windows are those of running every pattern."""
    rng = random.Random(5)
    words = [
        "Jan", "january", "FEB", "Mar.", "march", "may", "May", "Sept", "sep", "ſeptember", "October", "dec",
        "21", "3rd", "2024", "1999", "21.01.2024", "2024-01-21", "12/11/2023", "٣", "of", "the", "on", "in",
        "today", "Tonight", "yesterday", "this", "last", "past", "week", "month", "months", "ago", "two", "a",
        "Friday", "day", "days", "3 days ago", "a day ago", "last Friday", "walk", "garden", "notes", ",", "-",
    ]  # fmt: skip
    found = 0
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 9)))
        expected = _every_pattern(text, TODAY)
        assert query_windows(text, today=TODAY) == expected, text
        found += bool(expected)
    assert 500 < found < 2900  # texts with and without dates


def test_a_window_of_any_year_overlaps_as_day_by_day():
    rng = random.Random(9)

    def window() -> Window:
        start = date(rng.choice([2000, 2023, 2024]), rng.randint(1, 2), rng.choice([1, 2, 4, 5, 28]))
        return Window(start, start + timedelta(days=rng.choice([0, 0, 1, 3, 30, 70, 400])), rng.random() < 0.5)

    for _ in range(3000):
        a, b = window(), window()
        days = [b.start + timedelta(days=n) for n in range((b.end - b.start).days + 1)]
        if a.any_year or b.any_year:
            expected = any(a.holds(day) for day in days) if len(days) <= 62 else True
        else:
            expected = a.start <= b.end and b.start <= a.end
        assert a.overlaps(b) == expected, (a, b)


def test_a_month_matched_by_case_folding_is_that_month():
    """IGNORECASE matches "ſeptember" (a long s); its window was a KeyError in every search
    whose candidates' text had it."""
    assert query_windows("ſeptember 3", today=TODAY) == query_windows("September 3", today=TODAY) != []


def test_a_dotted_or_dotless_i_matched_as_i_names_no_month():
    """Review: IGNORECASE matches "aprİl" and "aprıl" (Turkish i's) as "april", whose
    casefold is no month name: a KeyError in every dated search that met such a text."""
    for text in ("aprİl 3", "aprıl 3", "Aprİl 2024", "met on aprıl 3 in the garden"):
        query_windows(text, today=TODAY)  # no KeyError
    assert query_windows("April 3", today=TODAY)


def test_a_long_text_is_not_kept_by_the_date_windows_cache():
    """Review: the cache of a chunk's windows was keyed by its text, so 2,048 long chunks
    (one long line is one chunk, up to max_file_bytes) were kept for the process's life."""
    from indexer.retrieval import dates

    dates._told_kept.cache_clear()
    long_text = "we met on March 3 " + "word " * (dates.TOLD_KEPT_CHARS // 5)
    assert dates._told(long_text, TODAY) == tuple(dates.told_windows(long_text, TODAY))
    assert dates._told_kept.cache_info().currsize == 0
    assert dates._told("we met on March 3", TODAY) and dates._told_kept.cache_info().currsize == 1
