"""Engine creation: the one place that knows how each database backend differs.

SQLite gets WAL, a busy timeout and foreign keys on every connection, so two routecli
processes can write to one ledger at once, and transactional DDL through SQLAlchemy's
documented pysqlite recipe (turn off the driver's own BEGIN handling, emit BEGIN from
the "begin" event) so a migration either fully applies or leaves no trace.

PostgreSQL (psycopg 3) is the shared team ledger: DDL is transactional already, and a write
transaction takes one advisory lock so that writers are serialised exactly as on SQLite (see
`_configure_postgres`). These two are the only backends: every query is tested on both.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from routecli.errors import StoreError

BUSY_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_S = 10  # an unreachable PostgreSQL host fails in seconds, not after TCP's minutes
_BEGIN_OPTION = "routecli_begin"  # execution option read by the "begin" listeners
# pg_advisory_xact_lock key of every write transaction: "routecli" in ASCII, as a bigint.
WRITE_LOCK_KEY = int.from_bytes(b"routecli", "big")
WRITE_LOCK_WAIT_S = 60  # a writer gives up (an error, nothing written) after waiting this long
# A writer that stalls inside its transaction (a stopped process, a laptop put to sleep) is cut
# off by the server after this long, so it cannot hold every other writer back for hours.
WRITE_IDLE_LIMIT_S = 30
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_EXAMPLES = "sqlite:///path/to/routecli.db or postgresql://USER:PASSWORD@HOST/DATABASE"
_SECRET_IN_URL = re.compile(r"(://[^:/@\s]*:)\S*@")  # to the last @: a password may hold @ or /
_SECRET_PARAMS = ("password", "sslpassword")


def to_url(location: str | Path) -> URL:
    """An SQLAlchemy URL as given, or a filesystem path turned into an SQLite URL.

    postgresql:// and postgres:// (what libpq and most hosts print) mean psycopg 3."""
    if isinstance(location, str) and "://" in location:
        scheme, _, rest = location.partition("://")
        given = location
        if scheme.lower() in _POSTGRES_SCHEMES:
            location = "postgresql+psycopg://" + rest
        try:
            url = make_url(location)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            # not the parser's message: it would quote the URL, password included
            raise StoreError(f"Bad database URL {_scrub(given)!r}; use e.g. {_EXAMPLES}") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise StoreError(f"Unsupported database {url.get_backend_name()!r} in {describe(url)}: "
                             f"the ledger lives in SQLite or PostgreSQL; use e.g. {_EXAMPLES}")
        return url
    path = Path(location).expanduser().absolute()
    return URL.create("sqlite", database=str(path))


def describe(url: URL) -> str:
    """The URL for messages, password hidden (in the user part and in ?password=)."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    shown = url.set(drivername=url.get_backend_name(), query={}).render_as_string(hide_password=True)
    query = "&".join(f"{key}={'***' if key in _SECRET_PARAMS else value}" for key, value in url.query.items())
    return f"{shown}?{query}" if query else shown


def reason(exc: BaseException) -> str:
    """The driver's own message, on one line, without the SQL and bound parameters (they may
    hold prompts) or a password that a connection string in it might carry."""
    orig = getattr(exc, "orig", None)
    return _scrub(" ".join(str(orig if orig is not None else exc).split()))


def _scrub(message: str) -> str:
    message = _SECRET_IN_URL.sub(r"\1***@", message)
    return re.sub(r"(password=)[^&\s]*", r"\1***", message, flags=re.IGNORECASE)


def make_engine(location: str | Path) -> Engine:
    url = to_url(location)
    try:
        if url.get_backend_name() == "postgresql":
            return _postgres_engine(url)
        _make_parent_dir(url)
        engine = create_engine(url, hide_parameters=True)  # params hold prompts: keep them out of logs
    except ImportError:
        raise StoreError(f"The database {describe(url)} needs a driver that is not installed; "
                         'for PostgreSQL run: pip install "routecli[postgres]"') from None
    except SQLAlchemyError as exc:
        raise StoreError(f"Cannot use the database {describe(url)}: {reason(exc)}") from None
    _configure_sqlite(engine)
    return engine


def _postgres_engine(url: URL) -> Engine:
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}
    engine = create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args)
    _configure_postgres(engine)
    return engine


def _configure_postgres(engine: Engine) -> None:
    """Serialise write transactions with one transaction-level advisory lock.

    The guards are read-modify-write transactions over rows that may not exist yet (a budget
    counter is created from a SUM over the ledger, a breaker row on the first failure, the
    migrations table), and every attempt insert moves budget counters in its own transaction.
    Row locks (SELECT ... FOR UPDATE) cannot lock a row that is not there, and a SERIALIZABLE
    retry loop would touch every caller; one lock that every write transaction takes first
    gives PostgreSQL the exact semantics these transactions were written for on SQLite (one
    writer at a time, each seeing every earlier commit), while reads never wait. The lock is
    released by COMMIT or ROLLBACK, so a killed process cannot leave it held, and the
    transactions are a few statements long (WRITE_IDLE_LIMIT_S covers one that stalls).
    """

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_BEGIN_OPTION) == "IMMEDIATE":
            conn.exec_driver_sql(  # one round trip; SET LOCAL ends with the transaction
                f"SET LOCAL lock_timeout = {int(WRITE_LOCK_WAIT_S * 1000)}; "
                f"SET LOCAL idle_in_transaction_session_timeout = {int(WRITE_IDLE_LIMIT_S * 1000)}; "
                f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")


def _make_parent_dir(url: URL) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    parent = Path(database).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the ledger directory {parent}: {exc.strerror or exc}; "
            "fix its permissions or choose another place with --db / ROUTECLI_DB"
        ) from None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record) -> None:  # type: ignore[no-untyped-def]
        # The driver would skip BEGIN before DDL, so each CREATE would commit on its own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _enable_wal(cursor, engine.dialect.loaded_dbapi.OperationalError)
            # In WAL mode NORMAL cannot corrupt the file; it may lose the last commit on power loss.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _enable_wal(cursor: Any, locked_error: type[Exception]) -> None:
    """Switch the file to WAL (persistent, so only the first open of a new file does work).

    The switch needs an exclusive lock and SQLite answers "database is locked" at once,
    ignoring busy_timeout, when another process is switching the same new file; so retry.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except locked_error as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that takes the database's write lock at BEGIN.

    A deferred transaction that reads before it writes cannot wait for the lock (SQLite
    answers "database is locked" at once to avoid a deadlock); IMMEDIATE waits up to the
    busy timeout instead. On PostgreSQL the same option takes the advisory write lock
    (`_configure_postgres`).
    """
    with engine.connect() as conn:
        with immediate(conn).begin():
            yield conn


def immediate(conn: Connection) -> Connection:
    """Make every transaction on this connection take the write lock at BEGIN (see above);
    for a writer that keeps one connection open across many transactions."""
    conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
    return conn
