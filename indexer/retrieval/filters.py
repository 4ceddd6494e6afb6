"""Search filters shared by the CLI, the Python API and the MCP server (pure).

A filter narrows the candidates *inside* the keyword and vector queries (see
``store.filter_clause``), so a filtered search still returns up to ``limit``
results; ``min_score`` is applied after fusion, to the final scores.

Dates are the dated logs' dates (``daily/YYYY-MM-DD.md``) and the session
transcripts' chunks' own dates (their messages' timestamps): ``after`` and
``before`` are inclusive, take ISO dates (``2026-11-30``) or a span back from
today (``7d``, ``2w``, ``3m``, ``1y``; ``0d`` is today), and a date filter
keeps only dated files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import PurePosixPath

from indexer.errors import ConfigError
from indexer.sources.discover import is_utf8

KINDS: tuple[str, ...] = ("soul", "memory", "daily", "note", "session")
RELATIVE = re.compile(r"^(\d{1,5})([dwmy])$")
DAYS_PER_UNIT = {"d": 1, "w": 7, "m": 30, "y": 365}


@dataclass(frozen=True)
class SearchFilters:
    """Which chunks a search may return. An empty filter lets everything through."""

    kinds: tuple[str, ...] = ()
    path_prefix: str | None = None  # root-relative POSIX prefix, a plain string prefix ("daily/2026-11" works)
    after: date | None = None  # inclusive
    before: date | None = None  # inclusive
    min_score: float | None = None  # applied to the final (fused) score

    @property
    def narrows_candidates(self) -> bool:
        """True when the candidate queries must be restricted (min_score is applied later)."""
        return bool(self.kinds) or self.path_prefix is not None or self.after is not None or self.before is not None

    def as_dict(self) -> dict[str, object]:
        return {
            "kinds": list(self.kinds),
            "path_prefix": self.path_prefix,
            "after": self.after.isoformat() if self.after else None,
            "before": self.before.isoformat() if self.before else None,
            "min_score": self.min_score,
        }


def make_filters(
    *,
    kinds: str | Iterable[str] | None = None,
    path_prefix: str | None = None,
    after: str | date | None = None,
    before: str | date | None = None,
    min_score: float | str | None = None,
    today: date | None = None,
) -> SearchFilters:
    """Validate user input into ``SearchFilters``; bad values raise ``ConfigError`` (one line)."""
    today = today or date.today()
    start = parse_day(after, today=today, name="after")
    end = parse_day(before, today=today, name="before")
    if start is not None and end is not None and start > end:
        raise ConfigError(f"after ({start}) is later than before ({end}): nothing can match")
    return SearchFilters(
        kinds=parse_kinds(kinds),
        path_prefix=parse_prefix(path_prefix),
        after=start,
        before=end,
        min_score=parse_min_score(min_score),
    )


CORPORA = ("memory", "sessions", "all")


def corpus_kinds(corpus: str | None, kinds: list[str] | None) -> list[str] | None:
    """The kinds a search may return given OpenClaw's ``corpus`` (``memory``: the Markdown
    files; ``sessions``: transcripts; ``all``/None: both) and explicit ``kinds``, which must agree."""
    if corpus in (None, "all"):
        return kinds
    if corpus not in CORPORA:
        raise ConfigError(f"corpus {corpus!r} is not one of {', '.join(CORPORA)}")
    allowed = ["session"] if corpus == "sessions" else [kind for kind in KINDS if kind != "session"]
    if not kinds:
        return allowed
    chosen = [kind for kind in parse_kinds(kinds) if kind in allowed]
    if not chosen:
        raise ConfigError(f"kind {', '.join(kinds)} is not in corpus {corpus!r}: nothing can match")
    return chosen


def parse_kinds(kinds: str | Iterable[str] | None) -> tuple[str, ...]:
    if kinds is None:
        return ()
    items = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    chosen: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"kind must be text, not {type(item).__name__}")
        kind = item.strip().lower()
        if not kind:
            continue
        if kind not in KINDS:
            raise ConfigError(f"unknown kind {item!r}; choose from {', '.join(KINDS)}")
        if kind not in chosen:
            chosen.append(kind)
    return tuple(chosen)


def parse_prefix(prefix: str | None) -> str | None:
    """A root-relative POSIX prefix; ``..``, absolute paths and hidden parts are refused."""
    if prefix is None:
        return None
    text = prefix.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    if not text or text == ".":
        return None
    if not is_utf8(text):
        raise ConfigError(f"path prefix {prefix!r} is not valid UTF-8")
    if "\x00" in text or text.startswith("/") or PurePosixPath(text).is_absolute():
        raise ConfigError(f"path prefix {prefix!r} must be relative to the memory root")
    if any(part == ".." for part in text.split("/")):
        raise ConfigError(f"path prefix {prefix!r} must stay inside the memory root")
    return text


def parse_day(value: str | date | None, *, today: date, name: str) -> date | None:
    """An ISO date, or ``N`` days/weeks/months/years back from ``today`` (``7d``, ``2w``...)."""
    if value is None or isinstance(value, date):
        return value
    text = value.strip().lower()
    if not text:
        return None
    relative = RELATIVE.match(text)
    if relative:
        days = int(relative[1]) * DAYS_PER_UNIT[relative[2]]
        try:
            return today - timedelta(days=days)
        except OverflowError:
            raise ConfigError(f"{name}: {value!r} reaches too far back") from None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not a date (YYYY-MM-DD, or a span like 7d, 2w, 3m, 1y)") from None


def parse_min_score(value: float | str | None) -> float | None:
    if value is None:
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"min score {value!r} is not a number") from None
    if not math.isfinite(score):
        raise ConfigError(f"min score {value!r} is not a finite number")
    return score
