"""The ledger: `open_store()` and the `Store` every command writes its attempts to.

No provider or HTTP code is imported here; the ledger only knows rows.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from routecli.errors import StoreError
from routecli.store.budgets import add_spend
from routecli.store.engine import describe, make_engine, reason, write_transaction
from routecli.store.migrations import applied, apply_migrations
from routecli.store.models import ATTEMPTS, Attempt, to_row
from routecli.store.tags import add_tags


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def location(self) -> str:
        return describe(self.engine.url)

    def record(self, *attempts: Attempt) -> list[str]:
        """Insert the attempts in one transaction (all or none); return their ids."""
        rows = [to_row(attempt) for attempt in attempts]
        if not rows:
            return []
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(insert(ATTEMPTS), rows)
                add_spend(conn, rows)  # budget counters move in the same transaction as the ledger
                add_tags(conn, rows)  # and so do the tag rows (m008)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"Cannot write to the ledger at {self.location}: {reason(exc)}; "
                "nothing from this call was recorded"
            ) from None
        return [row["id"] for row in rows]

    def get(self, attempt_id: str) -> Attempt | None:
        with Session(self.engine) as session:
            return session.get(Attempt, attempt_id)

    def count(self) -> int:
        with self.read() as conn:
            return conn.execute(select(func.count()).select_from(ATTEMPTS)).scalar_one()

    def migrations(self) -> list[str]:
        """Names of the migrations applied to this ledger."""
        return applied(self.engine)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for queries (stats, export); errors become StoreError."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"Cannot read the ledger at {self.location}: {reason(exc)}; check the database "
                             "(is it up and reachable?) and --db / ROUTECLI_DB") from None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_store(location: str | Path) -> Store:
    """Open (creating if needed) the ledger at a path or SQLAlchemy URL, fully migrated."""
    return migrate_store(location)[0]


def migrate_store(location: str | Path) -> tuple[Store, list[str]]:
    """Open the ledger and apply its pending migrations: (the store, the names applied now)."""
    engine = make_engine(location)
    try:
        names = apply_migrations(engine)
    except StoreError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        fix = ("check that the server is up and the user, password and database name are right"
               if engine.dialect.name == "postgresql" else "check the file and its permissions")
        raise StoreError(
            f"Cannot open the ledger at {describe(engine.url)}: {reason(exc)}; "
            f"{fix}, or choose another with --db / ROUTECLI_DB"
        ) from None
    return Store(engine), names
