"""The dates a query names, as day windows, for the date boost (stages.DateBoost).

A query may name a day (``2024-01-21``, ``21.01.2024``, ``21/01/2024``,
``January 21, 2024``, ``21 January 2024``), a month (``January 2024``, ``in
March``: that month of any year), or a period relative to today (``today``,
``yesterday``, ``this week``, ``last week``, ``last month``, ``3 days ago``,
``2 weeks ago``). Each becomes a ``Window`` of days; a month without a year
matches that month in every year. A dated log speaks of its own day and of
the days its text names, relative ones resolved against the log's date
(``told_windows``: "yesterday" in daily/2024-01-21.md is 2024-01-20). Nothing
here filters: a daily log whose days meet a window is boosted, the rest keep
their score. The stages that use them, ``DateBoost`` and the opt-in
``RecencyPrior``, are here too (stages.py lists them in ``ranking_stages``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Protocol

from indexer.store import ChunkRow

Ranked = list[tuple[int, float]]  # as stages.Ranked: (chunk id, score), best first


class StageContext(Protocol):
    """What the date stages read of stages.StageContext (which imports this module)."""

    head: tuple[int, ...]
    rows: dict[int, ChunkRow]
    windows: Sequence[Window]

MONTHS = {
    name: number
    for number, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
         ("november", "nov"), ("december", "dec")],
        start=1,
    )
    for name in names
}  # fmt: skip
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
PATTERNS = [
    re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<m>[01]?\d)-(?P<day>[0-3]?\d)\b"),  # ISO
    re.compile(r"\b(?P<day>[0-3]?\d)[./](?P<m>[01]?\d)[./](?P<year>(?:19|20)\d\d)\b"),  # 21.01.2024, 21/01/2024
    re.compile(rf"\b{_MONTH}\s+{_DAY}(?:,?\s+{_YEAR})?\b", re.IGNORECASE),  # January 21, 2024
    re.compile(rf"\b{_DAY}(?:\s+of)?\s+{_MONTH}(?:,?\s+{_YEAR})?\b", re.IGNORECASE),  # 21 January 2024
    re.compile(rf"\b{_MONTH}(?:\s+{_YEAR})?\b", re.IGNORECASE),  # January 2024, in March
]
NEEDS_DIGIT = (True, True, True, True, False)  # each pattern's day or year has digits
NEEDS_MONTH = (False, False, True, True, True)  # ... or it names a month
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
RELATIVE = re.compile(
    r"\b(?:(?P<today>today|tonight)|(?P<yesterday>yesterday)|(?P<which>this|last|past)\s+(?P<unit>week|month)"
    r"|last\s+(?P<weekday>" + "|".join(WEEKDAYS) + r")"
    r"|(?P<count>\d+|a|one|two|three|four|five|six)\s+(?P<units>days?|weeks?|months?)\s+ago)\b",
    re.IGNORECASE,
)
# What each kind of pattern cannot match without (checked first: most text names no date).
HAS_DIGIT = re.compile(r"\d")
HAS_MONTH = re.compile("|".join(sorted({name[:3] for name in MONTHS})), re.IGNORECASE)  # every month name's start
HAS_RELATIVE = re.compile(r"today|tonight|yesterday|week|month|last|ago", re.IGNORECASE)
NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
AMBIGUOUS_MONTHS = frozenset({"may", "mar", "jan", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "feb", "apr"})


@dataclass(frozen=True)
class Window:
    """Days from ``start`` to ``end`` inclusive; ``any_year``: the month and day alone count."""

    start: date
    end: date
    any_year: bool = False

    def overlaps(self, other: Window) -> bool:
        """True when the two windows share a day (a window of any year: by month and day)."""
        if self.any_year or other.any_year:
            days = _days(other)
            if len(days) > 62:
                return True
            if not self.any_year:  # other's days are one run from its start to its end
                return self.start <= other.end and other.start <= self.end
            return any(self.holds(day) for day in days)
        return self.start <= other.end and other.start <= self.end

    def holds(self, day: date) -> bool:
        if not self.any_year:
            return self.start <= day <= self.end
        try:
            moved = day.replace(year=self.start.year)
        except ValueError:  # 29 February
            return False
        return self.start <= moved <= self.end


def query_windows(query: str, *, today: date | None = None) -> list[Window]:
    """The day windows ``query`` names (empty: none)."""
    today = today or date.today()
    windows: list[Window] = []
    taken: list[tuple[int, int]] = []
    digit, month = HAS_DIGIT.search(query) is not None, HAS_MONTH.search(query) is not None
    for pattern, needs_digit, needs_month in zip(PATTERNS, NEEDS_DIGIT, NEEDS_MONTH):
        if (needs_digit and not digit) or (needs_month and not month):
            continue  # it cannot match
        for match in pattern.finditer(query):
            if any(start < match.end() and match.start() < end for start, end in taken):
                continue
            window = _window(match)
            if window is not None:
                windows.append(window)
                taken.append(match.span())
    if HAS_RELATIVE.search(query) is not None:
        for match in RELATIVE.finditer(query):
            windows.append(_relative(match, today))
    return windows


@lru_cache(maxsize=256)
def _days(window: Window) -> tuple[date, ...]:
    return tuple(window.start + timedelta(days=n) for n in range((window.end - window.start).days + 1))


def told_windows(text: str, day: date) -> list[Window]:
    """The days a dated log's ``text`` speaks of: its own ``day``, and the dates and periods
    it names, relative ones ("yesterday", "last Friday", "two weeks ago") resolved against ``day``."""
    return [Window(day, day), *query_windows(text, today=day)]


# A text longer than this is not kept (one long line is one chunk, up to max_file_bytes).
TOLD_KEPT_CHARS = 4096


def _told(text: str, day: date) -> tuple[Window, ...]:
    return _told_kept(text, day) if len(text) <= TOLD_KEPT_CHARS else tuple(told_windows(text, day))


@lru_cache(maxsize=2048)  # a warm process meets the same chunks again (at most ~8 MB of texts kept)
def _told_kept(text: str, day: date) -> tuple[Window, ...]:
    return tuple(told_windows(text, day))


def _window(match: re.Match[str]) -> Window | None:
    groups = match.groupdict()
    # casefold: what the patterns' IGNORECASE matched ("ſeptember", with a long s, was a KeyError)
    month_name = (groups.get("month") or "").casefold()
    if month_name:
        text = match.group(0)
        # "may", "mar"... alone are also words: a bare abbreviation or lower-case "may" names no month
        if groups.get("day") is None and groups.get("year") is None and (
            month_name in AMBIGUOUS_MONTHS and (len(month_name) < 4 or not text[0].isupper())
        ):
            return None
        month = MONTHS.get(month_name)
        if month is None:  # matched through IGNORECASE's folding, not a month: "aprİl", "aprıl"
            return None
    else:
        month = int(groups["m"])
    year = int(groups["year"]) if groups.get("year") else None
    any_year = year is None
    year = year or 2000  # a leap year, so that 29 February fits
    try:
        if groups.get("day") is not None:
            start = end = date(year, month, int(groups["day"]))
        else:
            start = date(year, month, 1)
            end = (date(year + (month == 12), month % 12 + 1, 1)) - timedelta(days=1)
    except ValueError:
        return None
    return Window(start, end, any_year)


def _relative(match: re.Match[str], today: date) -> Window:
    if match.group("today"):
        return Window(today, today)
    if match.group("yesterday"):
        return Window(today - timedelta(days=1), today - timedelta(days=1))
    if match.group("weekday"):
        back = (today.weekday() - WEEKDAYS.index(match.group("weekday").lower())) % 7 or 7
        return Window(today - timedelta(days=back), today - timedelta(days=back))
    if match.group("which"):
        unit = match.group("unit").lower()
        if match.group("which").lower() == "this":
            start = today - timedelta(days=today.weekday()) if unit == "week" else today.replace(day=1)
            return Window(start, today)
        if unit == "week":  # last week: the seven days before this week's Monday (and a few days' slack after)
            monday = today - timedelta(days=today.weekday())
            return Window(monday - timedelta(days=7), monday - timedelta(days=1))
        first = today.replace(day=1)
        previous = (first - timedelta(days=1)).replace(day=1)
        return Window(previous, first - timedelta(days=1))
    count_text = match.group("count").lower()
    count = NUMBERS.get(count_text) or int(count_text)
    unit = match.group("units").lower().rstrip("s")
    days = {"day": 1, "week": 7, "month": 30}[unit] * count
    slack = {"day": 1, "week": 3, "month": 10}[unit]
    return Window(today - timedelta(days=days + slack), today - timedelta(days=max(0, days - slack)))


# -- the ranking stages that use them (listed in stages.ranking_stages) --------------------


@dataclass(frozen=True)
class DateBoost:
    """The head's dated logs inside a window the query names (``context.windows``) gain
    ``share`` of the way to 1, and the head is re-sorted; nothing when the query names no date."""

    share: float
    relative: bool = True  # the days a log's text names count too ("yesterday" in daily/2024-01-21.md: the 20th)

    def __call__(self, ranked: Ranked, context: StageContext) -> Ranked:
        if not context.windows:
            return ranked
        size = len(context.head)
        head = [
            (cid, score + self.share * (1 - score) if self.told(context.rows[cid], context.windows) else score)
            for cid, score in ranked[:size]
        ]
        head.sort(key=lambda item: (-item[1], item[0]))
        return head + ranked[size:]

    def told(self, row: ChunkRow, windows: Sequence[Window]) -> bool:
        """True when a dated log's chunk speaks of a day in ``windows`` (its own day, or one
        its text names, "yesterday" resolved against the log's date: dates.told_windows)."""
        if in_windows(row.date, windows):
            return True
        if not self.relative or not row.date:
            return False
        try:
            day = date.fromisoformat(row.date)
        except ValueError:
            return False
        return any(told.overlaps(window) for told in _told(row.text, day) for window in windows)


@dataclass(frozen=True)
class RecencyPrior:
    """The head mixed with recency, ``(1 - share) * score + share * 0.5 ** (age / half_life)``:
    age in days before the newest dated log of the head; an undated chunk gets the head's mean."""

    share: float
    half_life: float

    def __call__(self, ranked: Ranked, context: StageContext) -> Ranked:
        size = len(context.head)
        days: dict[int, date] = {}
        for cid in context.head:
            try:
                days[cid] = date.fromisoformat(context.rows[cid].date or "")
            except ValueError:
                continue
        if not days:
            return ranked
        newest = max(days.values())
        prior = {cid: 0.5 ** ((newest - day).days / self.half_life) for cid, day in days.items()}
        mean = sum(prior.values()) / len(prior)
        head = [(cid, (1 - self.share) * score + self.share * prior.get(cid, mean)) for cid, score in ranked[:size]]
        head.sort(key=lambda item: (-item[1], item[0]))
        return head + ranked[size:]


def in_windows(day: str | None, windows: Sequence[Window]) -> bool:
    """True when the ISO ``day`` (a dated log's; None: undated) is inside one of ``windows``."""
    if not day:
        return False
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        return False
    return any(window.holds(parsed) for window in windows)
