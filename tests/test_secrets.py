"""A database password is never shown, never put on a command line memdex writes, and a
``--db`` value that tries to name a server and fails is refused without being echoed.

The server-side half (a libpq keyword string that reaches the server, status without the
password) is in test_postgres.py; here nothing needs a server.
"""

from __future__ import annotations

import logging
import plistlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import fill

from indexer.cli.app import _Context, cli
from indexer.config.database import (
    check_database,
    is_database_url,
    redact,
    without_password,
)
from indexer.errors import ConfigError

SECRET = "hunter2-secret"
KEYWORDS = f"host=127.0.0.1 port=1 dbname=memdex user=agent password={SECRET} connect_timeout=2"
URL = f"postgresql://agent:{SECRET}@127.0.0.1:1/memdex?sslmode=disable"


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.mark.parametrize(
    "database, shown",
    [
        (KEYWORDS, "host=127.0.0.1 port=1 dbname=memdex user=agent password=*** connect_timeout=2"),
        (f"host=h password='it''s {SECRET}' user=u".replace("''", "\\'"), "host=h password=*** user=u"),
        (URL, "postgresql://agent:***@127.0.0.1:1/memdex?sslmode=disable"),
        (f"postgresql://agent@h/db?password={SECRET}&sslpassword={SECRET}", "postgresql://agent@h/db?password=***&sslpassword=***"),
    ],
)
def test_the_password_is_redacted_in_urls_and_keyword_strings(database: str, shown: str) -> None:
    assert is_database_url(database)
    assert redact(database) == shown
    bare, had = without_password(database)
    assert had and SECRET not in bare and "password" not in bare


@pytest.mark.parametrize(
    "database",
    [
        f"host=127.0.0.1 pasword={SECRET}",  # a misspelt keyword
        f"host=127.0.0.1 password {SECRET}",  # no '='
        f"host=127.0.0.1 password='{SECRET}",  # an unterminated quote
        f"postgressql://agent:{SECRET}@127.0.0.1/memdex",  # a misspelt scheme
        f"mysql://agent:{SECRET}@127.0.0.1/memdex",
    ],
)
def test_a_server_address_gone_wrong_is_refused_without_echoing_it(
    root: Path, tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(root)
    with pytest.raises(ConfigError) as refused:
        check_database(database)
    assert SECRET not in str(refused.value)
    monkeypatch.chdir(tmp_path)  # a value taken for a file name would be created here
    before = sorted(tmp_path.rglob("*"))
    result = invoke("--root", root, "--db", database, "index")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.stderr.startswith("memdex: error: --db") and result.stderr.count("\n") == 1, result.stderr
    assert SECRET not in result.output
    assert sorted(tmp_path.rglob("*")) == before


def test_a_keyword_string_is_a_server_not_a_file(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken for a SQLite path, it made a file named after the password and echoed it in errors."""
    fill(root)
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    result = invoke("--root", root, "--db", KEYWORDS, "status")
    assert result.exit_code == 1 and result.stderr.startswith("memdex: error: cannot reach the PostgreSQL server")
    assert SECRET not in result.output and "password=***" in result.stderr
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("database", [URL, KEYWORDS])
def test_service_definitions_never_carry_the_password(root: Path, database: str) -> None:
    for kind in ("systemd", "launchd"):
        for how in ("flag", "env"):
            args = ["--root", root, *(["--db", database] if how == "flag" else []), "watch", "--print-service", kind]
            result = invoke(*args, env={"MEMDEX_DB": database} if how == "env" else None)
            assert result.exit_code == 0, result.output
            assert SECRET not in result.stdout and "***" not in result.stdout
            assert "~/.pgpass" in result.stderr  # where the password goes instead
            text = result.stdout
            if kind == "launchd":
                plist = plistlib.loads(text.encode())
                text = " ".join(plist["ProgramArguments"]) + " " + " ".join(plist.get("EnvironmentVariables", {}).values())
            assert ("127.0.0.1" in text) and ("agent" in text)  # the rest of the address is kept


def test_a_password_on_the_command_line_of_a_long_running_command_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="indexer"):
        _Context(root=None, db=URL, model=None, verbose=0).warn_if_password_in_argv()
        _Context(root=None, db="postgresql://agent@127.0.0.1/memdex", model=None, verbose=0).warn_if_password_in_argv()
    [warning] = [r.getMessage() for r in caplog.records]
    assert "visible to every user" in warning and SECRET not in warning


@pytest.mark.parametrize(
    "database",
    [
        f"postgresql://agent:pa#{SECRET}@127.0.0.1:1/memdex",  # libpq takes '#' and '?' literally
        f"postgresql://agent:pa?{SECRET}@127.0.0.1:1/memdex",
        f"postgresql://agent:pa[{SECRET}@127.0.0.1:1/memdex",  # urlsplit raised ValueError on '['
        f"postgresql://agent:pa%zz{SECRET}@127.0.0.1:1/memdex",  # libpq quotes a bad percent token
        f"postgresql://agent@127.0.0.1:1/memdex?password={SECRET}%zz",
    ],
)
def test_passwords_with_characters_a_url_parser_misreads_never_show(root: Path, database: str) -> None:
    fill(root)
    assert SECRET not in redact(database) and SECRET not in without_password(database)[0]
    assert without_password(database)[1]
    for args in (["status"], ["watch", "--print-service", "systemd"]):
        result = invoke("--root", root, "--db", database, *args)
        assert SECRET not in result.output and "Traceback" not in result.output, result.output
    assert invoke("--root", root, "--db", database, "status").stderr.count("\n") == 1


def test_a_service_url_keeps_its_other_parameters_as_written(root: Path) -> None:
    """urlencode wrote %20 as '+', which libpq does not decode: another value in the service."""
    database = f"postgresql://agent:{SECRET}@127.0.0.1:1/memdex?application_name=my%20agent&sslmode=verify-full"
    assert without_password(database) == ("postgresql://agent@127.0.0.1:1/memdex?application_name=my%20agent&sslmode=verify-full", True)


def test_only_a_server_that_is_not_there_is_worth_retrying() -> None:
    """`watch` retries Unavailable forever: a TLS or option mistake must be an error instead."""
    import psycopg

    from indexer.store.postgres.connection import _server_unreachable

    def failure(message: str) -> Exception:
        return psycopg.OperationalError(message)

    assert _server_unreachable(failure('connection to server at "127.0.0.1", port 1 failed: Connection refused'))
    assert _server_unreachable(failure('could not translate host name "db.lan" to address: Temporary failure in name resolution'))
    assert not _server_unreachable(failure('connection to server at "db.lan" failed: SSL error: certificate verify failed'))
    assert not _server_unreachable(failure('could not read root certificate file "/etc/memdex/ca.pem": No such file or directory'))
    assert not _server_unreachable(failure('invalid sslmode value: "verify-fully"'))


ENDPOINT = f"https://bob:{SECRET}@api.example.com/v1?api-version=2024-02-01&note=a%20b&api-key=Q{SECRET}"


def test_an_endpoint_urls_credentials_are_never_shown_nor_written_into_a_service(root: Path) -> None:
    fill(root)
    env = {"MEMDEX_EMBEDDING_URL": ENDPOINT, "MEMDEX_EMBEDDING_MODEL": "m", "MEMDEX_RERANK_URL": ENDPOINT}
    for args in (["config"], ["config", "--json"]):
        result = invoke("--root", root, *args, env=env)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output and "https://***@api.example.com/v1?api-version=2024-02-01" in result.output
    for kind in ("systemd", "launchd"):
        result = invoke("--root", root, "watch", "--print-service", kind, env=env)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.stdout and "***" not in result.stdout
        text = result.stdout.replace("%%", "%")  # systemd's escape
        if kind == "launchd":
            text = " ".join(plistlib.loads(result.stdout.encode()).get("EnvironmentVariables", {}).values())
        # the rest of the address is kept as written; the warning says where the credentials go instead
        assert "https://api.example.com/v1?api-version=2024-02-01&note=a%20b" in text
        assert "embedding_url" in result.stderr and "rerank_url" in result.stderr and SECRET not in result.stderr
