"""search_options: the one place the CLI and the MCP server fill in a search's defaults."""

from __future__ import annotations

import dataclasses

from indexer.retrieval.options import SearchOptions, search_options


def test_none_means_the_setting(settings):
    assert search_options(settings) == SearchOptions(mode="hybrid", limit=None, budget_lines=50, budget_tokens=2000)
    chosen = dataclasses.replace(
        settings, search_mode="keyword", search_limit=8, search_budget_lines=30, search_budget_tokens=700
    )
    assert search_options(chosen) == SearchOptions(mode="keyword", limit=8, budget_lines=30, budget_tokens=700)


def test_zero_means_no_budget(settings):
    assert search_options(settings, budget_lines=0).budget_lines is None
    assert search_options(settings, budget_tokens=0).budget_tokens == 0  # 0: no token bound (None: the default)
    whole = dataclasses.replace(settings, search_budget_lines=0)  # the setting's 0 too
    assert search_options(whole).budget_lines is None
    assert search_options(whole).budget_tokens == 0  # whole chunks: the token setting does not apply
    assert search_options(settings, budget_lines=0).budget_tokens == 0
    assert search_options(settings, budget_lines=0, budget_tokens=300).budget_tokens == 300
    no_tokens = dataclasses.replace(settings, search_budget_tokens=0)
    assert search_options(no_tokens).budget_tokens == 0


def test_explicit_values_are_kept(settings):
    chosen = dataclasses.replace(settings, search_mode="keyword", search_limit=8, search_budget_lines=30)
    options = search_options(chosen, mode="vector", limit=3, budget_lines=12, budget_tokens=400)
    assert options == SearchOptions(mode="vector", limit=3, budget_lines=12, budget_tokens=400)
    assert options.keywords() == {"mode": "vector", "limit": 3, "budget_lines": 12, "budget_tokens": 400}


def test_the_library_default_budget_is_the_settings_default(settings):
    """One definition (settings.DEFAULT_BUDGET_*): MemoryIndex.search's defaults and a front end's agree."""
    import inspect

    from indexer import api

    options = search_options(settings)
    parameters = inspect.signature(api.MemoryIndex.search).parameters
    assert options.budget_lines == parameters["budget_lines"].default == api.DEFAULT_BUDGET_LINES
    assert options.budget_tokens == api.DEFAULT_BUDGET_TOKENS
