"""Keyword search in Chinese, Japanese and Korean, and mixed-language queries (issue 19).

The notes are written by the tests; each case runs on both engines (``engine_kind``):
SQLite's chunks_fts and PostgreSQL's client-built postings share ``store/tokenizer.py``.
For each language: a one-character and a two-character query, a word inside an unspaced
sentence, a word with a particle attached, and a mixed query. Then hostile text
(combining marks, fullwidth forms, emoji sequences, a 1 MB line with no spaces, a mix
of scripts in one token), a pasted page as a query, the one-time rebuild of an index made
with the old tokenizer, a model folder's dimensions and window, and bm25 parity between
the engines on CJK queries.
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from pathlib import Path
from typing import Any

import apsw
import pytest
from conftest import EngineKind, RecordingEmbedder, write

from indexer import make_settings, open_index
from indexer.config.settings import Settings
from indexer.indexing import check as check_module
from indexer.indexing import sync as sync_module
from indexer.indexing.check import DRIFT, check_index
from indexer.indexing.sync import configuration_change, keyword_index_only
from indexer.retrieval.query import SNIPPET_CHARS, snippet
from indexer.store import tokenizer
from indexer.store.postgres import checks as pg_checks
from indexer.store.sqlite import store as sqlite_store
from indexer.store.tokenizer import FTS_TOKENIZE, fts_text, query_pieces, stems

NOTES = {
    "zh/dentist.md": "# 牙医\n\n我的牙医预约在十二月九日下午三点，地点是市中心的诊所。\n",
    "zh/moving.md": "# 搬家\n\n下个月搬家，已经联系了搬家公司，他们周六早上八点到。\n",
    "zh/release.md": "# 发布\n\n周五把新版本部署到Kubernetes集群，先在测试环境验证。\n",
    "zh/tea.md": "# 礼物\n\n朋友送了一盒龙井茶，周末泡给爸妈喝。\n",
    "ja/dentist.md": "# 予定\n\n来週の火曜日に歯医者の予約があります。午後二時から。\n",
    "ja/trip.md": "# 出張\n\n京都への出張は新幹線で行く。ホテルは駅の近く。\n",
    "ko/booking.md": "# 일정\n\n치과 예약이 다음 주 수요일 오후 두 시에 있어요.\n",
    "ko/workshop.md": "# 회사\n\n워크숍은 서울 본사에서 금요일에 열립니다.\n",
    "mixed/appointment.md": "# Health\n\n歯医者 appointment moved to Thursday; bring the 保険証.\n",
    "en/cluster.md": "# Ops\n\nThe Kubernetes cluster upgrade is planned for next week.\n",
}

# (query, the file that must come first). Per language: one character, two characters,
# a word inside an unspaced sentence, a word with a particle attached, a mixed query.
CASES = [
    ("茶", "zh/tea.md"),
    ("牙医", "zh/dentist.md"),
    ("搬家公司", "zh/moving.md"),
    ("诊所", "zh/dentist.md"),  # 诊所。: punctuation attached
    ("Kubernetes 部署", "zh/release.md"),
    ("駅", "ja/trip.md"),
    ("出張", "ja/trip.md"),
    ("新幹線", "ja/trip.md"),
    ("予約", "ja/dentist.md"),  # 予約があります: particle が attached
    ("歯医者 appointment", "mixed/appointment.md"),
    ("숍", "ko/workshop.md"),
    ("서울", "ko/workshop.md"),
    ("예약", "ko/booking.md"),  # 예약이
    ("워크숍", "ko/workshop.md"),  # 워크숍은
    ("본사 Friday", "ko/workshop.md"),
    ("保険証", "mixed/appointment.md"),
    ("Thursday 保険証", "mixed/appointment.md"),
]


def model_id() -> str:
    return f"test/recording-{uuid.uuid4().hex[:10]}"  # PostgreSQL's cache is shared: a model of this test's own


def index(settings: Settings, embedder: RecordingEmbedder | None = None) -> Any:
    with open_index(settings, write=True, embedder=embedder or RecordingEmbedder(model_id=settings.model)) as idx:
        return idx.sync()


def paths(settings: Settings, query: str, mode: str = "keyword", limit: int = 10) -> list[str]:
    with open_index(settings, embedder=RecordingEmbedder(model_id=settings.model)) as idx:
        return [r.path for r in idx.search(query, mode=mode, limit=limit)]


@pytest.fixture
def cjk_settings(engine_kind: EngineKind, root: Path) -> Settings:
    for rel, text in NOTES.items():
        write(root, rel, text)
    settings = engine_kind.settings(root, model=model_id())
    index(settings)
    return settings


# -- the tokenizer itself ---------------------------------------------------------------------


def test_cjk_runs_are_indexed_as_characters_and_pairs_and_queried_by_pairs() -> None:
    assert stems("我的牙医") == ["我", "我的", "的", "的牙", "牙", "牙医", "医"]
    assert stems("牙医预约", query=True) == ["牙医", "医预", "预约"]
    assert stems("牙", query=True) == ["牙"]
    assert stems("Kubernetes部署", query=True) == ["kubernet", "部署"]
    assert query_pieces("워크숍은") == ["워크", "크숍", "숍은"]


def test_text_without_cjk_tokenizes_exactly_as_before() -> None:
    """English (and other spaced scripts) keep porter unicode61's terms: the English figures cannot move."""
    name, *options = FTS_TOKENIZE.split()
    plain = apsw.Connection(":memory:").fts5_tokenizer(name, options)
    for text in ["Running the deployments, e-mails & O'Brien's café: v2.3.1 (OPS-4821)", "Ünïcödé naïve façade"]:
        before = [t[2] for t in plain(text.encode(), apsw.FTS5_TOKENIZE_DOCUMENT, None)]
        assert stems(text) == before
        assert stems(text, query=True) == [t[2] for t in plain(text.encode(), apsw.FTS5_TOKENIZE_QUERY, None)]
    ascii_text = "plain ASCII stays the very same string"
    assert fts_text(ascii_text) is ascii_text


def test_an_index_of_the_old_tokenizer_is_rebuilt_once() -> None:
    """An index whose meta has no tokenizer (built before issue 19) gets rebuilt; only the keyword index changed."""
    embedder = RecordingEmbedder(model_id="test/recording")
    old = {"model": "test/recording", "dimensions": "16", "chunker_version": str(sync_module.CHUNKER_VERSION)}
    assert "tokenizer 1 -> 2" in (configuration_change(old, embedder) or "")
    assert keyword_index_only(old, embedder)
    assert not keyword_index_only({**old, "model": "other"}, embedder)
    assert configuration_change({**old, "tokenizer": tokenizer.TOKENIZER_VERSION}, embedder) is None


# -- both engines -----------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), CASES)
def test_cjk_and_mixed_queries_find_their_note_first(cjk_settings: Settings, query: str, expected: str) -> None:
    assert paths(cjk_settings, query)[:1] == [expected]
    assert expected in paths(cjk_settings, query, mode="hybrid", limit=3)


def test_a_cjk_query_is_never_all_or_nothing(cjk_settings: Settings) -> None:
    # 在哪天 ("on which day") is in no note: the note with the rest still comes first.
    assert paths(cjk_settings, "我的牙医预约在哪天")[:1] == ["zh/dentist.md"]
    # Each part of a mixed query finds the notes that have only that part.
    found = paths(cjk_settings, "Kubernetes 部署")
    assert found[0] == "zh/release.md" and "en/cluster.md" in found
    found = paths(cjk_settings, "歯医者 appointment")
    assert {"mixed/appointment.md", "ja/dentist.md"} <= set(found[:2])


def test_snippets_show_the_line_with_the_cjk_word(engine_kind: EngineKind, root: Path) -> None:
    write(root, "zh/long.md", "# 记录\n\n今天去超市买菜。\n\n晚上和朋友吃饭。\n下周二要去看牙医。\n")
    settings = engine_kind.settings(root, model=model_id())
    index(settings)
    with open_index(settings, embedder=RecordingEmbedder(model_id=settings.model)) as idx:
        results = idx.search("牙医", mode="keyword", limit=1)
    assert results[0].snippet == "下周二要去看牙医。"


# -- hostile text -----------------------------------------------------------------------------


def test_hostile_text_is_indexed_and_found(engine_kind: EngineKind, root: Path) -> None:
    random.seed(19)
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 200)]  # no 牙 or 医 among them
    filler = "".join(random.choice(alphabet) for _ in range(180_000))
    long_line = filler[:90_000] + "牙医" + filler[90_000:]  # ~540 KB of CJK
    long_line += "x" * (1_048_576 - len(long_line.encode()))  # to 1 MB, still no space
    write(root, "hostile/combining.md", "# Meeting\n\nMeeting at the cafe\u0301 with Zoe\u0308 about the re\u0301sume\u0301.\n")
    write(root, "hostile/fullwidth.md", "# Ｎｏｔｅｓ\n\nＡＰＩ ｋｅｙ rotated; ｶﾀｶﾅ and ２０２６年 plans.\n")
    write(root, "hostile/emoji.md", "# Party\n\n👨‍👩‍👧‍👦搬家派对🎉🇯🇵 with 👍🏽 and 🏳️‍🌈\n")
    write(root, "hostile/long.md", long_line + "\n")
    write(root, "hostile/scripts.md", "# Mix\n\nKubernetes部署v2版本αβγ와서울Москва\n")
    settings = engine_kind.settings(root, model=model_id())
    report = index(settings)
    assert report.reindexed == 5
    for query, expected in [
        ("café", "hostile/combining.md"), ("cafe", "hostile/combining.md"), ("resume", "hostile/combining.md"),
        ("zoë", "hostile/combining.md"),
        ("api", "hostile/fullwidth.md"), ("ＡＰＩ", "hostile/fullwidth.md"), ("カタカナ", "hostile/fullwidth.md"),
        ("notes", "hostile/fullwidth.md"), ("2026年", "hostile/fullwidth.md"),
        ("搬家", "hostile/emoji.md"), ("派对", "hostile/emoji.md"),
        ("牙医", "hostile/long.md"),
        ("kubernetes", "hostile/scripts.md"), ("部署", "hostile/scripts.md"), ("版本", "hostile/scripts.md"),
        ("서울", "hostile/scripts.md"), ("москва", "hostile/scripts.md"),
    ]:  # fmt: skip
        assert paths(settings, query)[:1] == [expected], query
    for query in ["👨‍👩‍👧‍👦", "🎉🇯🇵", "\u0301", "ｰ", "゛", "〇", "々", "「」", "牙" * 5000]:
        paths(settings, query)  # no error, whatever is found


# -- the one-time rebuild ---------------------------------------------------------------------


def test_an_index_built_with_the_old_tokenizer_is_rebuilt_once_from_the_cache(
    engine_kind: EngineKind, root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for rel, text in NOTES.items():
        write(root, rel, text)
    settings = engine_kind.settings(root, model=model_id())
    with monkeypatch.context() as old:  # the tokenizer before issue 19: no segmentation, version 1
        old.setattr(tokenizer, "fts_text", lambda text: text)
        old.setattr(tokenizer, "query_pieces", lambda term: [term])
        old.setattr(sync_module, "TOKENIZER_VERSION", "1")
        for module in (sqlite_store, pg_checks, check_module):  # the modules that import it by name
            old.setattr(module, "fts_text", lambda text: text)
        old.setattr(sqlite_store, "query_pieces", lambda term: [term])
        index(settings)
        assert paths(settings, "诊所") == []  # the old index cannot find a word inside a sentence
    with open_index(settings, embedder=RecordingEmbedder(model_id=settings.model)) as idx:
        found = check_index(settings, idx.engine, model_id=settings.model)
    assert found.exit_code == DRIFT, found.as_dict()  # drift until the next index, never "corrupt"
    assert any("tokenizer 1" in message for _, message in found.problems), found.as_dict()
    embedder = RecordingEmbedder(model_id=settings.model)
    with caplog.at_level("WARNING"):
        report = index(settings, embedder)
    lines = [r.getMessage() for r in caplog.records if "tokenizer" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("rebuilding the index once from the embedding cache: keyword search")
    assert embedder.embedded == [] and report.full_reembed_reason is None  # every vector came from the cache
    assert paths(settings, "诊所")[:1] == ["zh/dentist.md"]
    caplog.clear()
    with caplog.at_level("WARNING"):
        index(settings)
    assert not [r for r in caplog.records if "tokenizer" in r.getMessage()]  # once


# -- a multilingual model from a local folder ----------------------------------------------------


def test_a_local_model_folder_gives_its_own_dimensions_and_window(tmp_path: Path) -> None:
    """``--model PATH``: a multilingual sentence-transformers folder (e.g. 768 dimensions and a
    128-token window) is described by its files, without loading weights or downloading. No
    multilingual model is installed here, so the installed MiniLM's files are rewritten to say so."""
    from indexer.config.settings import DEFAULT_MODEL
    from indexer.embedding.lazy import LazyEmbedder
    from indexer.embedding.resolve import resolve_model

    folder = tmp_path / "paraphrase-multilingual-mpnet-base-v2"
    shutil.copytree(resolve_model(DEFAULT_MODEL)[1], folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    edit_json(folder / "sentence_bert_config.json", max_seq_length=128)
    edit_json(folder / "1_Pooling" / "config.json", word_embedding_dimension=768)
    edit_json(folder / "config.json", hidden_size=768)
    embedder = LazyEmbedder(str(folder))
    assert (embedder.dimensions, embedder.max_tokens) == (768, 126)  # 128 less [CLS] and [SEP]
    assert embedder.model_id != DEFAULT_MODEL and embedder.loaded == []


def edit_json(path: Path, **values: Any) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), **values}), encoding="utf-8")


def test_a_pasted_page_of_chinese_is_a_bounded_query(engine_kind: EngineKind, root: Path) -> None:
    write(root, "zh/dentist.md", NOTES["zh/dentist.md"])
    settings = engine_kind.settings(root, model=model_id())
    index(settings)
    page = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(20_000))  # 19,999 distinct pairs
    assert len(query_pieces(page)) == tokenizer.MAX_QUERY_PIECES
    assert paths(settings, "牙医" + page)[:1] == ["zh/dentist.md"]  # the first pieces are looked up


@pytest.mark.postgres
def test_cjk_keyword_scores_are_the_same_on_both_engines(root: Path, tmp_path: Path, pg_url: str) -> None:
    """Parity: PostgreSQL's client-built postings give FTS5's bm25 for CJK and mixed queries."""
    for rel, text in NOTES.items():
        write(root, rel, text)
    model = model_id()
    lite = make_settings(root, tmp_path / "lite.db", model=model)
    server = make_settings(root, pg_url, namespace=f"cjk-{uuid.uuid4().hex[:12]}", model=model)
    index(lite)
    index(server)
    for query in [query for query, _ in CASES] + ["牙医 牙医预约", "我的牙医预约在哪天", "ＡＰＩ 워크숍은", "医"]:
        a, b = (search_rows(settings, query) for settings in (lite, server))
        assert [(r.path, r.start_line) for r in a] == [(r.path, r.start_line) for r in b], query
        assert [r.score for r in a] == pytest.approx([r.score for r in b], rel=1e-5), query


def search_rows(settings: Settings, query: str) -> list[Any]:
    with open_index(settings, embedder=RecordingEmbedder(model_id=settings.model)) as idx:
        return idx.search(query, mode="keyword", budget_lines=None, limit=20)


def test_a_snippet_of_a_long_unspaced_cjk_line_shows_the_match() -> None:
    """A long CJK line has no spaces: the snippet started at the line's start (review of
    issue 19: ``rfind(" ")`` returned -1), so a match in its middle was cut off."""
    filler = "今天天气很好我们去公园散步" * 40  # 520 characters, no space
    line = filler + "下周二要去看牙医" + filler
    shown = snippet(f"# 记录\n\n{line}\n", ["牙医"])
    assert "牙医" in shown and shown.startswith("…") and shown.endswith("…")
    assert len(shown) <= SNIPPET_CHARS
    spaced = "Note: " + line  # one space, far before the match: the same
    assert "牙医" in snippet(spaced, ["牙医"])
    english = " ".join(f"word{n}" for n in range(100)) + " the dentist is on tuesday " + "more words " * 40
    assert snippet(english, ["dentist"]).startswith("…word")  # spaced text still starts at a word
