"""``memdex mcp`` and ``memdex config``: the commands that serve and explain the settings.

Kept apart from app.py (which registers them) so the group module stays small;
``obj`` is app.py's context (settings resolved through config/resolve.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import click

from indexer.api import open_index
from indexer.config.settings import Settings
from indexer.errors import IndexerError, NewerIndex
from indexer.watch.signals import stop_on_signals
from indexer.watch.watcher import WatchOptions


@click.command("mcp")
@click.option("--watch", "watch_files", is_flag=True,
              help="Also keep the index current: this process becomes the index's writer and watcher.")
@click.option("--http", "http", default=None, metavar="HOST:PORT",
              help="Serve streamable HTTP (at /mcp) instead of stdio; a bare PORT binds 127.0.0.1.")
@click.option("--allow-remote", is_flag=True, help="Allow --http on a non-loopback address (there is no authentication).")
@click.option("--allow-origin", "allow_origins", multiple=True, metavar="ORIGIN",
              help="Another browser Origin to accept over HTTP (repeatable).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Another Host name clients use to reach --http (repeatable; needed for 0.0.0.0).")
@click.option("--polling", is_flag=True, help="With --watch: poll the folder instead of using OS file events.")
@click.pass_obj
def mcp_command(
    obj: Any,
    watch_files: bool,
    http: str | None,
    allow_remote: bool,
    allow_origins: tuple[str, ...],
    allow_hosts: tuple[str, ...],
    polling: bool,
) -> None:
    """Serve the memory to assistants over the Model Context Protocol (stdio by default).

    \b
    Examples:
      memdex --root ~/assistant-memory mcp --watch
      memdex mcp --http 8765
    """
    from indexer.serve import mcp as server  # the SDK loads only for this command
    from indexer.serve.http import is_loopback, parse_http
    from indexer.serve.service import IndexService

    settings = obj.settings()
    obj.warn_if_password_in_argv()
    _refuse_a_newer_index(settings)
    address = parse_http(http) if http else None
    if address is not None and not is_loopback(address[0]):
        if not allow_remote:
            raise click.UsageError(f"--http {http}: not a loopback address; add --allow-remote to serve the network")
        logging.getLogger("indexer.serve.mcp").warning(
            "serving %s:%d beyond this machine, without authentication: anyone who can reach it can read the memory",
            *address,
        )

    def listening(host: str, port: int) -> None:
        click.echo(f"memdex mcp: serving http://{host}:{port}/mcp for {settings.root}", err=True)

    service = IndexService(settings, watch=watch_files, watch_options=WatchOptions(polling=polling))
    with stop_on_signals() as stopping:
        try:
            server.serve(
                service, http=address, allowed_origins=allow_origins, allowed_hosts=allow_hosts, on_listening=listening
            )
        except KeyboardInterrupt:
            pass
    if stopping.requested:
        # Stopped by a signal: serve() closed the service (the watcher's transaction rolled
        # back, the lock released). Over stdio the SDK's reader thread is still blocked reading
        # stdin, and the interpreter would wait for it until the client closes the pipe.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _refuse_a_newer_index(settings: Settings) -> None:
    """An index from a newer memdex: one error line before serving, not an error per request.
    Anything else (no index yet, damage the first request repairs, a server down) is served as before."""
    try:
        with open_index(settings, recover=False):
            pass
    except NewerIndex:
        raise
    except IndexerError:
        pass


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print the settings and their sources as JSON.")
@click.pass_obj
def config_command(obj: Any, as_json: bool) -> None:
    """Show the effective settings and where each came from
    (flag > MEMDEX_* environment > ROOT/.memdex/config.toml > user file > default).

    \b
    Examples:
      memdex config
      memdex --root ~/assistant-memory config --json
    """
    shown = obj.configuration().as_dict()
    if as_json:
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    width = max(map(len, shown["settings"]), default=0)
    for name, item in shown["settings"].items():
        value = item["value"]
        text = ", ".join(value) if isinstance(value, list) else "none" if value is None else value
        click.echo(f"{name:<{width}}  {text}  ({item['source']})")
    for which, found in shown["files"].items():
        state = "found" if found["exists"] else "not found"
        click.echo(f"{which} file: {found['path']} ({state})")
