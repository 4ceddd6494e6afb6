"""The SQLite keyword query scores common words in NumPy from FTS5's data and sums its
phrases' bm25 (store/sqlite/phrases.py): its top k are FTS5's plain OR query's, bit for bit
and in the same order, on a first search and a warm one, after changes, with few kept and
with ids far apart; a build whose arithmetic differs falls back to FTS5 alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RecordingEmbedder, write
from test_keyword_maxscore import _index, _queries

import indexer.store.sqlite.phrases as phrases
from indexer import open_index
from indexer.store.records import BM25_WEIGHTS
from indexer.store.sqlite.keyword import either
from indexer.store.tokenizer import query_pieces


def _plain(store, terms: list[str], limit: int) -> list[tuple[int, float]]:
    """FTS5's own OR query of the terms: the reference."""
    pieces = [piece for term in terms for piece in query_pieces(term)]
    weights = ", ".join(str(w) for w in BM25_WEIGHTS)
    rows = store.connection.execute(
        f"SELECT rowid, bm25(chunks_fts, {weights}) AS r FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY r LIMIT ?",
        (either(pieces, range(len(pieces))), limit),
    )
    return [(chunk_id, -rank) for chunk_id, rank in rows]


def _keep_some(monkeypatch) -> None:
    """A small index: the words in a fifth of the chunks or more are common."""
    monkeypatch.setattr(phrases, "COMMON_FROM_ROWS", 1)
    monkeypatch.setattr(phrases, "COMMON_SHARE", 0.2)


def _used(monkeypatch) -> list[int]:
    """How many searches the summed path answered (not FTS5's own query)."""
    answered: list[int] = []
    real = phrases.ranked

    def counting(parts, limit, total):
        answered.append(len(parts))
        return real(parts, limit, total)

    monkeypatch.setattr(phrases, "ranked", counting)
    return answered


@pytest.mark.parametrize("limit", [5, 12, 400])
def test_the_summed_phrases_give_the_plain_querys_top_k_bit_for_bit(tmp_path: Path, monkeypatch, limit: int) -> None:
    settings, embedder = _index(tmp_path)
    _keep_some(monkeypatch)
    answered = _used(monkeypatch)
    with open_index(settings, embedder=embedder) as index:
        store = index.store
        for _ in range(2):  # the first time scores the common words, the second uses them kept
            for terms in _queries():
                assert store.keyword_candidates(terms, limit) == _plain(store, terms, limit)
        assert store._phrases._entries > 0 and store._phrases.usable
    assert len(answered) >= 120  # most queries have a common word


def test_kept_scores_follow_a_change_from_another_connection(tmp_path: Path, monkeypatch) -> None:
    settings, embedder = _index(tmp_path)
    _keep_some(monkeypatch)
    answered = _used(monkeypatch)
    with open_index(settings, embedder=embedder) as reader:
        store = reader.store
        queries = _queries()[:20]
        before = [store.keyword_candidates(terms, 12) for terms in queries]
        with open_index(settings, write=True, embedder=embedder) as writer:  # every IDF and avgdl change
            sections = [f"## Added {i}\n\ngarden kitchen coffee morning walk {i}" for i in range(40)]
            write(settings.root, "notes/added.md", "\n\n".join(sections) + "\n")
            writer.sync()
        after = [store.keyword_candidates(terms, 12) for terms in queries]
        assert after == [_plain(store, terms, 12) for terms in queries]
        assert after != before
    assert answered


def test_few_kept_entries_and_ids_far_apart_give_the_same_top_k(tmp_path: Path, monkeypatch) -> None:
    settings, embedder = _index(tmp_path)
    _keep_some(monkeypatch)
    monkeypatch.setattr(phrases, "KEEP_ENTRIES", 150)  # about two common words' chunks
    monkeypatch.setattr(phrases, "DENSE_SPAN", 0)  # sum over the union of ids
    answered = _used(monkeypatch)
    with open_index(settings, embedder=embedder) as index:
        store = index.store
        for terms in _queries():
            assert store.keyword_candidates(terms, 12) == _plain(store, terms, 12)
            assert store._phrases._entries <= 150
        assert store._phrases._kept  # some were kept, the oldest dropped
    assert len(answered) >= 60


def test_equal_scores_rank_by_chunk_id_across_the_kth(tmp_path: Path, monkeypatch) -> None:
    """Chunks with the same text tie: the k-th place is cut where FTS5 cuts it."""
    root = tmp_path / "memory"
    for f in range(6):
        write(root, f"notes/same{f}.md", "\n\n".join(f"## Same\n\nplum pear {'fig ' * (p % 3)}" for p in range(10)) + "\n")
    settings = __import__("indexer").make_settings(root)
    embedder = RecordingEmbedder()
    with open_index(settings, write=True, embedder=embedder) as index:
        index.sync()
    _keep_some(monkeypatch)
    answered = _used(monkeypatch)
    with open_index(settings, embedder=embedder) as index:
        index.store.keyword_candidates(["plum"], 1)  # the first search of this state: FTS5's own query
        assert not answered
        for limit in (1, 7, 25, 59, 100):
            for terms in (["plum"], ["pear", "fig"], ["fig", "plum", "pear"]):
                assert index.store.keyword_candidates(terms, limit) == _plain(index.store, terms, limit)
    assert len(answered) == 15


def test_the_first_search_of_each_state_runs_fts5s_own_query(tmp_path: Path, monkeypatch) -> None:
    """Review: reading every chunk's length and scoring a common word cost a one-shot search
    (and a warm one after each write) 2-3 times FTS5's query: only a state's second search
    and later ones read them, and they give the same top k."""
    settings, embedder = _index(tmp_path)
    _keep_some(monkeypatch)
    answered = _used(monkeypatch)
    terms = _queries()[0]
    with open_index(settings, embedder=embedder) as index:
        store = index.store
        first = store.keyword_candidates(terms, 12)
        assert not answered and store._phrases._lengths is None  # nothing of FTS5's data read
        assert store.keyword_candidates(terms, 12) == first == _plain(store, terms, 12)
        assert answered and store._phrases._lengths is not None


def test_a_failed_read_of_fts5s_data_waits_for_the_next_state_only(tmp_path: Path, monkeypatch) -> None:
    """Review: any SQLite error (busy, a read-only temp schema) turned the NumPy scoring off
    for the connection's life; now FTS5 scores until the index changes, then it is tried again."""
    import apsw

    settings, embedder = _index(tmp_path)
    _keep_some(monkeypatch)
    answered = _used(monkeypatch)
    real, calls = phrases.PhraseScores._score, []

    def busy_once(self, term):
        calls.append(term)
        if len(calls) == 1:
            raise apsw.BusyError("database is locked")
        return real(self, term)

    monkeypatch.setattr(phrases.PhraseScores, "_score", busy_once)
    terms = _queries()[0]
    with open_index(settings, embedder=embedder) as index:
        store = index.store
        for _ in range(3):  # the state's first search, the one that fails, one that does not retry
            assert store.keyword_candidates(terms, 12) == _plain(store, terms, 12)
        assert len(calls) == 1 and not answered and store._phrases.usable
        with open_index(settings, write=True, embedder=embedder) as writer:
            write(settings.root, "notes/new.md", "# New\n\nplum\n")
            writer.sync()
        for _ in range(2):  # a new state: FTS5 first, then the NumPy scoring again
            assert store.keyword_candidates(terms, 12) == _plain(store, terms, 12)
        assert answered


def test_numpys_bm25_that_differs_from_fts5s_turns_itself_off(tmp_path: Path, monkeypatch) -> None:
    """Each word's first scores are checked against FTS5's: another arithmetic (here another
    k1) is caught, and FTS5 scores every phrase from then on: the same top k."""
    settings, embedder = _index(tmp_path)
    _keep_some(monkeypatch)
    monkeypatch.setattr(phrases, "BM25_K1", 1.2000001)
    answered = _used(monkeypatch)
    with open_index(settings, embedder=embedder) as index:
        store = index.store
        for terms in _queries()[:20]:
            assert store.keyword_candidates(terms, 12) == _plain(store, terms, 12)
        assert not store._phrases.usable and not store._phrases._kept
    assert not answered


def test_varints_read_as_sqlite_writes_them() -> None:
    assert phrases.varints(bytes.fromhex("1F0401")).tolist() == [31, 4, 1]
    assert phrases.varints(bytes.fromhex("8681128100")).tolist() == [98450, 128]
    assert phrases.wide_varints(bytes.fromhex("8681128100008100")) == [98450, 128, 0, 128]
    with pytest.raises(ValueError):
        phrases.varints(bytes.fromhex("0181"))  # the last one never ends
