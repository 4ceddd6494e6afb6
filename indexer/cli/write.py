"""``memdex index``, ``rebuild`` and ``check``: the commands that bring the index up to date.

Kept apart from app.py (which registers them) so the group module stays small;
``obj`` is app.py's context (settings resolved through config/resolve.py).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

from indexer.api import open_index
from indexer.config.settings import Settings
from indexer.embedding.resolve import resolve_model
from indexer.errors import NewerIndex, SchemaError, UnusableIndex
from indexer.indexing.check import CORRUPT, DRIFT, HEALTHY, CheckReport, check_index
from indexer.indexing.report import SyncReport

from .read import plural


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_obj
def index(obj: Any, as_json: bool) -> None:
    """Bring the index up to date with the Markdown files.

    \b
    Examples:
      memdex index
      memdex --root ~/assistant-memory index --json
    """
    with open_index(obj.settings(), write=True) as memory:
        memory.prepare_model()  # a first run says so, before the bar (which would hold the message)
        report = _with_progress(memory.sync, "indexing", as_json)
    _print_report(report, as_json)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_obj
def rebuild(obj: Any, as_json: bool) -> None:
    """Build a new index from the Markdown beside the current one, then swap it in.

    \b
    Examples:
      memdex rebuild
      memdex --root ~/assistant-memory rebuild --json
    """
    # An explicit request to build from the Markdown: an index from a newer memdex (which
    # every other command refuses) is moved aside, kept, and replaced too.
    with open_index(obj.settings(), write=True, replace_newer=True) as memory:
        # Opening an unusable index has just rebuilt it; a sync then only reports the counts.
        run = memory.sync if memory.recovered_from else memory.rebuild
        report = _with_progress(run, "rebuilding", as_json)
    _print_report(report, as_json)


@click.command()
@click.option("--repair", is_flag=True, help="Sync drift; rebuild a corrupt index.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_obj
def check(obj: Any, repair: bool, as_json: bool) -> None:
    """Check the index against itself and the Markdown (exit 0 healthy, 1 drift, 2 corrupt, 4 from a newer memdex).

    \b
    Examples:
      memdex check
      memdex check --repair
    """
    settings = obj.settings()
    found = _check(settings)
    result: dict[str, Any] = found.as_dict()
    if repair and found.exit_code != HEALTHY:
        with open_index(settings, write=True) as memory:  # recovers an unusable file on opening
            if found.exit_code == CORRUPT and not memory.recovered_from:
                memory.replace_damaged("check found it corrupt")
            memory.sync(rehash=True)  # drift can hide behind an unchanged size and mtime
        after = _check(settings)
        result = {**result, "repaired": True, "after": after.as_dict()}
        exit_code = after.exit_code
    else:
        exit_code = found.exit_code
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(
            f"{result['state']}: {plural(result['files'], 'file')}, {plural(result['chunks'], 'chunk')} "
            f"({result['seconds']:.2f}s)"
        )
        for problem in result["problems"]:
            click.echo(f"  {problem['kind']}: {problem['message']}")
        for note in result["notes"]:
            click.echo(f"  note: {note}")
        if "after" in result:
            click.echo(f"after repair: {result['after']['state']}")
            for problem in result["after"]["problems"]:
                click.echo(f"  {problem['kind']}: {problem['message']}")
    sys.exit(exit_code)


def _check(settings: Settings) -> CheckReport:
    model_id, _ = resolve_model(settings.model)
    if not settings.database_url and not settings.index_path.exists():
        report = CheckReport()
        report.add(DRIFT, f"no index at {settings.index_path} yet")
        return report
    try:
        with open_index(settings, recover=False) as memory:
            return check_index(settings, memory.engine, model_id=model_id)
    except NewerIndex:
        raise  # not corrupt, not drift: this memdex cannot judge it (one line, like every command)
    except UnusableIndex as exc:
        report = CheckReport()
        report.add(CORRUPT, str(exc))
        return report
    except SchemaError as exc:  # an older or empty schema: a writer upgrades it
        report = CheckReport()
        report.add(DRIFT, str(exc))
        return report


def _with_progress(run: Callable[..., SyncReport], label: str, as_json: bool) -> SyncReport:
    if as_json or not sys.stderr.isatty():
        return run()
    # Log lines written while the bar is drawn would garble it: they are held and
    # printed, in order, once the bar is finished.
    logger = logging.getLogger("indexer")
    held = _HeldRecords()
    shown, logger.handlers[:] = logger.handlers[:], [held]
    try:
        with click.progressbar(length=1, label=label, file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            return run(progress=progress)
    finally:
        logger.handlers[:] = shown
        for record in held.records:
            logger.handle(record)


class _HeldRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _print_report(report: SyncReport, as_json: bool) -> None:
    data = asdict(report)
    data["seconds"] = round(report.seconds, 3)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if report.full_reembed_reason:
        click.echo(f"indexed every file again ({report.full_reembed_reason})")  # the reason was logged in full
    skipped = report.skipped_with_warning + report.skipped_as_before
    before = f" ({report.skipped_as_before} as before, see 'memdex status')" if report.skipped_as_before else ""
    duplicates = f", {report.chunks_deduplicated} duplicates" if report.chunks_deduplicated else ""
    click.echo(
        f"{plural(report.files_seen, 'file')}: {report.reindexed} indexed, "
        f"{report.skipped_unchanged_stat + report.unchanged_hash} unchanged, {report.removed} removed, "
        f"{skipped} skipped{before}; chunks: {report.chunks_embedded} embedded, "
        f"{report.chunks_from_cache} from cache{duplicates}; {report.seconds:.2f}s"
    )
