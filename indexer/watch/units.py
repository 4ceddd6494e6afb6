"""Service definitions that keep ``memdex watch`` running in the background (pure).

``memdex watch --print-service systemd|launchd`` prints one of these; the
README explains how to install, start, stop and read the logs.
"""

from __future__ import annotations

import plistlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

SERVICE_NAME = "memdex-watch"
LAUNCHD_LABEL = "dev.memdex.watch"


def watch_command(
    python: str, *, root: Path, db: Path | str | None, model: str | None, namespace: str | None = None,
    session_folders: Sequence[Path] = (),
) -> list[str]:
    command = [python, "-m", "indexer", "--root", str(root)]
    for folder in session_folders:  # given as flags: absolute, since a service runs elsewhere
        command += ["--session-folder", str(folder)]
    if db is not None:
        command += ["--db", str(db)]  # a server's address without its password (the caller left it out)
    if namespace is not None:
        command += ["--namespace", namespace]
    if model is not None:
        command += ["--model", model]
    return command + ["watch", "--wait-for-lock"]


def systemd_unit(command: Sequence[str], *, root: Path, environment: Mapping[str, str] | None = None) -> str:
    """A systemd user unit (``~/.config/systemd/user/memdex-watch.service``); ``environment``
    carries the ``MEMDEX_*`` settings in effect, so the service sees what the CLI saw."""
    extra = "".join(
        f"Environment={_systemd_quote(f'{key}={value}')}\n" for key, value in sorted((environment or {}).items())
    )
    return f"""[Unit]
Description=memdex: keep the memory index of {_systemd_escape(str(root))} current

[Service]
Type=simple
ExecStart={" ".join(_systemd_quote(arg) for arg in command)}
Environment=PYTHONUNBUFFERED=1
{extra}Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=30

[Install]
WantedBy=default.target
"""


def launchd_plist(
    command: Sequence[str], *, log_path: Path, environment: Mapping[str, str] | None = None
) -> str:
    """A launchd agent (``~/Library/LaunchAgents/dev.memdex.watch.plist``)."""
    agent = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "StandardOutPath": str(log_path),
        "StandardErrorPath": str(log_path),
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1", **dict(environment or {})},
    }
    return plistlib.dumps(agent).decode("utf-8")


def _systemd_escape(text: str) -> str:
    return text.replace("%", "%%")


def _systemd_quote(arg: str) -> str:
    """Quote one ExecStart argument (systemd's own quoting rules, not a shell's)."""
    arg = _systemd_escape(arg)
    if arg and not re.search(r"[\s\"'\\;$]", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'
