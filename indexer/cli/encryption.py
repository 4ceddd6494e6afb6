"""``memdex encrypt``, ``decrypt`` and ``rekey``: put an existing SQLite index and
its embedding cache under another key, only when asked (opening a plain index
while a key is set is refused with the command to run).

Keys are never taken from an argument's value (``ps`` shows arguments to every
user): the current one is the configured key (``MEMDEX_ENCRYPTION_KEY``,
``encryption_key_file``, ``encryption_keyring``), the new one comes from
``MEMDEX_NEW_ENCRYPTION_KEY`` or ``--new-key-file``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from indexer.config.encryption import KEY_ENV, encryption_key, new_key
from indexer.errors import EncryptionError
from indexer.indexing.lock import lock_root
from indexer.store import registry

NEXT_STEP = f"from now on, give memdex the new key ({KEY_ENV}, encryption_key_file or encryption_keyring)"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was converted as JSON.")
@click.pass_obj
def encrypt(obj: Any, as_json: bool) -> None:
    """Encrypt an unencrypted index and cache with the configured key.

    \b
    Examples:
      MEMDEX_ENCRYPTION_KEY_FILE=~/.memdex.key memdex encrypt
    """
    settings = obj.settings()
    key = encryption_key(settings)
    if key is None:
        raise EncryptionError(f"no encryption key is set: set {KEY_ENV}, or encryption_key_file or encryption_keyring")
    _run(settings, old_key=None, new_key=key, as_json=as_json, after=None)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was converted as JSON.")
@click.pass_obj
def decrypt(obj: Any, as_json: bool) -> None:
    """Write the index and cache unencrypted (the configured key opens them).

    \b
    Examples:
      MEMDEX_ENCRYPTION_KEY_FILE=~/.memdex.key memdex decrypt
    """
    settings = obj.settings()
    key = encryption_key(settings)
    if key is None:
        raise EncryptionError(f"decrypting needs the current key: set {KEY_ENV}, or encryption_key_file or encryption_keyring")
    _run(settings, old_key=key, new_key=None, as_json=as_json, after="now unset the encryption key")


@click.command()
@click.option("--new-key-file", type=click.Path(dir_okay=False), default=None,
              help="File whose first line is the new key (else env MEMDEX_NEW_ENCRYPTION_KEY).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print what was converted as JSON.")
@click.pass_obj
def rekey(obj: Any, new_key_file: str | None, as_json: bool) -> None:
    """Change the encryption key (an unencrypted index is encrypted with the new key).

    \b
    Examples:
      memdex rekey --new-key-file ~/.memdex-new.key
    """
    settings = obj.settings()
    new = new_key(key_file=new_key_file, root=settings.root)
    _run(settings, old_key=encryption_key(settings), new_key=new, as_json=as_json, after=NEXT_STEP)


def _run(settings: Any, *, old_key: str | None, new_key: str | None, as_json: bool, after: str | None) -> None:
    lock = lock_root(settings)
    try:
        result = registry.change_key(settings, old_key=old_key, new_key=new_key)
    finally:
        lock.close()
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    for path in result.converted:
        click.echo(f"{'encrypted' if new_key is not None else 'decrypted'} {path}")
    for path in result.unchanged:
        click.echo(f"already done: {path}")
    if result.removed_damaged_copies:
        click.echo(f"removed {result.removed_damaged_copies} damaged copies kept from earlier recoveries")
    if not result.converted and not result.unchanged:
        click.echo("no index yet: 'memdex index' creates one with the configured key")
    if after and result.converted:
        click.echo(after)
