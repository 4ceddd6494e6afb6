"""Invariant 1 on PostgreSQL: any edits with syncs in between end equal to a fresh rebuild.

The same generated edit sequences as test_invariants.py (creates, edits,
renames, deletes, frontmatter and title changes, same-tick edits), synced into
a namespace of the session's server; the result is compared with a fresh
namespace built from the final folder: files, chunks, postings, counters,
skipped files and vectors. ``MEMDEX_PG_HYPOTHESIS_EXAMPLES`` (default 50).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from test_invariants import PROPERTY, Memory, Sync, fresh_folder, operations, snapshot, sync

from indexer import make_settings
from indexer.config.settings import Settings

pytestmark = pytest.mark.postgres
EXAMPLES = int(os.environ.get("MEMDEX_PG_HYPOTHESIS_EXAMPLES", "50"))


def namespace(root: Path, url: str) -> Settings:
    return make_settings(root, url, namespace=f"inv-{uuid.uuid4().hex[:12]}")


def assert_equals_fresh_rebuild(settings: Settings, url: str) -> None:
    fresh = namespace(settings.root, url)
    sync(fresh)
    incremental, rebuilt = snapshot(settings), snapshot(fresh)
    assert incremental["files"] == rebuilt["files"]
    assert incremental["chunks"] == rebuilt["chunks"]
    assert incremental == rebuilt


@hypothesis_settings(max_examples=EXAMPLES, **PROPERTY)
@given(ops=operations)
def test_any_edits_with_full_syncs_in_between_equal_a_fresh_rebuild(pg_url: str, ops: list[Any]) -> None:
    with fresh_folder() as (root, _):
        memory = Memory(root)
        settings = namespace(root, pg_url)
        for op in ops:
            if isinstance(op, Sync):
                sync(settings)
            else:
                memory.apply(op)
        sync(settings)
        assert_equals_fresh_rebuild(settings, pg_url)


@hypothesis_settings(max_examples=max(EXAMPLES // 2, 1), **PROPERTY)
@given(ops=operations)
def test_syncs_of_just_the_changed_paths_equal_a_fresh_rebuild(pg_url: str, ops: list[Any]) -> None:
    with fresh_folder() as (root, _):
        memory = Memory(root)
        settings = namespace(root, pg_url)
        sync(settings)
        for op in [*ops, Sync()]:
            if isinstance(op, Sync):
                sync(settings, paths=memory.touched)
                memory.touched = set()
            else:
                memory.apply(op)
        assert_equals_fresh_rebuild(settings, pg_url)
