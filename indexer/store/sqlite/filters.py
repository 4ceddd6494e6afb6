"""A search's filters (``retrieval.filters.SearchFilters``) as SQL conditions over
``chunks c JOIN files f``, every value bound (the keyword query and vector search's
``only`` both narrow their candidates with them)."""

from __future__ import annotations

from typing import Any

from indexer.retrieval.filters import SearchFilters


def filter_clause(filters: SearchFilters | None) -> tuple[str, list[Any]]:
    """SQL conditions over ``chunks c JOIN files f`` for a filter ('' when it lets everything through)."""
    if filters is None or not filters.narrows_candidates:
        return "", []
    conditions: list[str] = []
    params: list[Any] = []
    if filters.kinds:
        conditions.append(f"f.kind IN ({','.join('?' * len(filters.kinds))})")
        params.extend(filters.kinds)
    if filters.path_prefix is not None:
        conditions.append("substr(c.path, 1, length(?)) = ?")  # exact, case-sensitive, no LIKE wildcards
        params.extend([filters.path_prefix, filters.path_prefix])
    if filters.after is not None:
        conditions.append("coalesce(c.date, f.date) >= ?")  # NULL (undated) never passes
        params.append(filters.after.isoformat())
    if filters.before is not None:
        conditions.append("coalesce(c.date, f.date) <= ?")
        params.append(filters.before.isoformat())
    return " AND ".join(conditions), params
