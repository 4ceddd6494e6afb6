"""Search filters (parsing, SQL, both vector sources, the CLI) and configurable daily folders."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import RecordingEmbedder, age_files, snapshot, write

from indexer import make_filters, make_settings, open_index
from indexer.cli.app import cli
from indexer.errors import ConfigError
from indexer.indexing.check import check_index
from indexer.retrieval.filters import SearchFilters
from indexer.retrieval.search import NumpyVectors
from indexer.sources.discover import classify
from indexer.store.sqlite.filters import filter_clause

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TODAY = date(2026, 12, 1)


def test_parsing() -> None:
    f = make_filters(kinds="daily, Memory", path_prefix="./daily/2026-11", after="7d", before="2026-11-30",
                     min_score="0.25", today=TODAY)  # fmt: skip
    assert f == SearchFilters(("daily", "memory"), "daily/2026-11", date(2026, 11, 24), date(2026, 11, 30), 0.25)
    assert make_filters(after="2w", today=TODAY).after == date(2026, 11, 17)
    assert make_filters(after="0d", today=TODAY).after == TODAY
    assert make_filters(before="1y", today=TODAY).before == date(2025, 12, 1)
    assert make_filters() == SearchFilters() and not SearchFilters().narrows_candidates
    assert make_filters(min_score=0.5).narrows_candidates is False  # applied after fusion
    assert make_filters(path_prefix=".").path_prefix is None


@pytest.mark.parametrize(
    "bad",
    [
        {"kinds": ["diary"]},
        {"path_prefix": "../x"},
        {"path_prefix": "/etc"},
        {"after": "yesterday"},
        {"after": "2026-02-30"},
        {"after": "99999y"},
        {"after": "2026-12-01", "before": "2026-11-01"},
        {"min_score": "high"},
        {"min_score": float("nan")},
    ],
)
def test_bad_filters_are_config_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_filters(**bad, today=TODAY)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_filter_clause_binds_every_value() -> None:
    assert filter_clause(None) == ("", []) and filter_clause(SearchFilters(min_score=0.3)) == ("", [])
    sql, params = filter_clause(make_filters(kinds=["daily"], path_prefix="x'; DROP", after="2026-01-01", today=TODAY))
    assert "DROP" not in sql and params == ["daily", "x'; DROP", "x'; DROP", "2026-01-01"]


def test_numpy_vectors_only() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((50, 8)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    vectors = NumpyVectors(list(range(100, 150)), matrix)
    everything = vectors.nearest(matrix[7], 50)
    allowed = [101, 107, 120, 149]
    assert vectors.nearest(matrix[7], 3, only=allowed) == [hit for hit in everything if hit[0] in allowed][:3]
    assert vectors.nearest(matrix[7], 3, only=[]) == []


def crowded(root: Path) -> None:
    for n in range(25):
        write(root, f"projects/p{n:02}.md", f"# Heron project {n}\n\nheron heron heron {n}\n")
    for day in range(1, 7):
        write(root, f"daily/2026-11-{day:02}.md", f"# Day {day}\n\n- a heron by the river\n")
    age_files(root)


@pytest.mark.parametrize("use_vec", [True, False])
def test_vector_filters_in_both_vector_sources(tmp_path: Path, embedder: RecordingEmbedder, use_vec: bool) -> None:
    root = tmp_path / "memory"
    crowded(root)
    settings = make_settings(root, use_sqlite_vec=use_vec)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    with open_index(settings, embedder=embedder) as index:
        assert index.search_info()["vector_search"] == ("sqlite-vec" if use_vec else "numpy")
        unfiltered = index.search("heron river", mode="vector", limit=100)
        daily = index.search("heron river", mode="vector", limit=4, filters=make_filters(kinds=["daily"]))
    assert [r.kind for r in daily] == ["daily"] * 4
    assert [(r.path, r.score) for r in daily] == [(r.path, r.score) for r in unfiltered if r.kind == "daily"][:4]


def test_cli_search_filters(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    root = tmp_path / "memory"
    crowded(root)
    with open_index(make_settings(root), write=True, embedder=embedder) as index:
        index.sync()
    runner = CliRunner()
    args = ["--root", str(root), "search", "heron", "--mode", "keyword", "--json"]
    daily = json.loads(runner.invoke(cli, [*args, "--kind", "daily", "--limit", "3"]).output)
    assert [r["kind"] for r in daily] == ["daily"] * 3
    window = json.loads(runner.invoke(cli, [*args, "--after", "2026-11-02", "--before", "2026-11-03"]).output)
    assert sorted(r["date"] for r in window) == ["2026-11-02", "2026-11-03"]
    under = json.loads(runner.invoke(cli, [*args, "--path", "projects/p2", "--limit", "20"]).output)
    assert sorted(r["path"] for r in under) == [f"projects/p2{n}.md" for n in range(5)]
    bad = runner.invoke(cli, [*args, "--after", "someday"])
    assert bad.exit_code == 1 and "someday" in bad.output and "Traceback" not in bad.output


def test_classify_daily_folders() -> None:
    assert classify("memory/2026-11-30.md") == ("daily", "2026-11-30")
    assert classify("daily/2026-11-30.md") == ("daily", "2026-11-30")
    assert classify("memory.md") == ("memory", None) and classify("MEMORY.md") == ("memory", None)
    assert classify("notes/memory.md") == ("note", None)
    assert classify("memory/important/2026-11-30.md") == ("note", None)
    assert classify("memory/2026-02-30.md") == ("note", None)
    assert classify("memory/2026-11-30.md", ("daily",)) == ("note", None)
    assert classify("logs/days/2026-11-30.md", ("logs/days",)) == ("daily", "2026-11-30")


def test_changing_daily_folders_reclassifies_like_a_rebuild(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    root = tmp_path / "openclaw"
    shutil.copytree(FIXTURES / "openclaw", root)
    age_files(root)
    default = make_settings(root)
    with open_index(default, write=True, embedder=embedder) as index:
        index.sync()
    only_daily = replace(default, daily_folders=("daily",))
    with open_index(only_daily, embedder=embedder) as index:
        found = check_index(only_daily, index.engine, model_id=embedder.model_id)
    assert found.state == "drift" and any("daily folders" in message for _, message in found.problems)

    embedder.reset()
    with open_index(only_daily, write=True, embedder=embedder) as index:
        report = index.sync()
        kinds = {path: (kind, day) for path, (kind, day, _) in index.store.file_descriptions().items()}
        assert check_index(only_daily, index.engine, model_id=embedder.model_id).state == "healthy"
    assert report.reindexed == 2 and embedder.embedded == []  # read again; vectors from the cache
    assert kinds["memory/2026-11-30.md"] == ("note", None)
    fresh = tmp_path / "fresh.db"
    with open_index(replace(only_daily, index_path=fresh), write=True, embedder=embedder) as index:
        index.sync()
    assert snapshot(only_daily, embedder) == snapshot(replace(only_daily, index_path=fresh), embedder)

    with open_index(default, write=True, embedder=embedder) as index:  # and back again
        index.sync()
    with open_index(default, embedder=embedder) as index:
        hits = index.search("gasket", mode="keyword", filters=make_filters(after="2026-11-30"))
    assert [h.path for h in hits] == ["memory/2026-11-30.md"]


def test_an_index_from_before_the_setting_is_reclassified(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    root = tmp_path / "openclaw"
    shutil.copytree(FIXTURES / "openclaw", root)
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
        index.store.connection.execute("DELETE FROM meta WHERE key = 'daily_folders'")  # as an older memdex left it
        index.store.connection.execute("UPDATE files SET kind = 'note', date = NULL WHERE path LIKE 'memory/%'")
        assert index.sync().reindexed == 2
        assert index.store.file_descriptions()["memory/2026-11-28.md"][:2] == ("daily", "2026-11-28")


def test_get_and_init_print_json(tmp_path: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["init", str(tmp_path / "new"), "--json"])
    assert created.exit_code == 0, created.output
    made = json.loads(created.output)
    assert "MEMORY.md" in made["created"] and made["kept"] == []
    again = json.loads(runner.invoke(cli, ["init", str(tmp_path / "new"), "--json"]).output)
    assert again["created"] == [] and sorted(again["kept"]) == sorted(made["created"])
    got = runner.invoke(cli, ["--root", str(FIXTURES / "memory"), "get", "MEMORY.md:1-3", "--json"])
    assert got.exit_code == 0, got.output
    lines = json.loads(got.output)
    expected = (FIXTURES / "memory" / "MEMORY.md").read_text(encoding="utf-8").split("\n")[:3]
    assert lines == {"path": "MEMORY.md", "start_line": 1, "end_line": 3, "lines": expected}


def test_filtered_search_equals_filtering_an_unlimited_search(tmp_path: Path, embedder: RecordingEmbedder) -> None:
    """In keyword and vector mode a filter inside the candidate query returns exactly
    what filtering the complete ranking would, up to the limit (hypothesis over filters)."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    root = tmp_path / "memory"
    crowded(root)
    write(root, "MEMORY.md", "# Memory\n\n- a heron nests by the bridge\n")
    write(root, "notes/river.md", "# River\n\nheron and kingfisher by the river\n")
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    days = [date(2026, 11, d) for d in range(1, 8)]

    with open_index(settings, embedder=embedder) as index:
        # Every search below scans the same in-memory matrix: a process's first vector search
        # is vec0's, whose cosines can differ from the matrix's in the 6th decimal.
        index.vector_matrix()

        @hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(
            kinds=st.lists(st.sampled_from(["soul", "memory", "daily", "note"]), max_size=2, unique=True),
            prefix=st.sampled_from([None, "projects/p1", "daily/", "notes", "MEM", "zzz"]),
            after=st.none() | st.sampled_from(days),
            before=st.none() | st.sampled_from(days),
            limit=st.integers(1, 12),
            mode=st.sampled_from(["keyword", "vector"]),
        )
        def check(kinds, prefix, after, before, limit, mode) -> None:  # type: ignore[no-untyped-def]
            if after and before and after > before:
                after, before = before, after
            filters = make_filters(kinds=kinds, path_prefix=prefix, after=after, before=before)
            everything = index.search("heron river bridge", mode=mode, limit=1000)
            allowed = [
                r for r in everything
                if (not kinds or r.kind in kinds) and (prefix is None or r.path.startswith(prefix))
                and (after is None or (r.date is not None and r.date >= after.isoformat()))
                and (before is None or (r.date is not None and r.date <= before.isoformat()))
            ]  # fmt: skip
            found = index.search("heron river bridge", mode=mode, limit=limit, filters=filters)
            assert [(r.path, r.start_line, r.score) for r in found] == [
                (r.path, r.start_line, r.score) for r in allowed[:limit]
            ]

        check()
