"""The ``memdex`` command: parses arguments, calls the library, prints results.

Every ``IndexerError`` becomes one line on stderr and a non-zero exit; ``-v``
shows tracebacks and info-level logs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from indexer.api import open_index
from indexer.config.database import is_database_url, without_password
from indexer.config.resolve import Configuration, load_configuration
from indexer.config.settings import Settings
from indexer.embedding.http_client import shown as shown_url, without_credentials
from indexer.embedding.lazy import BACKENDS
from indexer.embedding.variants import VARIANTS
from indexer.embedding.resolve import resolve_model
from indexer.errors import (
    IndexerError,
    SchemaError,
    UnusableIndex,
    one_line,
)
from indexer.indexing.check import CORRUPT, DRIFT, HEALTHY, CheckReport, check_index
from indexer.indexing.report import SyncReport
from indexer.store import registry
from indexer.watch.run import run_watch
from indexer.watch.signals import stop_on_signals
from indexer.watch.units import launchd_plist, systemd_unit, watch_command
from indexer.watch.watcher import (
    DEBOUNCE_SECONDS,
    MAX_WAIT_SECONDS,
    RECONCILE_SECONDS,
    WatchOptions,
)

from .access import grant_command, grants_command, revoke_command
from .encryption import decrypt, encrypt, rekey
from .init import init_command
from .read import get_command, plural, search_command, status_command
from .serve import config_command, mcp_command


class _Context:
    def __init__(
        self, root: str | None, db: str | None, model: str | None, verbose: int, backend: str | None = None,
        namespace: str | None = None, session_folders: tuple[str, ...] = (),
        embed_threads: str | None = None, model_variant: str | None = None,
    ) -> None:
        self.root, self.db, self.model, self.verbose, self.backend = root, db, model, verbose, backend
        self.namespace, self.embed_threads, self.model_variant = namespace, embed_threads, model_variant
        self.session_folders = session_folders or None  # none given: the environment or a file decides
        self._configuration: Configuration | None = None

    def configuration(self) -> Configuration:
        """Flags > MEMDEX_* environment > ROOT/.memdex/config.toml > user file > defaults."""
        if self._configuration is None:
            self._configuration = load_configuration(
                {"root": self.root, "db": self.db, "model": self.model, "backend": self.backend,
                 "namespace": self.namespace, "session_folders": self.session_folders,
                 "embed_threads": self.embed_threads, "model_variant": self.model_variant}
            )
        return self._configuration

    def settings(self) -> Settings:
        return self.configuration().settings

    def warn_if_password_in_argv(self) -> None:
        """For commands that run for hours: a password in ``--db`` stays in ``ps`` for all to see."""
        if self.db and is_database_url(self.db) and without_password(self.db)[1]:
            logging.getLogger("indexer").warning(
                "the database password in --db is visible to every user of this machine (ps) while this runs; "
                "put it in ~/.pgpass, or the environment (PGPASSWORD, MEMDEX_DB), instead"
            )


class _Group(click.Group):
    """Turns library errors into one line (a traceback only with -v); usage errors exit 64."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone = kwargs.pop("standalone_mode", True)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `memdex`: the help, as asked for
            if not standalone:
                raise
            click.echo(exc.ctx.get_help() if exc.ctx is not None else str(exc))
            sys.exit(0)
        except click.UsageError as exc:
            if not standalone:
                raise
            click.echo(usage_line(exc), err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as exc:
            if not standalone:
                raise
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            if not standalone:
                raise
            click.echo("Aborted!", err=True)
            sys.exit(1)
        if not standalone:
            return result
        sys.exit(result if isinstance(result, int) else 0)  # ctx.exit(code) comes back as its code

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IndexerError as exc:
            if ctx.obj is not None and ctx.obj.verbose:
                raise
            click.echo(f"memdex: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:  # `memdex get x | head -1`: the reader has all it wants
            _silence_stdout()
            ctx.exit(BROKEN_PIPE_EXIT)
        except OSError as exc:  # disk full, permissions...: still one line
            if ctx.obj is not None and ctx.obj.verbose:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"memdex: error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)
        except Exception as exc:  # last resort: an SQLite error no layer below turned into a message
            error = registry.user_error(exc)
            if error is None or (ctx.obj is not None and ctx.obj.verbose):
                raise
            click.echo(f"memdex: error: {error}", err=True)
            ctx.exit(error.exit_code)


def usage_line(exc: click.UsageError) -> str:
    """One line, as the README promises: ``memdex: error: ... (try 'memdex CMD --help')``."""
    command = exc.ctx.command_path if exc.ctx is not None else "memdex"
    return f"memdex: error: {one_line(exc.format_message()).rstrip('.')} (try '{command} --help')"


# Exit status of a command whose output pipe was closed early (128 + SIGPIPE, as
# shells report for tools killed by SIGPIPE); nothing is printed.
BROKEN_PIPE_EXIT = 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@click.group(cls=_Group)
@click.option("--root", default=None, help="Memory root folder (default: the current folder; env MEMDEX_ROOT).")
@click.option("--db", default=None,
              help="Index file (default ROOT/.memdex/index.db), or a postgresql:// URL (env MEMDEX_DB).")
@click.option("--namespace", default=None,
              help="With PostgreSQL: this root's namespace on the server (default HOST:ROOT; env MEMDEX_NAMESPACE).")
@click.option("--model", default=None, help="sentence-transformers model name or local folder (env MEMDEX_MODEL).")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Embedding backend: auto (ONNX Runtime, torch as fallback), onnx or torch (env MEMDEX_BACKEND).")  # fmt: skip
@click.option("--model-variant", type=click.Choice(VARIANTS), default=None,
              help="full (the model), int8 (quantised ONNX) or static (model2vec, distilled locally): "
                   "faster, see README (env MEMDEX_MODEL_VARIANT).")  # fmt: skip
@click.option("--embed-threads", default=None, metavar="auto|N",
              help="Threads for bulk embedding: auto (the idle cores, at least 1; default) or a number "
                   "(env MEMDEX_EMBED_THREADS).")  # fmt: skip
@click.option("--session-folder", "session_folders", multiple=True, metavar="DIR",
              help="A folder of session transcripts (JSONL) to index too; repeatable "
                   "(env MEMDEX_SESSION_FOLDERS, separated by ':').")  # fmt: skip
@click.option("-v", "--verbose", count=True, help="Info logs; tracebacks on errors.")
@click.version_option(package_name="memdex")
@click.pass_context
def cli(
    ctx: click.Context, root: str | None, db: str | None, namespace: str | None, model: str | None,
    backend: str | None, model_variant: str | None, embed_threads: str | None,
    session_folders: tuple[str, ...], verbose: int,
) -> None:
    """memdex: keep a searchable index of an assistant's Markdown memory."""
    _configure_logging(verbose)
    ctx.obj = _Context(root, db, model, verbose, backend, namespace, session_folders, embed_threads, model_variant)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_obj
def index(obj: _Context, as_json: bool) -> None:
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


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_obj
def rebuild(obj: _Context, as_json: bool) -> None:
    """Build a new index from the Markdown beside the current one, then swap it in.

    \b
    Examples:
      memdex rebuild
      memdex --root ~/assistant-memory rebuild --json
    """
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
    """Check the index against itself and the Markdown (exit 0 healthy, 1 drift, 2 corrupt).

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
    """Keep the index current while files change (Ctrl-C or SIGTERM stops it).

    \b
    Examples:
      memdex --root ~/assistant-memory watch
      memdex watch --print-service systemd > ~/.config/systemd/user/memdex-watch.service
    """
    settings = obj.settings()
    if print_service:
        click.echo(_service_text(obj, settings, print_service), nl=False)
        return
    obj.warn_if_password_in_argv()
    options = WatchOptions(debounce=debounce, max_wait=max(max_wait, debounce), reconcile=reconcile, polling=polling)
    said = []

    def started(_: Any) -> None:  # once the index is open for writing (a restart after a reconnect is quiet)
        if not said:
            click.echo(f"memdex: watching {one_line(str(settings.root))} (Ctrl-C stops)", err=True)
            said.append(True)

    with stop_on_signals() as stopping:
        try:
            run_watch(settings, options, stopping, wait_for_lock=wait_for_lock, on_watcher=started)
        except KeyboardInterrupt:
            pass  # the current file's transaction was rolled back; the lock is released
    click.echo("memdex: stopped", err=True)


def _service_text(obj: _Context, settings: Settings, kind: str) -> str:
    model = obj.model
    if model and Path(model).expanduser().is_dir():
        model = str(Path(model).expanduser().resolve())  # a service does not run in this folder
    db = settings.database_url or (settings.index_path if obj.db else None)
    if settings.database_url:
        db, had_password = without_password(settings.database_url)
        if had_password:
            click.echo(
                "memdex: warning: the database password is left out of the service (its command line and "
                "definition are readable by others); put it in ~/.pgpass (chmod 600), where libpq finds it",
                err=True,
            )
    for name, url in (("embedding_url", settings.embedding_url), ("rerank_url", settings.rerank_url)):
        if url and without_credentials(url)[1]:
            click.echo(
                f"memdex: warning: the credentials in {name} ({shown_url(url)}) are left out of the service (its "
                "definition is readable by others); give the service the whole URL in its manager's environment "
                "file, or the key as MEMDEX_EMBEDDING_KEY / MEMDEX_RERANK_KEY",
                err=True,
            )
    command = watch_command(
        sys.executable, root=settings.root, db=db, model=model, namespace=obj.namespace,
        session_folders=settings.session_folders if obj.session_folders else (),
    )  # fmt: skip
    environment = obj.configuration().environment()  # MEMDEX_* settings; the files are read by the service itself
    if kind == "systemd":
        return systemd_unit(command, root=settings.root, environment=environment)
    return launchd_plist(command, log_path=Path("~/Library/Logs/memdex-watch.log").expanduser(), environment=environment)



class _Formatter(logging.Formatter):
    """``memdex: warning: ...``: the level in lower case, as in ``memdex: error:`` (and serve/logs.py)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return f"memdex: {record.levelname.lower()}: {record.getMessage()}"


def _configure_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("indexer")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    root.propagate = False


# Exit codes (README "Exit codes"): 0 ok, 1 error (check: drift), 2 check: corrupt
# (or a damaged index a watcher holds), 3 another process holds the writer lock,
# 64 usage error (EX_USAGE: unknown option, bad value). Click's own usage errors exit 2,
# which would read as "corrupt".
EXIT_USAGE = 64


def main() -> None:
    cli(prog_name="memdex")



cli.add_command(init_command)
cli.add_command(search_command)
cli.add_command(get_command)
cli.add_command(status_command)
cli.add_command(mcp_command)
cli.add_command(config_command)
cli.add_command(encrypt)
cli.add_command(decrypt)
cli.add_command(rekey)
cli.add_command(grant_command)
cli.add_command(revoke_command)
cli.add_command(grants_command)
