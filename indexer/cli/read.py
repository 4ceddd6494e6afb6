"""``memdex search``, ``get`` and ``status``: the commands that read the index and the Markdown.

Kept apart from app.py (which registers them) so the group module stays small;
``obj`` is app.py's context (settings resolved through config/resolve.py).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

from indexer.api import open_index
from indexer.errors import ConfigError, IndexerError, PathError, mib, one_line
from indexer.retrieval.confidence import NOTHING_RELEVANT, nothing_relevant
from indexer.retrieval.filters import KINDS, make_filters
from indexer.retrieval.options import search_options
from indexer.retrieval.search import MODES
from indexer.sources.read import Lines, read_target


@click.command("search")
@click.argument("query")
@click.option("--mode", type=click.Choice(MODES), default=None, help="Default: search_mode setting (hybrid).")
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=None,
              help="At most this many results (default: search_limit setting; none: as many as the budget holds).")
@click.option("--budget-lines", type=click.IntRange(min=0), default=None,
              help="Fill this many lines in rank order, adjacent hits merged (default: search_budget_lines "
              "setting, 50); 0: whole chunks, no line budget.")
@click.option("--budget-tokens", type=click.IntRange(min=0), default=None,
              help="Also stay within ~this many tokens, whichever fills first (default: search_budget_tokens "
              "setting, 2000); a line too long for it is shown as its best part; 0: no token bound.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Only these kinds (repeatable).")
@click.option("--path", "path_prefix", default=None, help="Only files whose root-relative path starts with this.")
@click.option("--after", default=None, help="Only dated logs on or after this day (YYYY-MM-DD, or 7d, 2w, 3m, 1y).")
@click.option("--before", default=None, help="Only dated logs on or before this day.")
@click.option("--min-score", type=float, default=None, help="Drop results scoring below this (per-mode scale).")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
              help="Drop results whose confidence (0-1, hybrid mode) is below this; 0.5 is the cut for 'nothing relevant'.")
@click.option("--across", "across", multiple=True,
              help="With PostgreSQL: search these namespaces (repeatable; 'all': every one) instead of this root's.")
@click.option("--json", "as_json", is_flag=True, help="Print results as a JSON list (snake_case keys).")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="Print one JSON object per result per line.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; the exit code says whether anything was found.")
@click.pass_obj
def search_command(
    obj: Any,
    query: str,
    mode: str | None,
    limit: int | None,
    budget_lines: int | None,
    budget_tokens: int | None,
    kinds: tuple[str, ...],
    path_prefix: str | None,
    after: str | None,
    before: str | None,
    min_score: float | None,
    min_confidence: float | None,
    across: tuple[str, ...],
    as_json: bool,
    as_jsonl: bool,
    quiet: bool,
) -> None:
    """Search the memory; prints score, path:start-end (path:N for one line), heading and a snippet.

    Exit 0 when something was found, 1 when nothing was (stdout empty, as grep and rg).

    \b
    Examples:
      memdex search "what editor do I use"
      memdex search dentist --kind daily --after 30d --jsonl
    """
    if not query.strip():
        raise click.UsageError("the query is empty: say what to search for")
    if as_json and as_jsonl:
        raise click.UsageError("--json and --jsonl exclude each other")
    settings = obj.settings()
    if across:
        if not settings.database_url:
            raise ConfigError("--across needs a PostgreSQL index (--db postgresql://...)")
        names = tuple("*" if name == "all" else name for name in across)
        settings = dataclasses.replace(settings, search_namespaces=names)
    filters = make_filters(kinds=kinds, path_prefix=path_prefix, after=after, before=before, min_score=min_score)
    options = search_options(settings, mode=mode, limit=limit, budget_lines=budget_lines, budget_tokens=budget_tokens)
    with open_index(settings) as memory:
        results = memory.search(query, filters=filters, **options.keywords())
    if nothing_relevant([r.confidence for r in results]) and results and not quiet:
        click.echo(NO_CONFIDENT_MATCH, err=True)
    if min_confidence is not None:
        results = [r for r in results if r.confidence is None or r.confidence >= min_confidence]
    found = NO_RESULTS if not results else 0
    if quiet:
        click.get_current_context().exit(found)
    shown = [{k: v for k, v in asdict(r).items() if k not in ("namespace", "excerpt") or v is not None} for r in results]
    if as_json:
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
    elif as_jsonl:
        for item in shown:
            click.echo(json.dumps(item, ensure_ascii=False))
    else:
        _print_results(results, settings.namespace_name)
    click.get_current_context().exit(found)


def _print_results(results: list[Any], own_namespace: str) -> None:
    for result in results:
        # one_line: a newline (or other control character) in a file name or heading is escaped,
        # so each result stays two lines; --json has the exact path.
        where = one_line(f"{result.path}:{span(result.start_line, result.end_line)}")
        if result.namespace is not None and result.namespace != own_namespace:
            where = f"({one_line(result.namespace)}) {where}"
        heading = f"  [{one_line(result.heading)}]" if result.heading else ""
        click.echo(f"{result.score:.3f}  {where}{heading}")
        click.echo(f"       {one_line(result.snippet)}")


NO_CONFIDENT_MATCH = (
    f"memdex: no confident match: every result's confidence is below {NOTHING_RELEVANT} "
    "(memory probably holds nothing about this)"
)
NO_RESULTS = 1  # search's exit status when nothing was found (grep, rg)


def span(start: int, end: int) -> str:
    """``29`` for one line, ``29-35`` for more: the form ``get`` takes after ``path:``."""
    return str(start) if start == end else f"{start}-{end}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def local_time(epoch: float) -> str:
    """ISO 8601 in local time with its offset, e.g. 2026-12-06T09:10:00+01:00."""
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


@click.command("get")
@click.argument("target")
@click.option("-n", "--line-numbers", is_flag=True, help="Prefix each line with its number.")
@click.option("--json", "as_json", is_flag=True, help="Print {path, start_line, end_line, lines} as JSON.")
@click.option("--from", "namespace", default=None,
              help="With PostgreSQL: read another namespace's stored text (its Markdown is on another host).")
@click.pass_obj
def get_command(obj: Any, target: str, line_numbers: bool, as_json: bool, namespace: str | None) -> None:
    """Print lines of a memory file: PATH, PATH:N or PATH:START-END (as search cites them).

    \b
    Examples:
      memdex get MEMORY.md:12-18
      memdex get -n daily/2026-11-20.md
    """
    settings = obj.settings()
    if namespace is not None and namespace != settings.namespace_name:
        if not settings.database_url:
            raise ConfigError("--from needs a PostgreSQL index (--db postgresql://...)")
        with open_index(dataclasses.replace(settings, namespace=namespace)) as memory:
            path, start, end, lines = memory.get_stored(namespace, target)
        found = Lines(path, start, end, lines)
        click.echo(f"memdex: stored text of {path} in namespace {one_line(namespace)}, not its Markdown", err=True)
    else:
        try:
            found = read_target(settings.root, target, max_bytes=settings.max_file_bytes,
                                sessions=settings.session_labels, session_tools=settings.session_tools,
                                session_max_bytes=settings.session_max_file_bytes)  # fmt: skip
        except PathError as refused:
            if not settings.database_url:
                raise
            found = _within_the_index_bound(settings, target, refused)
    if as_json:
        click.echo(json.dumps(asdict(found), indent=2, ensure_ascii=False))
        return
    for number, text in enumerate(found.lines, start=found.start_line):
        click.echo(f"{number:>6}  {text}" if line_numbers else text)


def _within_the_index_bound(settings: Any, target: str, refused: PathError) -> Lines:
    """A PostgreSQL namespace's transcripts are indexed within the largest bound of its
    writers, which may be larger than this host's (review): lines this host's bound refused
    are served when the index's bound holds them, as search cites them; else the refusal."""
    try:
        with open_index(settings) as memory:
            return memory.get(target)
    except PathError:
        raise
    except IndexerError:  # no index to ask (not indexed yet, a server down): this host's answer
        raise refused from None


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print status as JSON.")
@click.pass_obj
def status_command(obj: Any, as_json: bool) -> None:
    """Show what is indexed, with which model, and where.

    \b
    Examples:
      memdex status
      memdex status --json
    """
    settings = obj.settings()
    with open_index(settings) as memory:
        info = memory.status()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    last = local_time(info["last_sync"]) if info["last_sync"] else "never"
    click.echo(f"root:    {info['root']}")
    click.echo(f"index:   {info['index_path']} ({info['index_bytes'] / 1e6:.1f} MB with cache)")
    if "namespace" in info:  # PostgreSQL
        others = len(info["namespaces"]) - 1
        click.echo(f"namespace: {one_line(info['namespace'])} (and {others} other{'s' if others != 1 else ''} on the server)")
    click.echo(f"model:   {info['model']} ({info['dimensions']} dims), vectors via {info['vector_search']}")
    click.echo(f"files:   {info['files']}, chunks: {info['chunks']}, last sync: {last}")
    for kind, counts in sorted(info["by_kind"].items()):
        click.echo(f"  {kind:<7} {plural(counts['files'], 'file'):>12} {plural(counts['chunks'], 'chunk'):>13}")
    for label, folder in info["session_folders"].items():
        click.echo(f"sessions: sessions/{one_line(label)}/ is {one_line(folder)}")
    for skipped in info["skipped"]:  # files skipped with a warning, not read again until they change
        click.echo(f"skipped: {skipped['path']}: {skipped['reason']}")
    bound = mib(info["session_max_file_bytes"])  # the index's: another writer's may be larger than this host's
    for path in info["partly_indexed"]:
        click.echo(f"partly indexed: {one_line(path)}: only its first {bound} (session_max_file_bytes)")
    for path in info["first_line_over_bound"]:
        click.echo(f"not indexed: {one_line(path)}: its first line is longer than the {bound} limit "
                   "(session_max_file_bytes): nothing of it is indexed")  # fmt: skip
    watcher = info["watcher"]
    if watcher is None:
        click.echo("watcher: not running")
    else:
        since = local_time(watcher["started_at"])
        synced = local_time(watcher["last_sync"]) if watcher.get("last_sync") else "not yet"
        click.echo(
            f"watcher: running (pid {watcher['pid']}, {watcher['observer']} events) since {since}, "
            f"last sync {synced}, {plural(watcher.get('pending_count', len(watcher['pending'])), 'path')} pending"
        )
