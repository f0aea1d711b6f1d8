"""A throwaway PostgreSQL server for the tests: its own cluster in a temp dir, on 127.0.0.1 only.

`start()` runs Debian's (or any) `initdb` and `pg_ctl` from the server's bin directory; as root
it runs them as the `postgres` user (initdb refuses root), so a clean CI machine where the tests
run as root works the same as a developer's account. Durability is switched off (fsync, full
page writes): the cluster is deleted when the session ends. `python tests/pgserver.py` starts
one by hand and prints its URL until Ctrl-C.

The fixtures: `pg_admin` (session) is a server's superuser URL: $ROUTECLI_TEST_PG when set, else
a cluster started here. Without server binaries or psycopg the PostgreSQL tests are skipped,
unless ROUTECLI_REQUIRE_PG=1 (CI sets it) or ROUTECLI_TEST_PG is set: then they fail.
`pg_url` is a fresh, empty database per test, also set as ROUTECLI_DB.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "routecli_test"
# Distinctive, so a test can check that no message, log line or export ever shows it.
PASSWORD = "pw-7d1f-never-shown"
_FAST = ("-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
         "-c", "max_connections=200")


class Unavailable(Exception):
    """No server binaries here, or the server would not start (the message says which)."""


@dataclass
class Server:
    base: Path
    bin_dir: Path
    port: int
    run_as: str | None

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _run(self, ["pg_ctl", "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop"], timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


def find_bin_dir() -> Path | None:
    """$ROUTECLI_PG_BIN, else the newest /usr/lib/postgresql/*/bin, else initdb on PATH."""
    chosen = os.environ.get("ROUTECLI_PG_BIN")
    if chosen:
        return Path(chosen)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def start(attempts: int = 3) -> Server:
    bin_dir = find_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        raise Unavailable("no PostgreSQL server binaries (initdb) found; apt-get install postgresql")
    run_as = _unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="routecli-pg-"))
    server = Server(base, bin_dir, 0, run_as)
    try:
        _init(server)
        for _ in range(attempts):  # another process may take the free port before the server does
            server.port = _free_port()
            if _start(server):
                return server
        raise Unavailable(f"the PostgreSQL server would not start: {_log_tail(server)}")
    except BaseException:
        server.stop()
        raise


def _unprivileged_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("running as root and there is no postgres user to run the server as") from None
    return "postgres"


def _init(server: Server) -> None:
    pwfile = server.base / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if server.run_as:
        entry = pwd.getpwnam(server.run_as)
        for path in (server.base, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    command = ["initdb", "-D", str(server.base / "data"), "-U", USER, "--pwfile", str(pwfile),
               "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"]
    done = _run(server, command, timeout=120)
    if done.returncode != 0:
        raise Unavailable(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")


def _start(server: Server) -> bool:
    options = ["-c", "listen_addresses=127.0.0.1", "-p", str(server.port),
               "-c", f"unix_socket_directories={server.base}", *_FAST]
    command = ["pg_ctl", "-D", str(server.base / "data"), "-l", str(server.base / "log"), "-w", "-t", "60",
               "-o", " ".join(options), "start"]
    return _run(server, command, timeout=90).returncode == 0


def _run(server: Server, command: list[str], timeout: float) -> subprocess.CompletedProcess:
    argv = [str(server.bin_dir / command[0]), *command[1:]]
    if server.run_as:
        argv = ["runuser", "-u", server.run_as, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=server.base)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(server: Server) -> str:
    try:
        return (server.base / "log").read_text(errors="replace").strip()[-500:]
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- databases


def admin(url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql)


def create_database(admin_url: str) -> tuple[str, str]:
    """A new empty database: (its name, its URL)."""
    name = "rc_" + uuid.uuid4().hex[:12]
    admin(admin_url, f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(admin_url)
    return name, urllib.parse.urlunsplit(parts._replace(path="/" + name))


def drop_database(admin_url: str, name: str) -> None:
    with contextlib.suppress(Exception):
        admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- fixtures

URL_ENV, REQUIRE_ENV = "ROUTECLI_TEST_PG", "ROUTECLI_REQUIRE_PG"


def _unavailable(why: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1" or os.environ.get(URL_ENV):
        pytest.fail(f"PostgreSQL is expected here ({REQUIRE_ENV}=1 or {URL_ENV} set) but {why}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {why}")


@pytest.fixture(scope="session")
def pg_admin():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable('psycopg is not installed (pip install -e ".[test]")')
    given = os.environ.get(URL_ENV)
    if given:
        try:
            admin(given, "SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure to connect means the same here
            _unavailable(f"{URL_ENV} does not answer: {type(exc).__name__}")
        yield given
        return
    try:
        server = start()
    except Unavailable as exc:
        _unavailable(str(exc))
    try:
        yield server.url()
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_admin, isolated_home, monkeypatch):
    name, url = create_database(pg_admin)
    monkeypatch.setenv("ROUTECLI_DB", url)
    yield url
    drop_database(pg_admin, name)


if __name__ == "__main__":
    import time

    running = start()
    print(running.url(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
