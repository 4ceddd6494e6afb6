"""The SQLite keyword query skips the chunks that have only common words when they cannot
reach the top k (store/sqlite/keyword.py): the top k stay exactly the full OR query's.
The chunk count the IDFs use is kept per state of the index and follows every change."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from conftest import RecordingEmbedder, write

import indexer.store.sqlite.keyword as keyword
import indexer.store.sqlite.store as sqlite_store
from indexer import make_filters, make_settings, open_index
from indexer.retrieval.query import stem_idfs

COMMON = ["garden", "kitchen", "coffee", "morning", "walk", "train", "letter", "music"]
MIDDLE = ["violin", "harbour", "ticket", "parcel", "ladder", "orchard", "candle", "basket", "pepper", "window"]
RARE = [f"zq{i}word" for i in range(60)]  # each in a few chunks


def _text(rng: random.Random) -> str:
    words = rng.sample(COMMON, rng.randint(1, 4)) * rng.randint(1, 2) + rng.sample(MIDDLE, rng.randint(0, 2))
    if rng.random() < 0.3:
        words.append(rng.choice(RARE))
    words += ["note"] * rng.randint(0, 12)  # lengths vary: bm25's length norm matters
    rng.shuffle(words)
    return " ".join(words)


def _index(tmp_path: Path):
    rng = random.Random(7)
    root = tmp_path / "memory"
    for f in range(24):
        parts = [f"## {rng.choice(MIDDLE + COMMON)} part {p}\n\n{_text(rng)}" for p in range(12)]
        write(root, f"notes/{'a' if f % 2 else 'b'}/file{f}.md", "\n\n".join(parts) + "\n")
    embedder = RecordingEmbedder()
    settings = make_settings(root)
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    return settings, embedder


def _queries() -> list[list[str]]:
    rng = random.Random(11)
    out = []
    for _ in range(80):
        words = rng.sample(COMMON, rng.randint(1, 3)) + rng.sample(MIDDLE, rng.randint(0, 2))
        words += rng.sample(RARE, rng.randint(0, 2))
        out.append(words)
    return out


def _same_top(full: list[tuple[int, float]], split: list[tuple[int, float]]) -> None:
    """Equal scores rank by rank, and the same chunks but those tied with the k-th."""
    assert len(split) == len(full)
    assert [s for _, s in split] == pytest.approx([s for _, s in full], rel=1e-12, abs=1e-12)
    if full:
        last = full[-1][1]
        assert {c for c, s in split if s - last > 1e-9} == {c for c, s in full if s - last > 1e-9}
        assert all(abs(dict(full).get(c, s) - s) < 1e-9 for c, s in split)


@pytest.mark.parametrize("limit", [5, 12])
def test_the_split_query_returns_the_full_queries_top_k(tmp_path: Path, monkeypatch, limit: int) -> None:
    settings, embedder = _index(tmp_path)
    monkeypatch.setattr(keyword, "SPLIT_FROM_ROWS", 0)  # a small index: split wherever it can
    shapes: list[str] = []
    real = keyword.top_bm25

    def spy(pieces, tokens, limit, *, run, counts, whole=None):
        def recording(match, count):
            shapes.append(match)
            return run(match, count)

        return real(pieces, tokens, limit, run=recording, counts=counts, whole=whole)

    with open_index(settings, embedder=embedder) as index:
        store = index.store
        assert store.chunk_count() >= 250
        filters = make_filters(path_prefix="notes/a/")
        for terms in _queries():
            for where in (None, filters):
                monkeypatch.setattr(sqlite_store, "top_bm25", real)
                monkeypatch.setattr(keyword, "SPLIT_FROM_ROWS", 10**12)
                full = store.keyword_candidates(terms, limit, filters=where)
                monkeypatch.setattr(sqlite_store, "top_bm25", spy)
                monkeypatch.setattr(keyword, "SPLIT_FROM_ROWS", 0)
                split = store.keyword_candidates(terms, limit, filters=where)
                _same_top(full, split)
    # The pruned shapes ran (not only the plain query): the rare-first pair, and the middle level.
    assert sum(") AND (" in match and "NOT" not in match for match in shapes) >= 20
    assert sum("NOT (" in match for match in shapes) >= 4


def test_a_phrases_ceiling_bounds_what_it_adds_to_any_chunk(tmp_path: Path) -> None:
    """A chunk with a single word of the query scores below that word's ceiling."""
    settings, embedder = _index(tmp_path)
    with open_index(settings, embedder=embedder) as index:
        store = index.store
        total, counts = store.term_document_counts([store.stem(word)[0] for word in COMMON + MIDDLE])
        for word in COMMON + MIDDLE:
            best = store.keyword_candidates([word], 1)[0][1]
            ceiling = keyword.phrase_ceiling(total, counts[store.stem(word)[0]])
            assert best < ceiling
            assert best > 0.5 * ceiling  # the bound is not vacuous on these short chunks


def test_the_chunk_count_follows_changes_from_any_connection(tmp_path: Path) -> None:
    settings, embedder = _index(tmp_path)
    with open_index(settings, embedder=embedder) as reader:
        before = reader.store.chunk_count()
        idf_before = stem_idfs(reader.store, ["garden"])
        with open_index(settings, write=True, embedder=embedder) as writer:
            sections = [f"## New {i}\n\nfresh words {i}" for i in range(30)]
            write(settings.root, "notes/new.md", "\n\n".join(sections) + "\n")
            writer.sync()
            assert writer.store.chunk_count() == before + 30
        assert reader.store.chunk_count() == before + 30  # another connection committed: counted again
        assert stem_idfs(reader.store, ["garden"])["garden"] > idf_before["garden"]


def test_the_chunk_count_follows_a_rebuild_in_the_same_process(tmp_path: Path) -> None:
    """A rebuild copies the new database into this connection with SQLite's backup API,
    which changes neither data_version nor the change count: the count must be dropped
    (review: the stale count made a search's IDFs negative logs, a ValueError)."""
    root = tmp_path / "memory"
    for f in range(3):
        write(root, f"notes/f{f}.md", "\n\n".join(f"## h{p}\n\nalpha beta {p}" for p in range(4)) + "\n")
    with open_index(make_settings(root), write=True, embedder=RecordingEmbedder()) as index:
        index.sync()
        before = index.store.chunk_count()
        for f in range(3, 40):
            write(root, f"notes/f{f}.md", "\n\n".join(f"## h{p}\n\ngamma delta {p}" for p in range(4)) + "\n")
        index.rebuild()
        real = index.store.connection.execute("SELECT count(*) FROM chunks").fetchone()[0]
        assert real > before and index.store.chunk_count() == real
        assert index.search("gamma delta alpha", mode="hybrid")


def test_a_hybrid_search_counts_each_term_once_and_counts_follow_changes(tmp_path: Path) -> None:
    """Chunk counts per term are read from fts5vocab once per state of the index (a hybrid
    search asked three times: IDFs, keyword pruning, confidence); a commit from another
    connection, or a rebuild copied in, makes them counted again."""
    settings, embedder = _index(tmp_path)
    with open_index(settings, embedder=embedder) as reader:
        store = reader.store
        reads: list[str] = []
        store.connection.exec_trace = lambda cursor, sql, bindings: reads.append(sql) or True
        reader.search("garden violin zqnewword", mode="hybrid")
        assert sum("chunks_vocab" in sql for sql in reads) == 1
        reads.clear()
        reader.search("garden violin", mode="hybrid")
        assert sum("chunks_vocab" in sql for sql in reads) == 0  # the index has not changed
        store.connection.exec_trace = None
        _, before = store.term_document_counts(["garden", "zqnewword"])
        assert "zqnewword" not in before
        with open_index(settings, write=True, embedder=embedder) as writer:
            write(settings.root, "notes/new.md", "\n\n".join(f"## New {i}\n\nzqnewword garden {i}" for i in range(5)) + "\n")
            writer.sync()
        _, after = store.term_document_counts(["garden", "zqnewword"])
        assert after == {"garden": before["garden"] + 5, "zqnewword": 5}
    with open_index(settings, write=True, embedder=embedder) as index:
        assert index.store.term_document_counts(["zqnewword"])[1] == {"zqnewword": 5}
        (settings.root / "notes/new.md").unlink()
        index.rebuild()  # copied in with the backup API: data_version does not change
        assert index.store.term_document_counts(["zqnewword"])[1] == {}


def _segments(store) -> int:
    return store.connection.execute("SELECT count(DISTINCT segid) FROM chunks_fts_idx").fetchone()[0]


def test_a_sync_of_many_files_leaves_one_full_text_segment(tmp_path: Path) -> None:
    """Each file's transaction adds an FTS5 segment; after a sync of many files they are
    merged into one (keyword queries read a word's postings from one place). Few files:
    left to FTS5's own merging. The keyword results are the same either way."""
    settings, embedder = _index(tmp_path)  # 24 files: below sqlite_store.MERGE_FROM_FILES
    with open_index(settings, write=True, embedder=embedder) as index:
        assert _segments(index.store) > 1
        before = [index.store.keyword_candidates([word], 200) for word in COMMON + MIDDLE]
        for f in range(sqlite_store.MERGE_FROM_FILES):
            write(settings.root, f"more/m{f}.md", f"## More {f}\n\ngarden violin {f}\n")
        index.sync()
        assert _segments(index.store) == 1
        for f in range(sqlite_store.MERGE_FROM_FILES):
            (settings.root / f"more/m{f}.md").unlink()
        index.sync()
        assert [index.store.keyword_candidates([word], 200) for word in COMMON + MIDDLE] == before


def test_touched_files_whose_content_is_unchanged_merge_nothing(tmp_path: Path) -> None:
    """A sync that reads many files but writes none (a checkout or a restore that only moved
    their times) leaves the segments alone (review: every touched file counted, and the whole
    full-text index was rewritten under the write lock)."""
    settings, embedder = _index(tmp_path)
    for f in range(sqlite_store.MERGE_FROM_FILES):
        write(settings.root, f"more/m{f}.md", f"## More {f}\n\ngarden violin {f}\n")
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
        write(settings.root, "more/extra.md", "## Extra\n\none more segment\n")
        index.sync()
        segments = _segments(index.store)
        assert segments > 1
        for f in range(sqlite_store.MERGE_FROM_FILES):
            path = settings.root / f"more/m{f}.md"
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
        report = index.sync()
        assert report.reindexed == 0 and report.unchanged_hash >= sqlite_store.MERGE_FROM_FILES
        assert _segments(index.store) == segments


def test_a_sync_that_only_deletes_many_files_merges_the_segments(tmp_path: Path) -> None:
    """Each deleted file's transaction adds a segment of delete markers: a sync that removes
    many files merges them too (review: removals were not counted, so it never did)."""
    settings, embedder = _index(tmp_path)
    for f in range(sqlite_store.MERGE_FROM_FILES):
        write(settings.root, f"more/m{f}.md", f"## More {f}\n\ngarden violin {f}\n")
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
        assert _segments(index.store) == 1
        for f in range(sqlite_store.MERGE_FROM_FILES):
            (settings.root / f"more/m{f}.md").unlink()
        report = index.sync()
        assert report.removed == sqlite_store.MERGE_FROM_FILES and report.reindexed == 0
        assert _segments(index.store) == 1
