"""Keyword candidates on PostgreSQL: memdex's postings (exact bm25) vs a tsvector + GIN.

    python bench/pg_keyword_plans.py --db postgresql://... --namespace NAME [--queries fixtures/queries.json]

Uses an existing PostgreSQL namespace (e.g. the one bench/bench_pg.py built
with ``--keep``). Builds, in a scratch table of the public schema (dropped at
the end), what the obvious design would store: a tsvector per chunk generated
from text, heading (weight B) and title (weight C) with the 'english'
configuration, and a GIN index over it. Then, for the same queries (the
fixture's questions, stopwords dropped, terms ORed as memdex does):

- ``postings``: memdex's ``keyword_candidates`` (exact FTS5 bm25 of the top 200);
- ``gin_rank_cd``: GIN match, ``ORDER BY ts_rank_cd`` LIMIT 200 (no IDF);
- ``gin_bm25``: GIN match, then bm25 of every matching row from its tsvector
  (``unnest``), the top 200 — the "GIN candidates, exact scoring" plan (its
  document length is the tsvector's number of lexemes: a cost estimate, not
  FTS5's exact formula).

Prints p50/p95 per plan and the median number of rows the GIN matched.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import psycopg

from indexer.retrieval.search import query_terms
from indexer.store.postgres.store import PgStore

SCRATCH = "public.memdex_bench_tsv"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--queries", type=Path, default=Path("fixtures/queries.json"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/out/pg_keyword_plans.json"))
    args = parser.parse_args()

    store = PgStore(args.db, namespace=args.namespace, host="bench", write=False)
    conn = psycopg.connect(args.db, autocommit=True)
    conn.execute("SET statement_timeout = 0")
    started = time.perf_counter()
    conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
    conn.execute(
        f"CREATE TABLE {SCRATCH} AS SELECT c.id, c.ns, setweight(to_tsvector('english', c.text), 'D') || "
        "setweight(to_tsvector('english', c.heading), 'B') || setweight(to_tsvector('english', f.title), 'C') AS tsv "
        "FROM memdex.chunks c JOIN memdex.files f ON f.ns = c.ns AND f.path = c.path WHERE c.ns = %s",
        (store.ns,),
    )
    conn.execute(f"CREATE INDEX ON {SCRATCH} USING gin (tsv)")
    conn.execute(f"ANALYZE {SCRATCH}")
    build_s = time.perf_counter() - started
    (rows,) = conn.execute(f"SELECT count(*) FROM {SCRATCH}").fetchone()
    sizes = conn.execute(
        "SELECT pg_total_relation_size(%s), "
        "(SELECT pg_total_relation_size('memdex.postings'))", (SCRATCH,)
    ).fetchone()

    (avg_lexemes,) = conn.execute(f"SELECT avg(length(tsv))::float8 FROM {SCRATCH}").fetchone()
    questions = [q["query"] for q in json.loads(args.queries.read_text())]
    timings: dict[str, list[float]] = {"postings": [], "gin_rank_cd": [], "gin_bm25": []}
    matched: list[int] = []
    for _ in range(args.repeat):
        for question in questions:
            terms = query_terms(question)
            lexemes = sorted({s for t in terms for s in store.stem(t)})
            if not lexemes:
                continue
            tsquery = " | ".join("'" + lexeme.replace("'", "''") + "'" for lexeme in lexemes)
            t = time.perf_counter()
            store.keyword_candidates(terms, 200)
            timings["postings"].append(time.perf_counter() - t)
            t = time.perf_counter()
            conn.execute(
                f"SELECT id FROM {SCRATCH} WHERE tsv @@ to_tsquery('english', %s) "
                "ORDER BY ts_rank_cd(tsv, to_tsquery('english', %s)) DESC LIMIT 200",
                (tsquery, tsquery),
            ).fetchall()
            timings["gin_rank_cd"].append(time.perf_counter() - t)
            (english,) = conn.execute(
                "SELECT coalesce(array_agg(lexeme), '{}') FROM unnest(to_tsvector('english', %s))", (" ".join(terms),)
            ).fetchone()
            t = time.perf_counter()
            conn.execute(
                "WITH hits AS (SELECT id, tsv FROM " + SCRATCH + " WHERE tsv @@ to_tsquery('english', %(q)s)), "
                "n AS (SELECT count(*)::float8 AS total FROM " + SCRATCH + "), "
                "terms AS (SELECT h.id, u.lexeme, cardinality(u.positions) AS tf, length(h.tsv) AS len "
                "FROM hits h, unnest(h.tsv) u WHERE u.lexeme = ANY(%(lex)s)), "
                "df AS (SELECT lexeme, count(*) AS docs FROM terms GROUP BY lexeme) "
                "SELECT t.id, sum(ln((n.total - df.docs + 0.5) / (df.docs + 0.5)) * t.tf * 2.2 / (t.tf + 1.2 * "
                "(0.25 + 0.75 * t.len / %(avg)s))) AS score FROM terms t JOIN df USING (lexeme), n "
                "GROUP BY t.id ORDER BY score DESC LIMIT 200",
                {"q": tsquery, "lex": english, "avg": avg_lexemes or 1.0},
            ).fetchall()
            timings["gin_bm25"].append(time.perf_counter() - t)
            if len(matched) < len(questions):
                (count,) = conn.execute(
                    f"SELECT count(*) FROM {SCRATCH} WHERE tsv @@ to_tsquery('english', %s)", (tsquery,)
                ).fetchone()
                matched.append(count)
    conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
    result = {
        "chunks": rows,
        "gin_build_seconds": round(build_s, 1),
        "tsvector_table_bytes": sizes[0],
        "postings_bytes": sizes[1],
        "median_rows_matched_by_gin": statistics.median(matched) if matched else 0,
        **{
            name: {"p50_ms": round(1000 * percentile(v, 0.5), 2), "p95_ms": round(1000 * percentile(v, 0.95), 2)}
            for name, v in timings.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
