"""Keyword search over Chinese, Japanese and Korean notes: the candidate tokenizers side by side.

    python bench/bench_cjk.py [--english-files 300] [--filler 1500] [--repeat 5] [--rounds 3] [--json OUT]

One folder of chunks, built here (nothing is downloaded): labelled Chinese, Japanese,
Korean and mixed notes (``NOTES``), deterministic CJK filler chunks around them
(``--filler``, seeded), and English chunks from bench/generate.py (``--english-files``).
Each candidate indexes the same chunks into its own SQLite file and answers the same
questions (``CASES``: one and two characters, a word inside an unspaced sentence, a word
with a Korean particle attached, mixed-script queries, and English controls):

- ``porter``: memdex before issue 19, ``porter unicode61`` alone (terms ORed, each a phrase);
- ``trigram``: a second FTS5 index with the trigram tokenizer for query words with CJK
  (words of one or two characters cannot match it);
- ``unigram``: each CJK character a token, a query's CJK run a phrase of characters (qmd);
- ``bigram``: CJK runs as overlapping pairs only; a query's pairs ORed;
- ``uni+bigram``: memdex's ``tokenizer.fts_text`` (characters and pairs, pre-segmented
  text) and ``query_pieces`` (a query's pairs ORed, a lone character itself);
- ``uni+bigram (apsw tokenizer)``: the same terms from a Python FTS5 tokenizer registered
  with APSW instead of pre-segmented text (the index holds the original text);
- ``jieba``: the jieba dictionary segmenter (``cut_for_search`` for notes, ``cut`` for
  queries; Chinese-trained, applied to every CJK run), when it is installed.

Reported per candidate: hit@5 and MRR over the CJK cases (and per case kind), the English
controls' hit@5, index size on the CJK and on the English chunks, chunks indexed per
second (tokenizing included) on each, and keyword query latency p50/p95 over every case.
Speed is measured one candidate after another in one process: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import apsw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer.retrieval.query import query_terms  # noqa: E402
from indexer.store.tokenizer import CJK_RUN, FTS_TOKENIZE, fts_text, query_pieces  # noqa: E402

# The labelled notes: path -> text (one chunk each).
NOTES = {
    "zh/dentist.md": "# 牙医\n我的牙医预约在十二月九日下午三点，地点是市中心的诊所。",
    "zh/moving.md": "# 搬家\n下个月搬家，已经联系了搬家公司，他们周六早上八点到。",
    "zh/kubernetes.md": "# 发布\n周五把新版本部署到Kubernetes集群，先在测试环境验证。",
    "zh/cat.md": "# 宠物\n猫咪的疫苗明天要打，记得带上宠物医院的卡。",
    "zh/tea.md": "# 礼物\n朋友送了一盒龙井茶，周末泡给爸妈喝。",
    "zh/budget.md": "# 财务\n这个季度的预算超支了，需要和财务部门开会讨论。",
    "ja/dentist.md": "# 予定\n来週の火曜日に歯医者の予約があります。午後二時から。",
    "ja/trip.md": "# 出張\n京都への出張は新幹線で行く。ホテルは駅の近く。",
    "ja/deploy.md": "# 作業\n本番環境へのデプロイは金曜日の夜に実施する予定。",
    "ja/birthday.md": "# 家族\n母の誕生日プレゼントに花束を注文した。",
    "ja/meeting.md": "# チーム\nチームの定例会議は毎週月曜日の十時から。",
    "ko/booking.md": "# 일정\n치과 예약이 다음 주 수요일 오후 두 시에 있어요.",
    "ko/workshop.md": "# 회사\n워크숍은 서울 본사에서 금요일에 열립니다.",
    "ko/moving.md": "# 이사\n이사는 다음 달 초에 하기로 했고 이삿짐 센터에 연락했다.",
    "ko/gym.md": "# 운동\n헬스장 회원권을 연장해야 한다. 월요일까지.",
    "ko/server.md": "# 서버\n서버 배포는 화요일 밤에 진행합니다. Kubernetes 클러스터를 사용해요.",
    "mixed/standup.md": "# Standup\nStandup notes: 明天的deploy要延期, because QA还没测完.",
    "mixed/appointment.md": "# Health\n歯医者 appointment moved to Thursday 3pm; bring the 保険証.",
}

# (kind, query, relevant paths)
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    ("1 char", "牙", ("zh/dentist.md",)),
    ("1 char", "猫", ("zh/cat.md",)),
    ("1 char", "茶", ("zh/tea.md",)),
    ("1 char", "花", ("ja/birthday.md",)),
    ("1 char", "숍", ("ko/workshop.md",)),
    ("2 chars", "牙医", ("zh/dentist.md",)),
    ("2 chars", "龙井", ("zh/tea.md",)),
    ("2 chars", "预算", ("zh/budget.md",)),
    ("2 chars", "出張", ("ja/trip.md",)),
    ("2 chars", "会議", ("ja/meeting.md",)),
    ("2 chars", "서울", ("ko/workshop.md",)),
    ("2 chars", "치과", ("ko/booking.md",)),
    ("in sentence", "搬家公司", ("zh/moving.md",)),
    ("in sentence", "疫苗", ("zh/cat.md",)),
    ("in sentence", "诊所", ("zh/dentist.md",)),
    ("in sentence", "歯医者", ("ja/dentist.md", "mixed/appointment.md")),
    ("in sentence", "新幹線", ("ja/trip.md",)),
    ("in sentence", "デプロイ", ("ja/deploy.md",)),
    ("in sentence", "本番環境", ("ja/deploy.md",)),
    ("in sentence", "誕生日", ("ja/birthday.md",)),
    ("in sentence", "我的牙医预约在哪天", ("zh/dentist.md",)),
    ("particle", "예약", ("ko/booking.md",)),
    ("particle", "워크숍", ("ko/workshop.md",)),
    ("particle", "본사", ("ko/workshop.md",)),
    ("particle", "이사", ("ko/moving.md",)),
    ("particle", "배포", ("ko/server.md",)),
    ("particle", "予約", ("ja/dentist.md",)),
    ("particle", "회원권", ("ko/gym.md",)),
    ("mixed", "Kubernetes 部署", ("zh/kubernetes.md",)),
    ("mixed", "Kubernetes 배포", ("ko/server.md",)),
    ("mixed", "歯医者 appointment", ("mixed/appointment.md", "ja/dentist.md")),
    ("mixed", "deploy 延期", ("mixed/standup.md",)),
    ("mixed", "财务 meeting", ("zh/budget.md",)),
    ("mixed", "QA 测完", ("mixed/standup.md",)),
    ("mixed", "保険証 Thursday", ("mixed/appointment.md",)),
    ("english", "appointment Thursday", ("mixed/appointment.md",)),
    ("english", "standup notes QA", ("mixed/standup.md",)),
]

# Filler vocabulary: everyday words that share characters with the labelled notes.
ZH_WORDS = """今天 明天 昨天 工作 会议 公司 项目 客户 朋友 家人 周末 下午 上午 晚上 医院 学校 超市 地铁 天气 电影
    报告 邮件 电话 计划 时间 问题 讨论 准备 完成 检查 更新 系统 测试 文档 团队 经理 同事 生日 礼物 旅行 机场
    酒店 餐厅 咖啡 早餐 晚饭 运动 跑步 健身 买菜 做饭 打扫 洗衣 孩子 老师 作业 考试 银行 账单 保险 合同""".split()
JA_WORDS = """今日 明日 昨日 仕事 会社 会議室 資料 メール 電話 予定 時間 問題 確認 準備 完了 更新 テスト 担当 部長
    同僚 友達 家族 週末 午前 午後 夕方 病院 学校 スーパー 電車 天気 映画 旅行 空港 レストラン コーヒー 朝ご飯
    晩ご飯 運動 散歩 買い物 料理 掃除 洗濯 子供 先生 宿題 銀行 請求書 契約 報告""".split()
JA_PARTICLES = "は が を に で と の へ も から まで".split()
KO_WORDS = """오늘 내일 어제 회의 회사 프로젝트 고객 친구 가족 주말 오전 오후 저녁 병원 학교 마트 지하철 날씨 영화
    보고서 메일 전화 계획 시간 문제 논의 준비 완료 확인 업데이트 시스템 테스트 문서 팀장 동료 생일 선물 여행
    공항 호텔 식당 커피 아침 운동 산책 장보기 요리 청소 빨래 아이 선생님 숙제 은행 청구서 계약""".split()
KO_PARTICLES = "은 는 이 가 을 를 에 에서 와 과 도 까지".split()


def filler(count: int, seed: int = 19) -> list[str]:
    """``count`` CJK chunks of 2-5 sentences: Chinese and Japanese unspaced, Korean with particles."""
    rng = random.Random(seed)
    chunks = []
    for i in range(count):
        lang = ("zh", "ja", "ko")[i % 3]
        sentences = []
        for _ in range(rng.randint(2, 5)):
            words = [rng.choice({"zh": ZH_WORDS, "ja": JA_WORDS, "ko": KO_WORDS}[lang]) for _ in range(rng.randint(4, 10))]
            if lang == "zh":
                sentences.append("".join(words) + "。")
            elif lang == "ja":
                sentences.append("".join(w + rng.choice(JA_PARTICLES) for w in words) + "。")
            else:
                sentences.append(" ".join(w + rng.choice(KO_PARTICLES) for w in words) + ".")
        chunks.append("\n".join(sentences))
    return chunks


def english_chunks(files: int) -> list[str]:
    """Blank-line separated blocks of a bench/generate.py folder (seed 0)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from generate import generate_memory

    with tempfile.TemporaryDirectory() as tmp:
        generate_memory(Path(tmp), files=files, seed=0)
        return [
            block.strip()
            for path in sorted(Path(tmp).rglob("*.md"))
            for block in path.read_text(encoding="utf-8").split("\n\n")
            if block.strip()
        ]


# -- candidates ------------------------------------------------------------------------
class Candidate:
    """One way to index and query: ``tables`` (CREATE statements), ``rows`` (text -> the
    column values inserted), ``match`` (a query's MATCH strings per table)."""

    name = ""

    def setup(self, connection: apsw.Connection) -> None:
        connection.execute(f"CREATE VIRTUAL TABLE fts USING fts5(text, tokenize='{FTS_TOKENIZE}')")

    def insert(self, connection: apsw.Connection, rowid: int, text: str) -> None:
        connection.execute("INSERT INTO fts(rowid, text) VALUES (?, ?)", (rowid, self.document(text)))

    def document(self, text: str) -> str:
        return text

    def pieces(self, term: str) -> list[str]:
        return [term]

    def search(self, connection: apsw.Connection, query: str, limit: int) -> list[int]:
        pieces = [p for term in query_terms(query) for p in self.pieces(term)]  # as memdex's match_expression
        if not pieces:
            return []
        match = " OR ".join('"' + p.replace('"', '""') + '"' for p in pieces)
        sql = "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts) LIMIT ?"
        return [row[0] for row in connection.execute(sql, (match, limit))]


class Porter(Candidate):
    name = "porter (before)"


class UniBigram(Candidate):
    name = "uni+bigram (chosen)"

    def document(self, text: str) -> str:
        return fts_text(text)

    def pieces(self, term: str) -> list[str]:
        return query_pieces(term)


def _runs(text: str, each: Callable[[str], str]) -> str:
    return CJK_RUN.sub(lambda m: " " + each(m.group()) + " ", text)


class Unigram(Candidate):
    name = "unigram (per character)"

    def document(self, text: str) -> str:
        return _runs(text, " ".join)

    def pieces(self, term: str) -> list[str]:
        return [_runs(term, " ".join)]  # one phrase: the run's characters in order


def _pairs(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


class Bigram(Candidate):
    name = "bigram (pairs only)"

    def document(self, text: str) -> str:
        return _runs(text, lambda run: " ".join(_pairs(run)))

    def pieces(self, term: str) -> list[str]:
        return query_pieces(term)


class Trigram(Candidate):
    name = "trigram second index"

    def setup(self, connection: apsw.Connection) -> None:
        super().setup(connection)
        connection.execute("CREATE VIRTUAL TABLE tri USING fts5(text, tokenize='trigram')")

    def insert(self, connection: apsw.Connection, rowid: int, text: str) -> None:
        super().insert(connection, rowid, text)
        connection.execute("INSERT INTO tri(rowid, text) VALUES (?, ?)", (rowid, text))

    def search(self, connection: apsw.Connection, query: str, limit: int) -> list[int]:
        terms = query_terms(query)
        plain = [t for t in terms if not CJK_RUN.search(t)]
        cjk = [t for t in terms if CJK_RUN.search(t)]
        scores: dict[int, float] = {}
        for table, words in (("fts", plain), ("tri", cjk)):
            if words:
                match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
                sql = f"SELECT rowid, bm25({table}) FROM {table} WHERE {table} MATCH ? ORDER BY 2 LIMIT ?"
                for rowid, rank in connection.execute(sql, (match, limit)):
                    scores[rowid] = scores.get(rowid, 0.0) - rank
        return sorted(scores, key=lambda r: -scores[r])[:limit]


class ApswTokenizer(UniBigram):
    """memdex's terms made by a Python tokenizer inside FTS5 (the text stored as it is)."""

    name = "uni+bigram (apsw tokenizer)"

    def setup(self, connection: apsw.Connection) -> None:
        self.register(connection)
        connection.execute("CREATE VIRTUAL TABLE fts USING fts5(text, tokenize='memdex_cjk')")

    @staticmethod
    def register(connection: apsw.Connection) -> None:
        """Every connection to this index must register the tokenizer (readers too)."""
        name, *options = FTS_TOKENIZE.split()
        porter = connection.fts5_tokenizer(name, options)

        def tokenize(utf8: bytes, flags: int, locale: str | None) -> Sequence[tuple]:
            text = utf8.decode("utf-8")
            if text.isascii():
                return porter(utf8, flags, None)
            segmented = " ".join(query_pieces(text)) if flags & apsw.FTS5_TOKENIZE_QUERY else fts_text(text)
            return [(0, 0, token[2]) for token in porter(segmented.encode("utf-8"), flags, None)]

        connection.register_fts5_tokenizer("memdex_cjk", lambda con, args: tokenize)

    def document(self, text: str) -> str:
        return text


class Jieba(Candidate):
    name = "jieba (dictionary)"

    def __init__(self) -> None:
        import jieba

        jieba.setLogLevel(60)
        jieba.initialize()
        self.jieba = jieba

    def document(self, text: str) -> str:
        return _runs(text, lambda run: " ".join(w for w in self.jieba.cut_for_search(run) if w.strip()))

    def pieces(self, term: str) -> list[str]:
        out: list[str] = []
        at = 0
        for run in CJK_RUN.finditer(term):
            if term[at : run.start()].strip():
                out.append(term[at : run.start()])
            out.extend(w for w in self.jieba.cut(run.group()) if w.strip())
            at = run.end()
        if term[at:].strip():
            out.append(term[at:])
        return out


def candidates() -> list[Candidate]:
    found: list[Candidate] = [Porter(), Trigram(), Unigram(), Bigram(), UniBigram(), ApswTokenizer()]
    try:
        found.append(Jieba())
    except ImportError:
        print("jieba is not installed: its row is left out (pip install jieba)", file=sys.stderr)
    return found


# -- measuring ---------------------------------------------------------------------------
def build(candidate: Candidate, path: Path, texts: Sequence[str]) -> tuple[float, int]:
    """(chunks per second, file bytes) of indexing ``texts`` into a new file."""
    connection = apsw.Connection(str(path))
    candidate.setup(connection)
    started = time.perf_counter()
    with connection:
        for rowid, text in enumerate(texts, start=1):
            candidate.insert(connection, rowid, text)
    seconds = time.perf_counter() - started
    connection.execute("VACUUM")
    connection.close()
    return len(texts) / seconds, path.stat().st_size


def evaluate(candidate: Candidate, connection: apsw.Connection, paths: dict[int, str], repeat: int) -> dict:
    by_kind: dict[str, list[tuple[bool, float]]] = {}
    latencies: list[float] = []
    for kind, query, relevant in CASES:
        for _ in range(repeat):
            started = time.perf_counter()
            ranked = candidate.search(connection, query, 10)
            latencies.append(time.perf_counter() - started)
        found = [paths.get(rowid) for rowid in ranked]
        rank = next((i for i, path in enumerate(found, start=1) if path in relevant), None)
        by_kind.setdefault(kind, []).append((rank is not None and rank <= 5, 1 / rank if rank else 0.0))
    cjk = [item for kind, items in by_kind.items() if kind != "english" for item in items]
    latencies.sort()
    return {
        "cjk_hit5": statistics.mean(hit for hit, _ in cjk),
        "cjk_mrr": statistics.mean(rr for _, rr in cjk),
        "by_kind": {kind: statistics.mean(hit for hit, _ in items) for kind, items in by_kind.items()},
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--english-files", type=int, default=300, help="files of bench/generate.py's folder")
    parser.add_argument("--filler", type=int, default=1500, help="CJK filler chunks around the labelled notes")
    parser.add_argument("--repeat", type=int, default=5, help="times each query is timed")
    parser.add_argument("--rounds", type=int, default=3, help="index builds per candidate (best one reported)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    english = english_chunks(args.english_files)
    labelled = list(NOTES.items())
    cjk_texts = [text for _, text in labelled] + filler(args.filler)
    searched = cjk_texts + english  # questions are asked over everything
    paths = {i: path for i, (path, _) in enumerate(labelled, start=1)}
    rows = []
    found = candidates()
    rates: dict[int, dict[str, float]] = {n: {"cjk": 0.0, "en": 0.0} for n in range(len(found))}
    sizes: dict[int, dict[str, int]] = {n: {} for n in range(len(found))}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):  # interleaved, best of the rounds: the machine is shared
            for number, candidate in enumerate(found):
                for corpus, texts in (("cjk", cjk_texts), ("en", english)):
                    path = Path(tmp, f"{number}-{corpus}-{round_}.db")
                    rate, sizes[number][corpus] = build(candidate, path, texts)
                    rates[number][corpus] = max(rates[number][corpus], rate)
                    path.unlink()
        for number, candidate in enumerate(found):
            all_path = Path(tmp, f"{number}-all.db")
            build(candidate, all_path, searched)
            connection = apsw.Connection(str(all_path))
            if isinstance(candidate, ApswTokenizer):
                candidate.register(connection)
            figures = evaluate(candidate, connection, paths, args.repeat)
            connection.close()
            rows.append({"candidate": candidate.name, "cjk_chunks_per_s": rates[number]["cjk"],
                         "cjk_bytes": sizes[number]["cjk"], "english_chunks_per_s": rates[number]["en"],
                         "english_bytes": sizes[number]["en"], **figures})  # fmt: skip
    print(f"{len(cjk_texts)} CJK chunks ({len(NOTES)} labelled), {len(english)} English chunks; "
          f"{len(CASES)} questions over all of them")  # fmt: skip
    kinds = list(dict.fromkeys(kind for kind, _, _ in CASES))
    print("| candidate | CJK hit@5 | CJK MRR | " + " | ".join(kinds) + " | CJK index KB | CJK chunks/s | "
          "English index KB | English chunks/s | keyword p50 / p95 ms |")  # fmt: skip
    print("|---" * (9 + len(kinds)) + "|")
    for row in rows:
        print(f"| {row['candidate']} | {row['cjk_hit5']:.3f} | {row['cjk_mrr']:.3f} | "
              + " | ".join(f"{row['by_kind'][kind]:.2f}" for kind in kinds)
              + f" | {row['cjk_bytes'] / 1024:.0f} | {row['cjk_chunks_per_s']:.0f} | {row['english_bytes'] / 1024:.0f} | "
              f"{row['english_chunks_per_s']:.0f} | {row['p50_ms']:.2f} / {row['p95_ms']:.2f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
