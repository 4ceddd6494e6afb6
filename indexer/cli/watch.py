"""``memdex watch``: keep the index current in the foreground, or print a service that does.

Kept apart from app.py (which registers it); ``obj`` is app.py's context.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from indexer.config.database import without_password
from indexer.config.settings import Settings
from indexer.embedding.http_client import shown as shown_url
from indexer.embedding.http_client import without_credentials
from indexer.errors import one_line
from indexer.watch.run import run_watch
from indexer.watch.signals import stop_on_signals
from indexer.watch.units import launchd_plist, systemd_unit, watch_command
from indexer.watch.watcher import (
    DEBOUNCE_SECONDS,
    MAX_WAIT_SECONDS,
    RECONCILE_SECONDS,
    WatchOptions,
)


@click.command()
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
    obj: Any,
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


def _service_text(obj: Any, settings: Settings, kind: str) -> str:
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
