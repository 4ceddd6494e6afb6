"""The ``memdex`` command: parses arguments, calls the library, prints results.

Every ``IndexerError`` becomes one line on stderr and a non-zero exit; ``-v``
shows tracebacks and info-level logs.
"""

from __future__ import annotations

import fcntl
import json
import logging
import sys
from dataclasses import asdict
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Any

import click

from .api import DEFAULT_BUDGET_LINES, open_index, read_target
from .config import Settings, make_settings
from .check import CORRUPT, DRIFT, HEALTHY, CheckReport, check_index
from .embed import resolve_model
from .errors import IndexerError, LockedError, PathError, SchemaError, UnusableIndex
from .search import MODES
from .service import launchd_plist, systemd_unit, watch_command
from .sync import SyncReport
from .watch import DEBOUNCE_SECONDS, MAX_WAIT_SECONDS, RECONCILE_SECONDS, Watcher, WatchOptions, stop_on_signals


def _templates() -> Traversable:
    """The memory-files/ templates: packaged as ``indexer.templates`` in a wheel,
    read from the source tree in a checkout or editable install."""
    checkout = Path(__file__).resolve().parent.parent / "memory-files"
    if checkout.is_dir():
        return checkout
    try:
        return resources.files("indexer.templates")
    except ModuleNotFoundError:
        raise PathError("memdex's templates are missing from this installation") from None


class _Context:
    def __init__(self, root: str, db: str | None, model: str | None, verbose: int) -> None:
        self.root, self.db, self.model, self.verbose = root, db, model, verbose

    def settings(self) -> Settings:
        options: dict[str, Any] = {"model": self.model} if self.model else {}
        return make_settings(self.root, self.db, **options)


class _Group(click.Group):
    """Turns library errors into one line (a traceback only with -v)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IndexerError as exc:
            if ctx.obj is not None and ctx.obj.verbose:
                raise
            click.echo(f"memdex: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # disk full, permissions...: still one line
            if ctx.obj is not None and ctx.obj.verbose:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"memdex: error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)


@click.group(cls=_Group)
@click.option("--root", default=".", show_default=True, help="Memory root folder.", envvar="MEMDEX_ROOT")
@click.option("--db", default=None, help="Index file (default ROOT/.memdex/index.db).", envvar="MEMDEX_DB")
@click.option("--model", default=None, help="sentence-transformers model name or local folder.",
              envvar="MEMDEX_MODEL")  # fmt: skip
@click.option("-v", "--verbose", count=True, help="Info logs; tracebacks on errors.")
@click.version_option(package_name="memdex")
@click.pass_context
def cli(ctx: click.Context, root: str, db: str | None, model: str | None, verbose: int) -> None:
    """memdex: keep a searchable index of an assistant's Markdown memory."""
    _configure_logging(verbose)
    ctx.obj = _Context(root, db, model, verbose)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Create a memory folder from the templates (existing files are kept)."""
    if directory.exists() and not directory.is_dir():
        raise PathError(f"{directory} exists and is not a folder")
    created, kept = [], []
    for rel, source in _template_files(_templates(), PurePosixPath()):
        target = directory / rel
        if target.exists():
            kept.append(rel.as_posix())
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
        except OSError as exc:
            raise PathError(f"cannot write {target} ({exc.strerror or exc})") from None
        created.append(rel.as_posix())
    for name in created:
        click.echo(f"created {directory / name}")
    for name in kept:
        click.echo(f"kept existing {directory / name}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_obj
def index(obj: _Context, as_json: bool) -> None:
    """Bring the index up to date with the Markdown files."""
    with open_index(obj.settings(), write=True) as memory:
        report = _with_progress(memory.sync, "indexing", as_json)
    _print_report(report, as_json)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_obj
def rebuild(obj: _Context, as_json: bool) -> None:
    """Build a new index from the Markdown beside the current one, then swap it in."""
    with open_index(obj.settings(), write=True) as memory:
        # Opening an unusable index has just rebuilt it; a sync then only reports the counts.
        run = memory.sync if memory.recovered_from else memory.rebuild
        report = _with_progress(run, "rebuilding", as_json)
    _print_report(report, as_json)


@cli.command()
@click.option("--repair", is_flag=True, help="Sync drift; rebuild a corrupt index.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_obj
def check(obj: _Context, repair: bool, as_json: bool) -> None:
    """Check the index against itself and the Markdown (exit 0 healthy, 1 drift, 2 corrupt)."""
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
        click.echo(f"{result['state']}: {result['files']} files, {result['chunks']} chunks ({result['seconds']:.2f}s)")
        for problem in result["problems"]:
            click.echo(f"  {problem['kind']}: {problem['message']}")
        if "after" in result:
            click.echo(f"after repair: {result['after']['state']}")
            for problem in result["after"]["problems"]:
                click.echo(f"  {problem['kind']}: {problem['message']}")
    sys.exit(exit_code)


def _check(settings: Settings) -> CheckReport:
    model_id, _ = resolve_model(settings.model)
    if not settings.index_path.exists():
        report = CheckReport()
        report.add(DRIFT, f"no index at {settings.index_path} yet")
        return report
    try:
        with open_index(settings, recover=False) as memory:
            return check_index(settings, memory.store, model_id=model_id)
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
    with click.progressbar(length=1, label=label, file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        return run(progress=progress)


def _print_report(report: SyncReport, as_json: bool) -> None:
    data = asdict(report)
    data["seconds"] = round(report.seconds, 3)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if report.full_reembed_reason:
        click.echo(f"re-embedded every chunk ({report.full_reembed_reason})")
    click.echo(
        f"{report.files_seen} files: {report.reindexed} indexed, "
        f"{report.skipped_unchanged_stat + report.unchanged_hash} unchanged, {report.removed} removed, "
        f"{report.skipped_with_warning} skipped; chunks: {report.chunks_embedded} embedded, "
        f"{report.chunks_from_cache} from cache; {report.seconds:.2f}s"
    )


@cli.command()
@click.option("--debounce", type=click.FloatRange(0, 60), default=DEBOUNCE_SECONDS, show_default=True,
              help="Seconds a changed file must stay quiet before it is synced.")
@click.option("--max-wait", type=click.FloatRange(0, 600), default=MAX_WAIT_SECONDS, show_default=True,
              help="Sync a file written continuously at least this often (seconds).")
@click.option("--reconcile", type=click.FloatRange(min=1), default=RECONCILE_SECONDS, show_default=True,
              help="Seconds between full syncs that catch events the OS dropped.")
@click.option("--polling", is_flag=True, help="Poll the folder instead of using OS file events.")
@click.option("--wait-for-lock", is_flag=True,
              help="If another process is writing the index, wait for it instead of exiting (for services).")
@click.option("--print-service", type=click.Choice(["systemd", "launchd"]),
              help="Print a service definition that runs this watcher in the background, and exit.")
@click.pass_obj
def watch(
    obj: _Context,
    debounce: float,
    max_wait: float,
    reconcile: float,
    polling: bool,
    wait_for_lock: bool,
    print_service: str | None,
) -> None:
    """Keep the index current while files change (Ctrl-C or SIGTERM stops it)."""
    settings = obj.settings()
    if print_service:
        click.echo(_service_text(obj, settings, print_service), nl=False)
        return
    options = WatchOptions(debounce=debounce, max_wait=max(max_wait, debounce), reconcile=reconcile, polling=polling)
    with stop_on_signals():
        try:
            said = False
            while True:
                try:
                    with open_index(settings, write=True) as memory:
                        watcher = Watcher(memory, options)
                        logging.getLogger("indexer.watch").info("watching %s", settings.root)
                        watcher.run()
                    break
                except LockedError as exc:
                    if not wait_for_lock:
                        raise
                    if not said:
                        logging.getLogger("indexer.watch").warning("%s; waiting for it", exc)
                        said = True
                    _wait_for_lock(settings)
        except KeyboardInterrupt:
            pass  # the current file's transaction was rolled back; the lock is released


def _wait_for_lock(settings: Settings) -> None:
    """Block until no other process holds the writer lock (woken by signals, too)."""
    with open(settings.lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        fcntl.flock(handle, fcntl.LOCK_UN)


def _service_text(obj: _Context, settings: Settings, kind: str) -> str:
    model = obj.model
    if model and Path(model).expanduser().is_dir():
        model = str(Path(model).expanduser().resolve())  # a service does not run in this folder
    command = watch_command(sys.executable, root=settings.root, db=settings.index_path if obj.db else None, model=model)
    if kind == "systemd":
        return systemd_unit(command, root=settings.root)
    return launchd_plist(command, log_path=Path("~/Library/Logs/memdex-watch.log").expanduser())


@cli.command()
@click.argument("query")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=None, help="At most this many results.")
@click.option(
    "--budget-lines", type=click.IntRange(min=0), default=DEFAULT_BUDGET_LINES, show_default=True,
    help="Fill this many lines in rank order (adjacent hits merged); 0: whole chunks, no line budget.",
)  # fmt: skip
@click.option("--budget-tokens", type=click.IntRange(min=1), default=None, help="Also stay within ~this many tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.pass_obj
def search(
    obj: _Context, query: str, mode: str, limit: int | None, budget_lines: int, budget_tokens: int | None, as_json: bool
) -> None:
    """Search the memory; prints path:start-end, heading and a snippet."""
    with open_index(obj.settings()) as memory:
        results = memory.search(
            query, mode=mode, limit=limit, budget_lines=budget_lines or None, budget_tokens=budget_tokens  # type: ignore[arg-type]
        )
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False))
        return
    if not results:
        click.echo("no results")
    for result in results:
        where = f"{result.path}:{result.start_line}-{result.end_line}"
        heading = f"  [{result.heading}]" if result.heading else ""
        click.echo(f"{result.score:.3f}  {where}{heading}")
        click.echo(f"       {result.snippet}")


@cli.command()
@click.argument("target")
@click.option("-n", "--line-numbers", is_flag=True, help="Prefix each line with its number.")
@click.pass_obj
def get(obj: _Context, target: str, line_numbers: bool) -> None:
    """Print lines of a memory file: PATH, PATH:N or PATH:START-END."""
    found = read_target(obj.settings().root, target)
    for number, text in enumerate(found.lines, start=found.start_line):
        click.echo(f"{number:>6}  {text}" if line_numbers else text)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print status as JSON.")
@click.pass_obj
def status(obj: _Context, as_json: bool) -> None:
    """Show what is indexed, with which model, and where."""
    with open_index(obj.settings()) as memory:
        info = memory.status()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    last = datetime.fromtimestamp(info["last_sync"]).isoformat(timespec="seconds") if info["last_sync"] else "never"
    click.echo(f"root:    {info['root']}")
    click.echo(f"index:   {info['index_path']} ({info['index_bytes'] / 1e6:.1f} MB with cache)")
    click.echo(f"model:   {info['model']} ({info['dimensions']} dims), vectors via {info['vector_search']}")
    click.echo(f"files:   {info['files']}, chunks: {info['chunks']}, last sync: {last}")
    for kind, counts in sorted(info["by_kind"].items()):
        click.echo(f"  {kind:<7} {counts['files']:>6} files {counts['chunks']:>7} chunks")
    watcher = info["watcher"]
    if watcher is None:
        click.echo("watcher: not running")
    else:
        since = datetime.fromtimestamp(watcher["started_at"]).isoformat(timespec="seconds")
        synced = (
            datetime.fromtimestamp(watcher["last_sync"]).isoformat(timespec="seconds")
            if watcher.get("last_sync") else "not yet"
        )  # fmt: skip
        click.echo(
            f"watcher: running (pid {watcher['pid']}, {watcher['observer']} events) since {since}, "
            f"last sync {synced}, {len(watcher['pending'])} paths pending"
        )


def _template_files(folder: Traversable, prefix: PurePosixPath) -> list[tuple[PurePosixPath, Traversable]]:
    files: list[tuple[PurePosixPath, Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.startswith(("__", ".")):
            continue
        if entry.is_dir():
            files.extend(_template_files(entry, prefix / entry.name))
        else:
            files.append((prefix / entry.name, entry))
    return files


def _configure_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("memdex: %(levelname)s: %(message)s"))
    root = logging.getLogger("indexer")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def main() -> None:
    cli(prog_name="memdex")
