"""The ledger schema, as an ordered list of named migrations (simonw/llm style).

Each migration runs in its own transaction together with the row that records it in
`_migrations`, so it is applied completely or not at all. The SQL is plain DDL that
SQLite and PostgreSQL both accept: TEXT, BIGINT, INTEGER, DOUBLE PRECISION, no
AUTOINCREMENT. The migrations themselves live in schema_core.py and schema_later.py;
never edit one that has shipped; append a new one to LATER.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import Connection, Engine, inspect, text

from routecli.errors import StoreError
from routecli.store.engine import write_transaction
from routecli.store.models import utcnow
from routecli.store.schema_core import CORE
from routecli.store.schema_later import LATER

Migration = Callable[[Connection], None]

MIGRATIONS: list[Migration] = [*CORE, *LATER]

def applied(engine: Engine) -> list[str]:
    """Names of the migrations recorded in this database, in the order they were applied."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("_migrations"):
            return []
        rows = conn.execute(text("SELECT name FROM _migrations ORDER BY applied_at, name"))
        return [row.name for row in rows]


def apply_migrations(engine: Engine, migrations: list[Migration] | None = None) -> list[str]:
    """Apply every pending migration in order; return the names applied now."""
    migrations = MIGRATIONS if migrations is None else migrations
    names = [fn.__name__ for fn in migrations]
    if len(set(names)) != len(names):
        raise StoreError(f"Duplicate migration names in {names}; this is a routecli bug")
    already = applied(engine)
    _refuse_unknown(already, names)
    pending = [fn for fn in migrations if fn.__name__ not in already]
    if not pending:
        return []  # the usual case: a read, and no write lock taken
    with write_transaction(engine) as conn:
        _ensure_table(conn)
    return [fn.__name__ for fn in pending if _apply_one(engine, fn)]


def _ensure_table(conn: Connection) -> None:
    conn.exec_driver_sql(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)"
    )


def _refuse_unknown(already: list[str], known: list[str]) -> None:
    unknown = sorted(set(already) - set(known))
    if unknown:
        raise StoreError(
            f"The ledger has migrations this routecli does not know ({', '.join(unknown)}): "
            "it was written by a newer version; upgrade routecli or point --db elsewhere"
        )


def _apply_one(engine: Engine, fn: Migration) -> bool:
    name = fn.__name__
    try:
        with write_transaction(engine) as conn:
            # Re-checked under the write lock: another process may have just applied it.
            found = conn.execute(text("SELECT 1 FROM _migrations WHERE name = :name"), {"name": name})
            if found.first():
                return False
            fn(conn)
            stamp = utcnow().isoformat(timespec="microseconds")
            conn.execute(
                text("INSERT INTO _migrations (name, applied_at) VALUES (:name, :at)"),
                {"name": name, "at": stamp},
            )
            return True
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(
            f"Migration {name} failed and was rolled back ({type(exc).__name__}: {exc}); "
            "it left no trace in the ledger. Report this as a routecli bug"
        ) from exc
