"""What a search from a front end (``memdex search``, the MCP ``memory_search`` tool)
asks for when the caller leaves a choice open: one decision, for both.

A value left out (None) is the setting's (``search_mode``, ``search_limit``,
``search_budget_lines``, ``search_budget_tokens``); a budget of 0 lines (given,
or as the setting) is no line budget, and a token budget of 0 none in tokens.
Both none: whole chunks, one result each; 0 lines alone also drops the token
setting (whole chunks), unless tokens are asked for. What remains is
``MemoryIndex.search``'s to validate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from indexer.config.settings import DEFAULT_BUDGET_TOKENS, Settings
from indexer.errors import ConfigError, UsageError

from .budget import Budget
from .search import MODES

MAX_LIMIT = 1000  # results per search (the CLI's --limit has the same bound)
DEFAULT_LIMIT = 10  # results without a budget
MAX_RESULTS = 100  # results with a budget and no limit


@dataclass(frozen=True)
class SearchOptions:
    """Keyword arguments of ``MemoryIndex.search`` (``search(query, **options.keywords())``)."""

    mode: str
    limit: int | None  # None: as many results as the budget holds
    budget_lines: int | None  # None: no line budget
    budget_tokens: int | None = None  # None: the default token bound (with a line budget); 0: none

    def keywords(self) -> dict[str, Any]:
        return asdict(self)


def search_options(
    settings: Settings,
    *,
    mode: str | None = None,
    limit: int | None = None,
    budget_lines: int | None = None,
    budget_tokens: int | None = None,
) -> SearchOptions:
    """The options of one search: each None replaced by its setting, a 0 budget by no budget."""
    lines = settings.search_budget_lines if budget_lines is None else budget_lines
    tokens = budget_tokens
    if tokens is None:
        tokens = 0 if lines == 0 else settings.search_budget_tokens  # 0 lines: whole chunks
    return SearchOptions(
        mode=settings.search_mode if mode is None else mode,
        limit=settings.search_limit if limit is None else limit,
        budget_lines=lines or None,
        budget_tokens=tokens,
    )


def checked_search(
    query: object, *, mode: str, limit: int | None, budget_lines: int | None, budget_tokens: int | None
) -> tuple[str, int, Budget | None]:
    """``MemoryIndex.search``'s arguments checked (a bad one is a one-line error): (the
    query as valid UTF-8, how many results at most, the budget or None)."""
    if not isinstance(query, str):
        raise ConfigError(f"the query must be a str, not {type(query).__name__}")
    if not query.strip():
        raise UsageError("the query is empty: say what to search for")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT):
        raise ConfigError(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {limit!r}")
    for name, value in (("budget_lines", budget_lines), ("budget_tokens", budget_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{name} must be a whole number, not {value!r}")
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
    if budget_lines is not None and budget_lines < 1:
        raise ConfigError("budget_lines must be at least 1, or None for no line budget")
    if budget_tokens is not None and budget_tokens < 0:
        raise ConfigError("budget_tokens must be at least 1, 0 for no token bound, or None for the default")
    if budget_tokens is None:
        budget_tokens = DEFAULT_BUDGET_TOKENS if budget_lines is not None else 0
    tokens = budget_tokens or None
    budget = None if budget_lines is None and tokens is None else Budget(budget_lines, tokens)
    if limit is None:
        limit = MAX_RESULTS if budget is not None else DEFAULT_LIMIT
    # Command lines may carry bytes that are not UTF-8 (as lone surrogates).
    return query.encode("utf-8", "replace").decode("utf-8"), limit, budget
