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

from indexer.config.settings import Settings


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
