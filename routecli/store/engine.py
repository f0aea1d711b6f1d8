"""Engine creation: the one place that knows how each database backend differs.

SQLite gets WAL, a busy timeout and foreign keys on every connection, so two routecli
processes can write to one ledger at once, and transactional DDL through SQLAlchemy's
documented pysqlite recipe (turn off the driver's own BEGIN handling, emit BEGIN from
the "begin" event) so a migration either fully applies or leaves no trace.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from routecli.errors import StoreError

BUSY_TIMEOUT_MS = 5000
_BEGIN_OPTION = "routecli_begin"  # execution option read by the SQLite "begin" listener


def to_url(location: str | Path) -> URL:
    """An SQLAlchemy URL as given, or a filesystem path turned into an SQLite URL."""
    if isinstance(location, str) and "://" in location:
        try:
            return make_url(location)
        except ArgumentError as exc:
            raise StoreError(f"Bad database URL {location!r} ({exc}); use e.g. sqlite:///path/to/routecli.db") from None
    path = Path(location).expanduser().absolute()
    return URL.create("sqlite", database=str(path))


def describe(url: URL) -> str:
    """The URL for messages, password hidden."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def reason(exc: BaseException) -> str:
    """The driver's own message, without the SQL and bound parameters (they may hold prompts)."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc)


def make_engine(location: str | Path) -> Engine:
    url = to_url(location)
    try:
        if url.get_backend_name() != "sqlite":
            return create_engine(url, pool_pre_ping=True, hide_parameters=True)
        _make_parent_dir(url)
        engine = create_engine(url, hide_parameters=True)  # params hold prompts: keep them out of logs
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"Cannot use the database {describe(url)}: {reason(exc)}") from None
    _configure_sqlite(engine)
    return engine


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
    """A transaction that takes SQLite's write lock at BEGIN.

    A deferred transaction that reads before it writes cannot wait for the lock (SQLite
    answers "database is locked" at once to avoid a deadlock); IMMEDIATE waits up to the
    busy timeout instead. Other backends ignore the option.
    """
    with engine.connect() as conn:
        with immediate(conn).begin():
            yield conn


def immediate(conn: Connection) -> Connection:
    """Make every transaction on this connection take the write lock at BEGIN (see above);
    for a writer that keeps one connection open across many transactions."""
    conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
    return conn
