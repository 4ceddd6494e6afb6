"""The ``memdex`` command: parses arguments, calls the library, prints results.

Every ``IndexerError`` becomes one line on stderr and a non-zero exit; ``-v``
shows tracebacks and info-level logs.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from indexer.config.database import is_database_url, without_password
from indexer.config.resolve import Configuration, load_configuration
from indexer.config.settings import Settings
from indexer.embedding.lazy import BACKENDS
from indexer.embedding.variants import VARIANTS
from indexer.errors import (
    IndexerError,
    one_line,
)
from indexer.store import registry

from .access import grant_command, grants_command, revoke_command
from .encryption import decrypt, encrypt, rekey
from .init import init_command
from .read import get_command, search_command, status_command
from .serve import config_command, mcp_command
from .watch import watch
from .write import check, index, rebuild


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
cli.add_command(index)
cli.add_command(rebuild)
cli.add_command(check)
cli.add_command(watch)
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
