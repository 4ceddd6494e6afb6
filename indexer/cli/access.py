"""``memdex grant``, ``revoke`` and ``grants``: the owner of a PostgreSQL index gives
login roles namespaces (``store/postgres/access.py`` enforces them on the server).

    memdex --db OWNER_URL --namespace NS grant ROLE [--read-only]
    memdex --db OWNER_URL --namespace NS revoke ROLE
    memdex --db OWNER_URL grants [--json]

Each also creates or upgrades memdex's schema first, so ``grants`` is how an owner
sets up a server without indexing anything.
"""

from __future__ import annotations

import json
from typing import Any

import click

from indexer.errors import ConfigError, one_line
from indexer.store import registry


def _namespace(obj: Any, command: str) -> tuple[Any, str]:
    settings = obj.settings()
    control = registry.access_control(settings, command)
    if not settings.namespace:
        raise ConfigError(f"{command} needs the namespace: memdex --db URL --namespace NAMESPACE {command} ROLE")
    return control, settings.namespace


@click.command("grant")
@click.argument("role")
@click.option("--read-only", is_flag=True, help="Search and read only; no writes.")
@click.option("--json", "as_json", is_flag=True, help="Print the grant as JSON.")
@click.pass_obj
def grant_command(obj: Any, role: str, read_only: bool, as_json: bool) -> None:
    """Let login ROLE read (and, unless --read-only, write) the --namespace (PostgreSQL, as its owner).

    \b
    Examples:
      memdex --db postgresql://owner@db/memory --namespace team grant agent1
      memdex --db postgresql://owner@db/memory --namespace team grant reader --read-only
    """
    control, namespace = _namespace(obj, "grant")
    result = control.grant(namespace, role, write=not read_only)
    _say(result, as_json, f"granted {result['access']} access to namespace {one_line(namespace)} to role {one_line(role)}")


@click.command("revoke")
@click.argument("role")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def revoke_command(obj: Any, role: str, as_json: bool) -> None:
    """Take the --namespace away from login ROLE (PostgreSQL, as its owner).

    \b
    Examples:
      memdex --db postgresql://owner@db/memory --namespace team revoke agent1
    """
    control, namespace = _namespace(obj, "revoke")
    result = control.revoke(namespace, role)
    _say(result, as_json, f"revoked role {one_line(role)}'s access to namespace {one_line(namespace)}")


@click.command("grants")
@click.option("--json", "as_json", is_flag=True, help="Print the grants as JSON.")
@click.pass_obj
def grants_command(obj: Any, as_json: bool) -> None:
    """List which role may read or write which namespace (PostgreSQL; sets up the schema as its owner).

    \b
    Examples:
      memdex --db postgresql://owner@db/memory grants --json
    """
    rows = registry.access_control(obj.settings(), "grants").list()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no grants")
    for row in rows:
        click.echo(f"{one_line(row['namespace'])}  {one_line(row['role'])}  {row['access']}")


def _say(result: dict[str, Any], as_json: bool, text: str) -> None:
    click.echo(json.dumps(result, indent=2) if as_json else text)
